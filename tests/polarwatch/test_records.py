"""The record contract: JSON Schema, Spark StructType and DuckDB DDL all agree with `fields_of`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import types as T

from polarwatch import warehouse
from polarwatch.errors import SchemaError
from polarwatch.records import (
    MAX_TEXT_CHARS,
    SCHEMA_VERSION,
    Interaction,
    Labels,
    Post,
    post_to_dict,
)
from polarwatch.schemas import FieldSpec, fields_of, json_schema, spark_schema
from polarwatch.validation import post_from_dict, validate_post

RECORDS = [Post, Labels, Interaction]

# What each neutral kind must become in each backend.
JSON_TYPE = {"string": "string", "integer": "integer", "number": "number", "timestamp": "string"}
SPARK_TYPE = {"string": T.StringType(), "integer": T.IntegerType(), "number": T.DoubleType(),
              "timestamp": T.TimestampType()}
# information_schema.columns.data_type spellings
DUCKDB_TYPE = {"string": "VARCHAR", "integer": "INTEGER", "number": "DOUBLE",
               "timestamp": "TIMESTAMP WITH TIME ZONE"}


@pytest.fixture(scope="module")
def duckdb_tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list]]:
    path = tmp_path_factory.mktemp("wh") / "records.duckdb"
    warehouse.init_schema(path)
    with warehouse.connect(path, read_only=True) as con:
        tables = {t: warehouse.table_columns(con, t) for t in ("posts", "interactions")}
    yield tables


def good_post_dict(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": "p1", "platform": "synthetic", "author_id": "u1",
        "text": "We need stricter gun laws.", "created_at": "2024-03-01T12:00:00+00:00",
        "topic": "gun_control", "conversation_id": "c1", "parent_id": None, "lang": "en",
        "schema_version": SCHEMA_VERSION,
    }
    obj.update(overrides)
    return obj


# ------------------------------------------------------------------------------ fields_of


def test_fields_of_post_describes_the_dataclass() -> None:
    specs = {s.name: s for s in fields_of(Post)}
    assert [s.name for s in fields_of(Post)] == [
        "id", "platform", "author_id", "text", "created_at", "topic", "conversation_id",
        "parent_id", "lang", "schema_version"]
    assert specs["created_at"] == FieldSpec("created_at", "timestamp", False, None, True)
    assert specs["parent_id"] == FieldSpec("parent_id", "string", True, None, False)
    assert specs["schema_version"] == FieldSpec("schema_version", "integer", False, None, False)


def test_fields_of_labels_reads_literal_choices_and_optional_literals() -> None:
    specs = {s.name: s for s in fields_of(Labels)}
    assert specs["stance"].choices == ("pro", "anti", "unclear")
    assert not specs["stance"].nullable
    assert specs["agreement"].choices == ("agree", "disagree", "unclear")
    assert specs["agreement"].nullable and specs["agreement"].kind == "string"
    assert specs["intensity"].kind == "number"
    assert specs["agreement_conf"].nullable and specs["agreement_conf"].kind == "number"


# ------------------------------------------------------------------------------ JSON Schema


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_json_schema_agrees_with_fields(record: type) -> None:
    schema = json_schema(record)
    specs = fields_of(record)
    assert schema["title"] == record.__name__
    assert list(schema["properties"]) == [s.name for s in specs]
    assert schema["required"] == [s.name for s in specs if s.required]
    for spec in specs:
        prop = schema["properties"][spec.name]
        expected = JSON_TYPE[spec.kind]
        if spec.nullable:
            assert prop["type"] == [expected, "null"], spec.name
        else:
            assert prop["type"] == expected, spec.name
        if spec.kind == "timestamp":
            assert prop["format"] == "date-time"
        if spec.choices:
            extra = [None] if spec.nullable else []
            assert prop["enum"] == [*spec.choices, *extra], spec.name
        else:
            assert "enum" not in prop, spec.name


def test_json_schema_bounds_text_length() -> None:
    assert json_schema(Post)["properties"]["text"]["maxLength"] == MAX_TEXT_CHARS


# ------------------------------------------------------------------------------ Spark


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: r.__name__)
def test_spark_schema_agrees_with_fields(record: type) -> None:
    struct = spark_schema(record)
    specs = fields_of(record)
    assert isinstance(struct, T.StructType)
    assert struct.names == [s.name for s in specs]
    for field, spec in zip(struct.fields, specs, strict=True):
        assert field.dataType == SPARK_TYPE[spec.kind], spec.name
        assert field.nullable == spec.nullable, spec.name


# ------------------------------------------------------------------------------ DuckDB


def _expected_duckdb(specs: list[FieldSpec]) -> list[tuple[str, str]]:
    return [(s.name, DUCKDB_TYPE[s.kind] + ("" if s.nullable else " NOT NULL")) for s in specs]


def test_duckdb_posts_table_is_post_then_labels_then_kafka_then_relabelling(
        duckdb_tables: dict) -> None:
    cols = duckdb_tables["posts"]
    post_specs = fields_of(Post)
    label_specs = [s for s in fields_of(Labels) if s.name != "post_id"]
    n_post, n_labels = len(post_specs), len(label_specs)
    assert cols[:n_post] == _expected_duckdb(post_specs)
    assert cols[n_post:n_post + n_labels] == _expected_duckdb(label_specs)
    # Kafka provenance, nullable (a row written outside the stream has none)
    assert cols[n_post + n_labels:n_post + n_labels + 3] == [
        ("kafka_partition", "INTEGER"), ("kafka_offset", "BIGINT"),
        ("ingested_at", "TIMESTAMP WITH TIME ZONE")]
    # who labelled a stored post again (`polarwatch relabel`), nullable: NULL = the stream
    assert cols[n_post + n_labels + 3:] == [("labelled_by", "VARCHAR"),
                                            ("relabelled_at", "TIMESTAMP WITH TIME ZONE")]


def test_duckdb_interactions_table_agrees_with_fields(duckdb_tables: dict) -> None:
    assert duckdb_tables["interactions"] == _expected_duckdb(fields_of(Interaction))


def test_init_schema_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "twice.duckdb"
    warehouse.init_schema(path)
    warehouse.init_schema(path)
    with warehouse.connect(path, read_only=True) as con:
        assert warehouse.table_columns(con, "interactions") == \
            _expected_duckdb(fields_of(Interaction))


# ------------------------------------------------------------------------------ validate_post


def test_validate_post_accepts_a_good_post() -> None:
    assert validate_post(good_post_dict()) is None
    assert validate_post(good_post_dict(parent_id="p0", created_at="2024-03-01T12:00:00Z")) is None
    # extra keys are allowed (additionalProperties: true) and defaults may be omitted
    obj = good_post_dict(extra="ignored")
    del obj["lang"], obj["parent_id"], obj["schema_version"]
    assert validate_post(obj) is None


def test_validate_post_missing_text_names_the_field() -> None:
    obj = good_post_dict()
    del obj["text"]
    reason = validate_post(obj)
    assert reason is not None and reason.startswith("missing required field(s): text (")
    assert reason.split(" (")[0].endswith(": text")  # names only what is missing, then the
    assert "`polarwatch schema`" in reason  # whole contract and where to read it


def test_validate_post_naive_timestamp_names_created_at() -> None:
    reason = validate_post(good_post_dict(created_at="2024-03-01T12:00:00"))
    assert reason is not None and reason.startswith("created_at")


def test_validate_post_garbage_timestamp_names_created_at() -> None:
    reason = validate_post(good_post_dict(created_at="yesterday at noon"))
    assert reason is not None and reason.startswith("created_at")


@pytest.mark.parametrize(("field", "value"), [
    ("id", 42), ("author_id", None), ("schema_version", "1"), ("parent_id", 7),
    ("created_at", 1709294400),
])
def test_validate_post_wrong_type_names_the_field(field: str, value: Any) -> None:
    reason = validate_post(good_post_dict(**{field: value}))
    assert reason is not None and reason.startswith(f"{field}:"), reason


def test_validate_post_empty_id_is_rejected() -> None:
    assert validate_post(good_post_dict(id="")) == "id is empty: every post needs a non-empty id"


def test_validate_post_oversize_text() -> None:
    assert validate_post(good_post_dict(text="x" * MAX_TEXT_CHARS)) is None
    reason = validate_post(good_post_dict(text="x" * (MAX_TEXT_CHARS + 1)))
    assert reason is not None and reason.startswith("text:")
    # says by how much (the limit and the size), without echoing the 10k-character value back
    assert f"{MAX_TEXT_CHARS:,}" in reason and f"{MAX_TEXT_CHARS + 1:,}" in reason
    assert len(reason) < 200


@pytest.mark.parametrize("value", [["a", "b"], "a string", 3, None])
def test_validate_post_rejects_non_objects(value: Any) -> None:
    reason = validate_post(value)
    assert reason is not None and reason.startswith("expected a JSON object")
    assert type(value).__name__ in reason


def test_validate_post_reports_how_many_more_errors() -> None:
    reason = validate_post(good_post_dict(id=1, author_id=2, topic=3))
    assert reason == "id: 1 is not of type 'string' (+2 more)"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"text": ["a text of more than forty characters, cut"] * 10**5},  # the repr is bounded
     "text: ['a text of more th...ty characters, cut', 'a text of more th...ty characters, "
     "cut', 'a text of more th...ty characters, cut', ...] is not of type 'string'"),
    ({"parent_id": 7}, "parent_id: 7 is not of type 'string', 'null'"),
    ({"schema_version": 99}, "schema_version: 99 is greater than the maximum of 1"),
    ({"schema_version": 0}, "schema_version: 0 is less than the minimum of 1"),
    ({"schema_version": True}, "schema_version: True is not of type 'integer'"),
    ({"topic": ""}, "topic is empty: every post needs a non-empty topic"),
    ({"lang": "en\x00"}, "lang: character U+0000 is not allowed here (control character or "
                         "lone surrogate)"),
])
def test_validate_post_reasons_name_the_field_and_what_is_wrong(changes: dict[str, Any],
                                                               reason: str) -> None:
    assert validate_post(good_post_dict(**changes)) == reason


# ------------------------------------------------------------------------------ round trip


def test_post_round_trip_through_dict_and_json() -> None:
    post = Post(id="p1", platform="x", author_id="u", text="héllo 🌍",
                created_at=datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
                topic="gun_control", conversation_id="c1", parent_id="p0", lang=None)
    data = post_to_dict(post)
    assert data["created_at"] == "2024-03-01T12:30:15.123456+00:00"
    assert validate_post(data) is None
    assert post_from_dict(data) == post
    assert post_from_dict(json.loads(json.dumps(data))) == post


def test_post_from_dict_keeps_the_offset_and_drops_unknown_keys() -> None:
    tz = timezone(timedelta(hours=-5))
    post = post_from_dict(good_post_dict(created_at="2024-03-01T07:00:00-05:00", extra=1))
    assert post.created_at == datetime(2024, 3, 1, 7, tzinfo=tz)
    assert post.created_at.utcoffset() == timedelta(hours=-5)
    assert post_to_dict(post)["created_at"] == "2024-03-01T07:00:00-05:00"


def test_post_from_dict_raises_schema_error_with_the_reason() -> None:
    with pytest.raises(SchemaError, match="^created_at"):
        post_from_dict(good_post_dict(created_at="2024-03-01T12:00:00"))


def test_post_with_naive_created_at_raises() -> None:
    with pytest.raises(SchemaError, match="timezone-aware"):
        Post(id="p1", platform="x", author_id="u", text="t",
             created_at=datetime(2024, 3, 1, 12),  # noqa: DTZ001 - naive on purpose
             topic="t", conversation_id="c")


def test_records_are_frozen() -> None:
    post = post_from_dict(good_post_dict())
    with pytest.raises(AttributeError):
        post.text = "changed"  # type: ignore[misc]


def test_validate_post_lists_every_missing_field() -> None:
    obj = good_post_dict()
    del obj["text"], obj["topic"]
    reason = validate_post(obj)
    assert reason is not None and "text" in reason and "topic" in reason


def test_fast_validation_path_agrees_with_the_json_schema() -> None:
    """validate_post's compiled fast path agrees with jsonschema: over many mutations of a
    valid post it accepts exactly what the schema accepts and finds the same wrong fields, and
    the reason (written from fastjsonschema's first error) names one of them."""
    import random

    import jsonschema

    from polarwatch.validation import _fast_failures

    schema = jsonschema.Draft202012Validator(json_schema(Post))
    good = {"id": "p1", "platform": "x", "author_id": "a", "text": "hello",
            "created_at": "2026-01-01T00:00:00+00:00", "topic": "t", "conversation_id": "c",
            "parent_id": None, "lang": "en", "schema_version": 1}
    values: list[Any] = [None, True, 0, 1, 1.5, "", "x", "y" * 10_001, [], {},
                         "2026-01-01T00:00:00Z"]
    rng = random.Random(0)
    checked = 0
    for _ in range(3000):
        obj = dict(good)
        for key in rng.sample(sorted(good), rng.randint(1, 3)):
            if rng.random() < 0.2:
                obj.pop(key)
            else:
                obj[key] = rng.choice(values)
        errors = list(schema.iter_errors(obj))
        failed = _fast_failures(obj)
        if not failed:
            assert not errors, obj
            checked += 1
            continue
        # the same fields are wrong for both, and the reason names one of them
        wrong = {e.path[0] for e in errors if e.path} | {
            m for e in errors if e.validator == "required" for m in e.validator_value
            if m not in obj}
        assert set(failed) == wrong, obj
        reason = validate_post(obj)
        assert reason is not None, obj
        assert reason.startswith("missing required") or \
            reason.split(":")[0].removesuffix(" is empty") in failed, reason
    assert checked > 50  # the fast path accepted (and was checked on) many records
