"""One rule for an empty required string (audit finding 10): present but ``""`` is a dead letter
``<field> is empty``, absent is ``missing required field(s)``, in the shared validation, so ingest,
the stream's check of a direct producer's record and the printed JSON Schema all agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from polarwatch.config import load_topics
from polarwatch.records import Post
from polarwatch.schemas import json_schema
from polarwatch.validation import REQUIRED_FIELDS, validate_post
from stream.udfs import LabelStage

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2021, 5, 2, tzinfo=UTC)
# the audit's valid record
R = {"id": "k1", "text": "climate policy now", "platform": "p", "author_id": "a",
     "created_at": "2021-05-01T12:00:00Z", "topic": "climate_change", "conversation_id": "c"}
STAGE = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))


def stream_reason(record: dict[str, Any]) -> str | None:
    """What the stream's parse of a direct producer's Kafka value says (None: stored)."""
    reason = STAGE.parse(json.dumps(record).encode(), NOW)["dead_reason"]
    return None if reason is None else str(reason)


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_an_empty_required_field_is_a_dead_letter_saying_it_is_empty(field: str) -> None:
    assert validate_post(R, NOW) is None and stream_reason(R) is None  # the valid record
    record = {**R, field: ""}
    expected = f"{field} is empty: every post needs a non-empty {field}"
    assert validate_post(record, NOW) == expected  # ingest's producer
    assert stream_reason(record) == expected  # the stream, for any producer


@pytest.mark.parametrize("field", REQUIRED_FIELDS)
def test_an_absent_required_field_is_missing_not_empty(field: str) -> None:
    record = {k: v for k, v in R.items() if k != field}
    reason = validate_post(record, NOW)
    assert reason is not None and reason.startswith(f"missing required field(s): {field} (")
    assert stream_reason(record) == reason


def test_two_empty_fields_name_the_first_and_count_the_other() -> None:
    record = {**R, "author_id": "", "text": ""}
    assert validate_post(record, NOW) == ("author_id is empty: every post needs a non-empty "
                                          "author_id (+1 more)")


def test_the_printed_schema_says_minlength_1_for_every_required_string() -> None:
    """A producer validating against `polarwatch schema` refuses what the stream refuses."""
    schema = json_schema(Post)
    assert [f for f in schema["required"] if schema["properties"][f].get("minLength") != 1] == []
    for field in REQUIRED_FIELDS:
        with pytest.raises(jsonschema.ValidationError) as err:
            jsonschema.validate({**R, field: ""}, schema)
        assert err.value.validator == "minLength" and list(err.value.path) == [field]
    jsonschema.validate(R, schema)
    # optional strings may still be empty: "" parent_id is a root, "" lang no language
    jsonschema.validate({**R, "parent_id": "", "lang": ""}, schema)
    assert validate_post({**R, "parent_id": "", "lang": ""}, NOW) is None
