"""The one record contract.

`Post`, `Labels` and `Interaction` are the only definitions of what flows through polarwatch.
The ingest JSON Schema (:func:`json_schema`), the Spark ``StructType`` (:func:`spark_schema`) and
the DuckDB column lists (:func:`duckdb_columns`) are all generated from these dataclasses, so a
field added here appears everywhere at once; ``tests/polarwatch/test_records.py`` asserts they agree.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from polarwatch.errors import SchemaError

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 10_000  # longer texts are dead-lettered as oversize

# The domain of every field (see json_schema). Anything outside is dead-lettered with a reason.
MAX_ID_CHARS = 256  # ids, author ids, conversation ids: platform ids are < 100 characters
MAX_NAME_CHARS = 64  # platform, topic, lang (a BCP-47 tag is at most 35)
MAX_TIMESTAMP_CHARS = 64  # an ISO-8601 string with offset and nanoseconds is ~35
FIELD_MAX_CHARS: dict[str, int] = {
    "id": MAX_ID_CHARS, "author_id": MAX_ID_CHARS, "conversation_id": MAX_ID_CHARS,
    "parent_id": MAX_ID_CHARS, "platform": MAX_NAME_CHARS, "topic": MAX_NAME_CHARS,
    "lang": MAX_NAME_CHARS, "text": MAX_TEXT_CHARS, "created_at": MAX_TIMESTAMP_CHARS}
# Characters no field may hold: NUL and lone UTF-16 surrogates (not encodable as UTF-8, so
# Kafka, Arrow and DuckDB cannot carry them). Ids, names and timestamps also exclude every
# other control character; texts keep tab, newline and carriage return and the rest of C0/DEL.
TEXT_FORBIDDEN = "[\\x00\\ud800-\\udfff]"
NAME_FORBIDDEN = "[\\x00-\\x1f\\x7f\\ud800-\\udfff]"
# Oldest accepted created_at: before the social platforms we read, and far inside the range
# pandas (1677..2262) and Spark can hold.
MIN_CREATED_AT = datetime(2000, 1, 1, tzinfo=UTC)
# Newest accepted created_at = the ingest clock + this skew (clocks differ; a post from the
# future would move the stream's watermark past every real post). [ingest] max_future_skew_hours.
DEFAULT_MAX_FUTURE_SKEW = timedelta(days=1)
MAX_RECORD_BYTES = 256 * 1024  # one encoded record (a 10,000-character text is <= 40 KiB)
MAX_NESTING = 64  # JSON depth of an input row (posts are flat; exports nest a few levels)
MAX_DEAD_LETTER_BYTES = 64 * 1024  # raw bytes kept per dead letter (the original size is kept)
MAX_REASON_CHARS = 500  # a dead-letter reason longer than this is cut
# Kafka headers of a dead-letter record (written by ingest, read by the stream's drain)
DEAD_LETTER_REASON_HEADER = "polarwatch-reason"
DEAD_LETTER_SIZE_HEADER = "polarwatch-original-size"  # bytes of the record before it was cut

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
    platform: str = ""  # the reply's (and its parent's) platform: ids are unique per platform


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
    duckdb_type: str | None = None  # from Annotated[int, "BIGINT"]: overrides the kind's type


_KINDS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean",
                           datetime: "timestamp"}


def fields_of(record: type) -> list[FieldSpec]:
    """Describe the fields of a record dataclass in a backend-neutral way."""
    hints = typing.get_type_hints(record, include_extras=True)
    specs = []
    for f in dataclasses.fields(record):
        tp: Any = hints[f.name]
        nullable = False
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            nullable = len(args) < len(get_args(tp))
            tp = args[0]
        duckdb_type = None
        if get_origin(tp) is Annotated:
            tp, duckdb_type = get_args(tp)[:2]
        choices = None
        if get_origin(tp) is Literal:
            choices = tuple(get_args(tp))
            tp = str
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        specs.append(FieldSpec(f.name, _KINDS[tp], nullable, choices, required, duckdb_type))
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
        if spec.name in FIELD_MAX_CHARS:
            prop["maxLength"] = FIELD_MAX_CHARS[spec.name]
        if spec.kind in ("string", "timestamp") and record is Post:
            forbidden = TEXT_FORBIDDEN if spec.name == "text" else NAME_FORBIDDEN
            prop["pattern"] = f"^(?![\\s\\S]*{forbidden})"  # none anywhere (newlines too)
        if spec.kind == "string" and spec.name in ("id", "conversation_id", "topic"):
            prop["minLength"] = 1
        if spec.kind == "integer" and spec.name == "schema_version":
            prop["minimum"], prop["maximum"] = 1, SCHEMA_VERSION
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
                 "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}


def duckdb_columns(record: type) -> list[tuple[str, str]]:
    """(name, DuckDB type with NOT NULL where required) for each field."""
    return [(s.name, (s.duckdb_type or _DUCKDB_TYPES[s.kind]) + ("" if s.nullable else " NOT NULL"))
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
FastCheck = tuple[str, bool, tuple[type, ...], frozenset | None, int, int, Any, float, float]


def _compile_fast_checks(schema: dict[str, Any]) -> list[FastCheck]:
    """Per property: (name, required, python types, enum, minLength, maxLength, forbidden
    characters, minimum, maximum), derived from the JSON Schema so the fast path can only be
    stricter than the schema, never looser."""
    checks = []
    for name, prop in schema["properties"].items():
        kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        types = tuple(t for k in kinds for t in _JSON_TYPES[k])
        enum = frozenset(prop["enum"]) if "enum" in prop else None
        forbidden = None
        if "pattern" in prop:  # ^(?![\s\S]*[...]): search for the class itself
            forbidden = re.compile(prop["pattern"][len("^(?![\\s\\S]*"):-1])
        checks.append((name, name in schema["required"], types, enum,
                       prop.get("minLength", 0), prop.get("maxLength", 1 << 62), forbidden,
                       prop.get("minimum", float("-inf")), prop.get("maximum", float("inf"))))
    return checks


_FAST_CHECKS = _compile_fast_checks(json_schema(Post))


def _fast_valid(obj: dict[str, Any]) -> bool:
    for name, required, allowed, enum, min_len, max_len, forbidden, lo, hi in _FAST_CHECKS:
        if name not in obj:
            if required:
                return False
            continue
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, allowed):
            return False
        if enum is not None and value not in enum:
            return False
        if isinstance(value, str):
            if not min_len <= len(value) <= max_len:
                return False
            if forbidden is not None and forbidden.search(value):
                return False
        elif isinstance(value, int) and not lo <= value <= hi:
            return False
    return True


def parse_created_at(value: str, now: datetime | None = None,
                     max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
                     ) -> tuple[datetime | None, str | None]:
    """(timestamp, None) when `value` is an ISO-8601 time with offset inside
    [MIN_CREATED_AT, now + max_future_skew]; else (None, a one-line reason)."""
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None, f"created_at: {value!r} is not an ISO-8601 timestamp"
    if ts.tzinfo is None:
        return None, f"created_at: {value!r} has no timezone offset (use e.g. '+00:00' or 'Z')"
    now = datetime.now(UTC) if now is None else now
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        return None, f"created_at: {value!r} is out of range"
    if ts < MIN_CREATED_AT:
        return None, f"created_at: {value!r} is before {MIN_CREATED_AT:%Y-%m-%d}"
    if ts > now + max_future_skew:
        hours = max_future_skew.total_seconds() / 3600
        return None, (f"created_at: {value!r} is in the future (more than {hours:g} h after "
                      f"the ingest clock {now:%Y-%m-%d %H:%M} UTC; [ingest] "
                      f"max_future_skew_hours)")
    return ts, None


def validate_post(obj: Any, now: datetime | None = None,
                  max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW) -> str | None:
    """Return None when `obj` is a valid post, else a one-line reason naming the field.

    `now` is the ingest clock (default: the wall clock); ``created_at`` may not be later than
    ``now + max_future_skew``. Valid records take a fast path compiled from the JSON Schema
    (~20x cheaper than a jsonschema validator, which dominated ingest time); anything it
    rejects is re-checked by jsonschema itself, which produces the reason.
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    errors = [] if _fast_valid(obj) else sorted(_post_validator().iter_errors(obj),
                                                 key=lambda e: list(e.path))
    if not errors:
        return parse_created_at(obj["created_at"], now, max_future_skew)[1]
    missing = list(dict.fromkeys(m for e in errors if e.validator == "required"
                                 for m in e.validator_value if m not in obj))
    if missing:
        return (f"missing required field(s): {', '.join(missing)} (every post needs "
                f"{', '.join(_post_validator().schema['required'])}; `polarwatch schema` "
                f"prints the contract)")
    err = errors[0]
    where = ".".join(str(p) for p in err.path) or "record"
    if err.validator == "maxLength":
        msg = f"{len(err.instance):,} characters, more than the {err.validator_value:,} allowed"
    elif err.validator == "pattern":
        bad = re.search(err.validator_value[len("^(?![\\s\\S]*"):-1], err.instance)
        char = ord(bad.group()) if bad else 0
        msg = f"character U+{char:04X} is not allowed here (control character or lone surrogate)"
    else:
        msg = err.message if len(err.message) < 200 else err.message[:200] + "…"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {msg}{more}"


