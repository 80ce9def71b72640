"""The sink drains the ingest dead-letter topic into dead_letters (real broker, real DuckDB):
once per record, across batches, after a failed batch and after a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingest.producer import PostProducer
from polarwatch.warehouse import connect
from stream.dead_letters import DeadLetterDrain
from stream.sink import DuckDBSink
from stream.udfs import LabelStage
from tests.kafka_helpers import unique_topics

# a micro-batch with no posts, as the labeling stage outputs it
EMPTY = LabelStage("lexicon", (), ()).label_frame(pd.DataFrame({
    "kafka_partition": pd.Series([], dtype="int32"), "kafka_offset": pd.Series([], dtype="int64"),
    "broker_ts": pd.Series([], dtype="datetime64[us, UTC]"), "value": pd.Series([], dtype=object)}))


def _rows(path: Path) -> list[tuple]:
    with connect(path, read_only=True) as con:
        return con.execute("SELECT source, kafka_partition, kafka_offset, reason, raw_size "
                           "FROM dead_letters ORDER BY ALL").fetchall()


def _sink(path: Path, bootstrap: str, dead: str) -> DuckDBSink:
    return DuckDBSink(path, "q", "posts", dead_letters=DeadLetterDrain(bootstrap, dead))


def test_ingest_dead_letters_are_stored_once(broker: Any, tmp_path: Path) -> None:
    posts, dead = unique_topics(broker.bootstrap, "drain", partitions=1)
    path = tmp_path / "drain.duckdb"
    sink = _sink(path, broker.bootstrap, dead)
    with PostProducer(broker.bootstrap, posts, dead) as producer:
        for raw in (b"{", b"[]", b'{"id": 1}'):
            producer.send_raw(raw)
    assert sink.write(EMPTY.copy(), 0).ingest_dead == 3
    assert [r[2] for r in _rows(path)] == [0, 1, 2]
    assert all(r[0] == "ingest" and r[4] is not None for r in _rows(path))

    with PostProducer(broker.bootstrap, posts, dead) as producer:
        producer.send_raw(b"not json")
        producer.dead_letter(b"z" * 2_000_000, "record: too big")  # cut, original size kept

    class Boom(Exception):
        pass

    broken = EMPTY.copy()
    original = sink._write_batch  # a batch that fails after the drain fetched its rows

    def fail(*args: Any, **kwargs: Any) -> None:
        raise Boom

    sink._write_batch = fail  # type: ignore[method-assign]
    with pytest.raises(Boom):
        sink.write(broken, 1)
    sink._write_batch = original  # type: ignore[method-assign]
    assert len(_rows(path)) == 3  # rolled back: nothing stored, nothing skipped
    assert sink.write(EMPTY.copy(), 1).ingest_dead == 2
    rows = _rows(path)
    assert [r[2] for r in rows] == [0, 1, 2, 3, 4] and rows[-1][4] == 2_000_000
    assert sink.write(EMPTY.copy(), 2).ingest_dead == 0  # nothing new: nothing twice

    restarted = _sink(path, broker.bootstrap, dead)  # a new process resumes from the table
    assert restarted.write(EMPTY.copy(), 3).ingest_dead == 0
    assert len(_rows(path)) == 5


@pytest.mark.parametrize("header", [b"99999999999999999999", b"-5", b"12abc", b"\xff\xfe",
                                    b"9" * 5000, b"9223372036854775808"])
def test_a_forged_size_header_is_noted_not_fatal(header: bytes) -> None:
    """Anyone can write to the dead-letter topic: a size header that is no BIGINT byte count
    must not stop the drain (it did: OverflowError in the Int64 cast, every run)."""
    from datetime import UTC, datetime

    from polarwatch.records import DEAD_LETTER_REASON_HEADER, DEAD_LETTER_SIZE_HEADER
    from stream.dead_letters import dead_letter_row, frame

    row = dead_letter_row("t", 0, 7, 0, b"{bad", [(DEAD_LETTER_REASON_HEADER, b"bad json"),
                                                 (DEAD_LETTER_SIZE_HEADER, header)],
                          datetime.now(UTC))
    df = frame([row])
    assert int(df["raw_size"].iloc[0]) == 4  # the record's own length
    assert "bad json" in row["reason"] and "unreadable" in row["reason"]


def test_a_valid_size_header_is_kept() -> None:
    from datetime import UTC, datetime

    from polarwatch.records import DEAD_LETTER_SIZE_HEADER
    from stream.dead_letters import dead_letter_row, frame

    row = dead_letter_row("t", 0, 7, 0, b"x", [(DEAD_LETTER_SIZE_HEADER, b"9223372036854775807")],
                          datetime.now(UTC))
    assert int(frame([row])["raw_size"].iloc[0]) == 2**63 - 1
    assert "unreadable" not in row["reason"]


def test_a_batch_on_the_dead_letter_topic_that_cannot_be_unpacked_is_stored_as_such(
        broker: Any, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    posts, dead = unique_topics(broker.bootstrap, "drain-codec", partitions=1)
    path = tmp_path / "drain.duckdb"
    for codec in ("snappy", "none"):  # snappy is not installed here
        producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.codec": codec})
        producer.produce(dead, value=b"{" + b" " * 5000, partition=0)  # compressible
        assert producer.flush(30) == 0
    assert _sink(path, broker.bootstrap, dead).write(EMPTY.copy(), 0).ingest_dead == 2
    rows = _rows(path)
    assert [r[2] for r in rows] == [0, 1]
    assert "cannot be unpacked" in rows[0][3] and "snappy" in rows[0][3].lower(), rows


def test_the_drain_keeps_at_most_max_bytes_of_raw_records_per_batch(
        broker: Any, tmp_path: Path) -> None:
    posts, dead = unique_topics(broker.bootstrap, "drain-bytes", partitions=1)
    path = tmp_path / "drain.duckdb"
    sink = DuckDBSink(path, "q", "posts",
                      dead_letters=DeadLetterDrain(broker.bootstrap, dead, max_bytes=100))
    with PostProducer(broker.bootstrap, posts, dead) as producer:
        for _ in range(3):
            producer.dead_letter(b"x" * 80, "record: test")
    assert [sink.write(EMPTY.copy(), i).ingest_dead for i in range(3)] == [2, 1, 0]
    assert [r[2] for r in _rows(path)] == [0, 1, 2]  # all of them, once


@pytest.mark.parametrize("ms", [253_402_300_799_999, 9_300_000_000_000, -1])
def test_a_dead_letter_time_pandas_cannot_hold_is_none_not_fatal(ms: int) -> None:
    """A time past 2262 on the dead-letter topic (anyone may write to it, with any time)
    stopped the drain at every micro-batch: pandas' nanoseconds end on 2262-04-11."""
    from datetime import UTC, datetime

    from stream.dead_letters import dead_letter_row, frame

    row = dead_letter_row("t", 0, 7, ms, b"x", [], datetime.now(UTC))
    assert row["rejected_at"] is None and frame([row])["rejected_at"].isna().all()
