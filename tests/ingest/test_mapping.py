"""Rows of other schemas as posts (`ingest.sources.mapping`): a field of another type is refused
with its name, never stored as that type's repr."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ingest.sources.mapping import RowMapper, parse_time

ROW = {"id": "p1", "platform": "file", "author_id": "a", "text": "gun control now",
       "created_at": "2024-05-01T12:00:00Z", "topic": "gun_control", "conversation_id": "c1"}


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("text", True, "text: expected a string, got bool True"),
    ("text", ["a"], "text: expected a string, got list ['a']"),
    ("text", {"body": "gun control"}, "text: expected a string, got dict"),
    ("text", 42, "text: expected a string, got int 42"),
    ("text", b"gun \xff", "text: bytes that are not UTF-8 (byte 4 is 0xff)"),
    ("id", {"a": 1}, "id: expected a string or a whole number, got dict"),
    ("id", True, "id: expected a string or a whole number, got bool True"),
    ("author_id", 1.5, "author_id: expected a string or a whole number, got float 1.5"),
    ("conversation_id", [1], "conversation_id: expected a string or a whole number, got list"),
    ("parent_id", float("inf"), "parent_id: expected a string or a whole number, got float inf"),
    ("topic", 5, "topic: expected a string, got int 5"),
    ("lang", ["en"], "lang: expected a string, got list"),
    ("platform", {"x": 1}, "platform: expected a string, got dict"),
])
def test_a_field_of_another_type_is_refused_naming_it(field: str, value: Any,
                                                      expected: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(expected)):
        RowMapper()({**ROW, field: value})


def test_whole_numbers_are_ids_and_utf8_bytes_are_text() -> None:
    post = RowMapper()({**ROW, "id": 5, "author_id": 7.0, "conversation_id": 1234567890123,
                        "text": "gun control — yes".encode(), "lang": b"en"})
    assert post is not None
    assert (post["id"], post["author_id"], post["conversation_id"], post["text"], post["lang"]) \
        == ("5", "7", "1234567890123", "gun control — yes", "en")


@pytest.mark.parametrize("value", ["2024-05-01t12:00:00z", "2024-05-01t12:00:00+00:00",
                                   "2024-05-01T12:00:00z"])
def test_rfc3339_lower_case_t_and_z(value: str) -> None:
    assert parse_time(value) == "2024-05-01T12:00:00+00:00"
