"""The one record contract.

`Post`, `Labels` and `Interaction` are the only definitions of what flows through polarwatch.
The ingest JSON Schema (:func:`json_schema`), the Spark ``StructType`` (:func:`spark_schema`) and
the DuckDB column lists (:func:`duckdb_columns`) are all generated from these dataclasses, so a
field added here appears everywhere at once; ``tests/polarwatch/test_records.py`` asserts they agree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Union, get_args, get_origin

from polarwatch.errors import SchemaError

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 10_000  # longer texts are dead-lettered as oversize

Stance = Literal["pro", "anti", "unclear"]
Affect = Literal["yes", "no", "unclear"]
Agreement = Literal["agree", "disagree", "unclear"]
Emotion = Literal["anger", "joy", "optimism", "sadness", "neutral"]

STANCES: tuple[str, ...] = get_args(Stance)
AFFECTS: tuple[str, ...] = get_args(Affect)
AGREEMENTS: tuple[str, ...] = get_args(Agreement)
EMOTIONS: tuple[str, ...] = get_args(Emotion)


@dataclass(frozen=True, slots=True)
class Post:
    """One social-media post as it arrives at ingest."""

    id: str
    platform: str
    author_id: str
    text: str
    created_at: datetime  # timezone-aware
    topic: str
    conversation_id: str
    parent_id: str | None = None  # None for a conversation root
    lang: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise SchemaError(f"Post {self.id!r}: created_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Labels:
    """What an extractor says about one post (and, for replies, about its parent link)."""

    post_id: str
    stance: Stance
    affect: Affect
    agreement: Agreement | None  # None for conversation roots
    emotion: Emotion
    intensity: float  # 0..1, strength of the expressed sentiment
    stance_conf: float
    affect_conf: float
    agreement_conf: float | None
    emotion_conf: float
    backend: str
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    """A scored reply→parent pair (the paper's rule table)."""

    post_id: str
    parent_id: str
    conversation_id: str
    topic: str
    created_at: datetime
    score: int  # 0..10
    rule: str  # which row of the rule table fired, e.g. "same|hostile|agree"


RECORDS: dict[str, type] = {"post": Post, "labels": Labels, "interaction": Interaction}


# --------------------------------------------------------------------------------------------
# Field introspection: one place that understands the annotations above.


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    kind: str  # "string" | "integer" | "number" | "timestamp"
    nullable: bool
    choices: tuple[str, ...] | None  # for Literal fields
    required: bool  # no default in the dataclass


_KINDS: dict[type, str] = {str: "string", int: "integer", float: "number", datetime: "timestamp"}


def fields_of(record: type) -> list[FieldSpec]:
    """Describe the fields of a record dataclass in a backend-neutral way."""
    hints = typing.get_type_hints(record)
    specs = []
    for f in dataclasses.fields(record):
        tp: Any = hints[f.name]
        nullable = False
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            nullable = len(args) < len(get_args(tp))
            tp = args[0]
        choices = None
        if get_origin(tp) is Literal:
            choices = tuple(get_args(tp))
            tp = str
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(f.name, _KINDS[tp], nullable, choices, required))
    return specs


