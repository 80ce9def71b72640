"""Property tests (hypothesis) at the ingest mapper and the producer, on the real broker: every
generated record is sent or dead-lettered, and nothing raises (issue #13)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.producer import PostProducer
from ingest.sources.base import pump
from ingest.sources.files import FileSource
from ingest.sources.mapping import RowMapper, parse_mapping
from tests.kafka_helpers import unique_topics
from tests.strategies import encode_json, json_values, post_dicts, raw_records

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow,
                                                    HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def producer(broker: Any) -> Iterator[PostProducer]:
    posts, dead = unique_topics(broker.bootstrap, "props")
    with PostProducer(broker.bootstrap, posts, dead, linger_ms=1) as p:
        yield p


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    """A row of an export: post fields or a preset's columns, each any JSON value or sane."""
    row: dict[str, Any] = draw(post_dicts())
    for column in draw(st.lists(st.sampled_from(["body", "created_utc", "author", "link_id",
                                                 "in_reply_to_status_id", "title",
                                                 "referenced_tweets"]),
                                max_size=3)):
        row[column] = draw(json_values)
    return row


@PROPERTY_SETTINGS
@given(lines=st.lists(st.one_of(raw_records(), rows().map(encode_json)), min_size=1, max_size=6),
       preset=st.sampled_from([None, "reddit", "twitter"]))
def test_every_file_row_is_sent_or_dead_lettered(producer: PostProducer, lines: list[bytes],
                                                 preset: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        source = FileSource(path, mapper=RowMapper(parse_mapping(None, preset)))
        stats = pump(source.records(None), producer, topic="gun_control")
    assert stats.read > 0
    assert stats.sent + stats.dead_lettered + stats.ignored == stats.read, stats


@PROPERTY_SETTINGS
@given(records=st.lists(st.one_of(raw_records(), post_dicts()), min_size=1, max_size=8))
def test_the_producer_sends_or_dead_letters_everything(producer: PostProducer,
                                                       records: list[Any]) -> None:
    before = (producer.stats.sent, producer.stats.dead_lettered)
    for record in records:
        if isinstance(record, bytes):
            producer.send_raw(record)
        else:
            assert producer.send_obj(record) in ("sent", "dead_letter")
    producer.flush()  # the broker confirmed every record, dead letters included
    sent = producer.stats.sent - before[0]
    dead = producer.stats.dead_lettered - before[1]
    assert sent + dead == len(records)
