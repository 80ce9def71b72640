"""Every field of a post has a domain at the contract (issue #13): lengths, characters, the
created_at range against the ingest clock, schema_version, record size and nesting."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema
import pytest

from polarwatch.records import (
    FIELD_MAX_CHARS,
    MAX_DEAD_LETTER_BYTES,
    MAX_NESTING,
    MAX_RECORD_BYTES,
    MIN_CREATED_AT,
    Post,
)
from polarwatch.schemas import json_schema
from polarwatch.validation import (
    _fast_failures,
    cut_reason,
    parse_record,
    post_from_dict,
    truncate_raw,
    validate_post,
)

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def post(**overrides: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": "p1", "platform": "x", "author_id": "a", "text": "hello",
                           "created_at": "2026-06-01T10:00:00+00:00", "topic": "gun_control",
                           "conversation_id": "c1", "parent_id": None, "lang": "en"}
    obj.update(overrides)
    return obj


@pytest.mark.parametrize("field", sorted(FIELD_MAX_CHARS))
def test_every_string_field_has_a_maximum_length(field: str) -> None:
    limit = FIELD_MAX_CHARS[field]
    if field != "created_at":
        assert validate_post(post(**{field: "x" * limit}), NOW) is None
    reason = validate_post(post(**{field: "x" * (limit + 1)}), NOW)
    assert reason is not None and reason.startswith(f"{field}:")


@pytest.mark.parametrize("field", ["id", "author_id", "conversation_id", "parent_id", "topic",
                                   "platform", "lang"])
@pytest.mark.parametrize("char", ["\x00", "\n", "\x07", "\x1b", "\x7f", "\ud800", "\udfff"])
def test_ids_and_names_refuse_control_characters_and_lone_surrogates(field: str,
                                                                      char: str) -> None:
    reason = validate_post(post(**{field: f"a{char}b"}), NOW)
    assert reason is not None and reason.startswith(f"{field}: character U+{ord(char):04X}")


@pytest.mark.parametrize("char, ok", [("\n", True), ("\t", True), ("\x07", True),
                                      ("\x00", False), ("\ud800", False), ("\udc00", False)])
def test_texts_keep_whitespace_but_not_nul_or_lone_surrogates(char: str, ok: bool) -> None:
    assert (validate_post(post(text=f"line{char}two"), NOW) is None) is ok


@pytest.mark.parametrize("created, reason", [
    ("1999-12-31T23:59:59+00:00", "is before 2000-01-01"),
    ("2026-06-02T12:00:01+00:00", "is in the future"),  # NOW + 1 day + 1 s
    ("2300-01-01T00:00:00Z", "is in the future"),
    ("9999-12-31T23:59:59-23:59", "is out of range"),
    ("2026-06-01T10:00:00", "has no timezone offset"),
    ("yesterday", "is not an ISO-8601 timestamp"),
])
def test_created_at_range(created: str, reason: str) -> None:
    got = validate_post(post(created_at=created), NOW)
    assert got is not None and got.startswith("created_at:") and reason in got


def test_created_at_skew_is_configurable_and_inclusive() -> None:
    edge = (NOW + timedelta(days=1)).isoformat()
    assert validate_post(post(created_at=edge), NOW) is None
    assert validate_post(post(created_at=edge), NOW, timedelta(hours=1)) is not None
    assert validate_post(post(created_at=MIN_CREATED_AT.isoformat()), NOW) is None


@pytest.mark.parametrize("version, ok", [(1, True), (0, False), (2, False), (10**30, False),
                                         (1.0, True), (True, False)])  # 1.0 is a JSON integer
def test_schema_version_domain(version: Any, ok: bool) -> None:
    assert (validate_post(post(schema_version=version), NOW) is None) is ok


def test_record_size_nesting_and_junk_are_reasons_not_exceptions() -> None:
    assert parse_record(b'{"a": 1}') == ({"a": 1}, None)
    big = b'{"a": "' + b"x" * MAX_RECORD_BYTES + b'"}'
    assert "more than the" in str(parse_record(big)[1])
    assert "more than the" in str(parse_record(big.decode())[1])
    ok_depth = "[" * MAX_NESTING + "]" * MAX_NESTING
    assert parse_record(ok_depth)[1] is None
    too_deep = "[" * (MAX_NESTING + 1) + "]" * (MAX_NESTING + 1)
    assert "nested deeper" in str(parse_record(too_deep)[1])
    assert "nested deeper" in str(parse_record("[" * 100_000 + "]" * 100_000)[1])
    for junk in (b"\xff", b"1" * 5000, b"{", b"NaN]"):
        obj, reason = parse_record(junk)
        assert obj is None and reason is not None and reason.startswith("malformed JSON")


@pytest.mark.parametrize("raw", [b"", b" \r\n", "", "\t"])
def test_an_empty_record_is_named_empty(raw: bytes | str) -> None:
    """An empty value (a Kafka tombstone reaches the stream as b"") was "malformed JSON:
    Expecting value: line 1 column 1 (char 0)", as if a producer had sent broken JSON."""
    assert parse_record(raw) == (None, "record: empty (no JSON); a post is one JSON object "
                                       "(`polarwatch schema`)")


