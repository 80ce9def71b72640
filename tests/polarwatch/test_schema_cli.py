"""``polarwatch schema`` prints the record contract a user's own producer must follow."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import jsonschema

from polarwatch.validation import validate_post

POST = {"id": "p1", "platform": "reddit", "author_id": "a", "text": "Ban assault weapons.",
        "created_at": "2024-05-01T10:00:00Z", "topic": "gun_control", "conversation_id": "c1"}


def _schema() -> dict:
    out = subprocess.run([sys.executable, "-m", "polarwatch.cli", "schema"], capture_output=True,
                         text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_the_printed_schema_is_the_contract_in_force() -> None:
    schema = _schema()
    assert schema["required"] == ["id", "platform", "author_id", "text", "created_at", "topic",
                                  "conversation_id"]
    jsonschema.validate(POST, schema)  # a valid post passes the printed schema
    assert validate_post(POST, now=datetime(2024, 5, 2, tzinfo=UTC)) is None


def test_a_missing_field_names_it_the_whole_list_and_the_command() -> None:
    """Records from confluent-kafka / aiokafka producers without `platform` were dead-lettered
    with a reason that named neither the other fields nor where to read the contract."""
    post = {k: v for k, v in POST.items() if k != "platform"}
    reason = validate_post(post, now=datetime(2024, 5, 2, tzinfo=UTC))
    assert reason is not None and reason.startswith("missing required field(s): platform (")
    assert "id, platform, author_id, text, created_at, topic, conversation_id" in reason
    assert "`polarwatch schema`" in reason


def test_each_missing_field_is_named_once() -> None:
    """A record missing most fields listed each of them six times (one per schema error), so
    the reason overflowed the dead-letter header's 500 characters and was cut."""
    reason = validate_post({"id": "p1"}, now=datetime(2024, 5, 2, tzinfo=UTC))
    assert reason is not None
    named = reason.split(" (")[0].removeprefix("missing required field(s): ").split(", ")
    assert named == ["platform", "author_id", "text", "created_at", "topic", "conversation_id"]
    assert len(reason) < 500


def test_a_reader_that_stops_early_is_no_traceback() -> None:
    """`polarwatch schema | head` printed a BrokenPipeError traceback when head had gone."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        out = subprocess.run([sys.executable, "-m", "polarwatch.cli", "schema"], stdout=write_end,
                             stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (1, b"")