def json_schema(record: type = Post) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) used to validate records where bytes come in."""
    props: dict[str, Any] = {}
    for spec in fields_of(record):
        if spec.kind == "timestamp":
            prop: dict[str, Any] = {"type": "string", "format": "date-time"}
        else:
            prop = {"type": spec.kind}
        if spec.choices:
            prop["enum"] = list(spec.choices)
        if spec.kind == "string" and spec.name == "text":
            prop["maxLength"] = MAX_TEXT_CHARS
        if spec.kind == "string" and spec.name in ("id", "conversation_id", "topic"):
            prop["minLength"] = 1
        if spec.nullable:
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        props[spec.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": record.__name__,
        "type": "object",
        "properties": props,
        "required": [s.name for s in fields_of(record) if s.required],
        "additionalProperties": True,
    }


_DUCKDB_TYPES = {"string": "VARCHAR", "integer": "INTEGER", "number": "DOUBLE",
                 "timestamp": "TIMESTAMPTZ"}


def duckdb_columns(record: type) -> list[tuple[str, str]]:
    """(name, DuckDB type with NOT NULL where required) for each field."""
    return [(s.name, _DUCKDB_TYPES[s.kind] + ("" if s.nullable else " NOT NULL"))
            for s in fields_of(record)]


def spark_schema(record: type) -> Any:
    """The Spark ``StructType`` for a record (imports pyspark lazily)."""
    from pyspark.sql import types as T

    spark_types = {"string": T.StringType(), "integer": T.IntegerType(),
                   "number": T.DoubleType(), "timestamp": T.TimestampType()}
    return T.StructType([T.StructField(s.name, spark_types[s.kind], s.nullable)
                         for s in fields_of(record)])


def spark_ddl(record: type) -> str:
    """The same schema as a Spark DDL string (what ``mapInPandas`` accepts)."""
    names = {"string": "string", "integer": "int", "number": "double", "timestamp": "timestamp"}
    return ", ".join(f"`{s.name}` {names[s.kind]}" for s in fields_of(record))


# --------------------------------------------------------------------------------------------
# Parsing incoming JSON objects into Posts.

_validator: Any = None


def _post_validator() -> Any:
    global _validator
    if _validator is None:
        import jsonschema

        _validator = jsonschema.Draft202012Validator(
            json_schema(Post), format_checker=jsonschema.FormatChecker())
    return _validator


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,),
                                             "number": (int, float), "null": (type(None),)}


def _compile_fast_checks(schema: dict[str, Any]) -> list[tuple[str, bool, tuple[type, ...],
                                                               frozenset | None, int, int]]:
    """Per property: (name, required, python types, enum, minLength, maxLength), derived from
    the JSON Schema so the fast path can only be stricter than the schema, never looser."""
    checks = []
    for name, prop in schema["properties"].items():
        kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        types = tuple(t for k in kinds for t in _JSON_TYPES[k])
        enum = frozenset(prop["enum"]) if "enum" in prop else None
        checks.append((name, name in schema["required"], types, enum,
                       prop.get("minLength", 0), prop.get("maxLength", 1 << 62)))
    return checks


_FAST_CHECKS = _compile_fast_checks(json_schema(Post))


def _fast_valid(obj: dict[str, Any]) -> bool:
    for name, required, allowed, enum, min_len, max_len in _FAST_CHECKS:
        if name not in obj:
            if required:
                return False
            continue
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            return False
        if enum is not None and value not in enum:
            return False
        if isinstance(value, str) and not min_len <= len(value) <= max_len:
            return False
    return True


def validate_post(obj: Any) -> str | None:
    """Return None when `obj` is a valid post, else a one-line reason naming the field.

    Valid records take a fast path compiled from the JSON Schema (~20x cheaper than a
    jsonschema validator, which dominated ingest time); anything it rejects is re-checked by
    jsonschema itself, which produces the reason.
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    errors = [] if _fast_valid(obj) else sorted(_post_validator().iter_errors(obj),
                                                 key=lambda e: list(e.path))
    if not errors:
        created = obj["created_at"]
        try:
            ts = datetime.fromisoformat(created)
        except ValueError:
            return f"created_at: {created!r} is not an ISO-8601 timestamp"
        if ts.tzinfo is None:
            return f"created_at: {created!r} has no timezone offset (use e.g. '+00:00' or 'Z')"
        return None
    missing = [m for e in errors if e.validator == "required"
               for m in e.validator_value if m not in obj]
    if missing:
        return f"missing required field(s): {', '.join(missing)}"
    err = errors[0]
    where = ".".join(str(p) for p in err.path) or "record"
    if err.validator == "maxLength":
        msg = f"{len(err.instance):,} characters, more than the {err.validator_value:,} allowed"
    else:
        msg = err.message if len(err.message) < 200 else err.message[:200] + "…"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"


def post_from_dict(obj: dict[str, Any]) -> Post:
    """Build a Post from a validated JSON object (raises SchemaError with the reason)."""
    reason = validate_post(obj)
    if reason:
        raise SchemaError(reason)
    names = {s.name for s in fields_of(Post)}
    data = {k: v for k, v in obj.items() if k in names}
    data["created_at"] = datetime.fromisoformat(obj["created_at"])
    return Post(**data)


def post_to_dict(post: Post) -> dict[str, Any]:
    data = dataclasses.asdict(post)
    data["created_at"] = post.created_at.isoformat()
    return data