def json_depth_exceeds(obj: Any, limit: int = MAX_NESTING) -> bool:
    """True when `obj` nests lists/dicts deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def raw_size(raw: bytes | str) -> int:
    """Size in bytes of a raw record (UTF-8 for text; lone surrogates count as 3 bytes)."""
    if isinstance(raw, bytes):
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def parse_record(raw: bytes | str, max_bytes: int = MAX_RECORD_BYTES) -> tuple[Any, str | None]:
    """(JSON value, None), or (None, reason) for input that is too big, not UTF-8, not JSON or
    nested deeper than MAX_NESTING. Never raises on any input."""
    if len(raw) > max_bytes or (not isinstance(raw, bytes) and 4 * len(raw) > max_bytes
                                and raw_size(raw) > max_bytes):
        return None, f"record: {raw_size(raw):,} bytes, more than the {max_bytes:,} allowed"
    try:
        obj = json.loads(raw)
    except RecursionError:
        return None, f"record: JSON nested deeper than {MAX_NESTING} levels"
    except (UnicodeError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        return None, cut_reason(f"malformed JSON: {exc}")
    # fewer brackets than the limit cannot nest deeper (a C-speed count spares the walk)
    brackets = (raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes)
                else raw.count("[") + raw.count("{"))
    if brackets > MAX_NESTING and json_depth_exceeds(obj):
        return None, f"record: JSON nested deeper than {MAX_NESTING} levels"
    return obj, None


def cut_reason(reason: str) -> str:
    """A dead-letter reason of at most MAX_REASON_CHARS characters, safe to encode as UTF-8."""
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"


def truncate_raw(raw: bytes, limit: int = MAX_DEAD_LETTER_BYTES) -> tuple[bytes, int]:
    """(the first `limit` bytes of `raw`, its original size) for a dead letter."""
    return raw[:limit], len(raw)


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
