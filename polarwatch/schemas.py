"""The schemas generated from the record contract (:mod:`polarwatch.records`).

:func:`fields_of` is the one place that reads the dataclasses' annotations; the ingest JSON
Schema (:func:`json_schema`), the DuckDB columns (:func:`duckdb_columns`) and the Spark schema
(:func:`spark_schema`, :func:`spark_ddl`) are all derived from it, so they cannot disagree
(``tests/polarwatch/test_records.py`` checks each against it).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from polarwatch.records import (
    FIELD_MAX_CHARS,
    NAME_FORBIDDEN,
    SCHEMA_VERSION,
    TEXT_FORBIDDEN,
    Post,
)


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
        if spec.kind == "string" and spec.name in ("id", "conversation_id", "topic") or \
                record is Post and spec.required and spec.kind in ("string", "timestamp"):
            prop["minLength"] = 1  # a required string of a post is never empty
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