@pytest.mark.parametrize("created", ["2026-06-01t10:00:00z", "2026-06-01T10:00:00z",
                                     "2026-06-01t10:00:00+00:00", "2026-06-01 10:00:00Z"])
def test_rfc3339_lower_case_t_and_z_are_timestamps(created: str) -> None:
    """RFC 3339 (5.6) allows a lower-case "t" and "z". `ingest file` read them, but a post sent
    straight to Kafka with them was dead-lettered: "is not an ISO-8601 timestamp"."""
    assert validate_post(post(created_at=created), NOW) is None
    stored = post_from_dict(post(created_at=created)).created_at
    assert stored == datetime(2026, 6, 1, 10, tzinfo=UTC)


def test_a_number_too_long_for_python_is_named_not_a_python_setting() -> None:
    """A 5,000-digit id in valid JSON was dead-lettered as "malformed JSON: Exceeds the limit
    (4300 digits) ...; use sys.set_int_max_str_digits() to increase the limit": advice for a
    programmer, not for whoever sends the posts (ingest and the stream read it here)."""
    for raw in (b'{"id": ' + b"7" * 5000 + b', "text": "x"}', '{"id": [1, -' + "7" * 5000 + "]}"):
        obj, reason = parse_record(raw)
        assert obj is None and reason is not None
        assert reason.startswith("a JSON number of 5,000 digits at column ") and reason.endswith(
            'more than the 4,300 Python reads; write it as a string ("...") if it is an id'), reason


def test_dead_letter_helpers_cut_and_keep_the_size() -> None:
    raw = b"y" * (MAX_DEAD_LETTER_BYTES + 10)
    assert truncate_raw(raw) == (raw[:MAX_DEAD_LETTER_BYTES], len(raw))
    reason = cut_reason("x\ud800" + "z" * 1000)
    assert len(reason) <= 500 and reason.encode()  # encodable, bounded


def test_fast_path_agrees_with_the_schema_on_hostile_values() -> None:
    """The compiled fast path may only be stricter than jsonschema, never looser, also for
    the characters and bounds added by issue #13."""
    schema = jsonschema.Draft202012Validator(json_schema(Post))
    values: list[Any] = [None, 0, 1, 2, -1, 10**30, 1.5, "", "x", "a\x00b", "a\nb", "a\x7fb",
                         "a\ud800", "i" * 257, "t" * 10_001, "é" * 64, "é" * 65, [], {}]
    rng = random.Random(13)
    accepted = 0
    for _ in range(3000):
        obj = post(schema_version=1)
        for key in rng.sample(sorted(obj), rng.randint(1, 2)):
            obj[key] = rng.choice(values)
        schema_ok = not list(schema.iter_errors(obj))
        if not _fast_failures(obj):
            assert schema_ok, obj
            accepted += 1
        if not schema_ok:
            assert validate_post(obj, NOW) is not None, obj
    assert accepted > 50
