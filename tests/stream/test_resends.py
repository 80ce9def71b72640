"""A post id sent again (stream/resends.py), on the real DuckDB sink without Spark: the first
version seen is kept — the stored one across batches, the earliest by Kafka timestamp, partition,
offset within a batch — an exact copy is a duplicate, and a copy with other content is a dead
letter naming what differs. The audit's repro: p1 (parent p0) on partition 1, then p1 with no
parent and another conversation on partition 0 offset 8; the sink stored the later version,
because Spark hands a batch over partition by partition, and called the other a duplicate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kafka import KafkaProducer

from ingest.broker import ensure_topics
from polarwatch.config import Config
from polarwatch.warehouse import connect
from stream.job import run_stream
from stream.resends import REASON
from stream.sink import BatchResult, DuckDBSink

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


def _row(pid: str, partition: int, offset: int, sent_s: int, text: str = "We need gun control.",
         parent: str | None = None, conv: str = "c1") -> dict[str, Any]:
    """A row as the labelling stage emits it, sent `sent_s` seconds after T0 (its Kafka time)."""
    return {
        "id": pid, "platform": "t", "author_id": "u", "text": text, "created_at": T0,
        "topic": "gun_control", "conversation_id": conv, "parent_id": parent, "lang": "en",
        "schema_version": 1, "stance": "pro", "affect": "no", "agreement": None,
        "emotion": "neutral", "intensity": 0.1, "stance_conf": 0.9, "affect_conf": 0.9,
        "agreement_conf": None, "emotion_conf": 0.5, "backend": "test", "explanation": None,
        "kafka_partition": partition, "kafka_offset": offset,
        "broker_ts": T0 + timedelta(seconds=sent_s), "dead_reason": None, "raw": None}


P0 = _row("p0", 1, 3, 0)
P1 = _row("p1", 1, 4, 1, text="I agree.", parent="p0")
P1_LATER = _row("p1", 0, 8, 60, text="Something else entirely.", conv="c9")  # no parent


def _q(path: Path, sql: str) -> list[tuple]:
    with connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()


def _honest(res: BatchResult, rows: int) -> None:
    assert res.posts + res.dead + res.duplicates == rows, res


def test_within_a_batch_the_first_by_kafka_time_wins_whatever_the_partition(
        tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    sink = DuckDBSink(path, "q", "posts")
    p2, p2_again = _row("p2", 1, 5, 2), _row("p2", 0, 9, 61)  # an exact re-send
    # partition 0 first, as Spark hands the batch over
    res = sink.write(pd.DataFrame([P1_LATER, p2_again, P0, P1, p2]), 0)
    _honest(res, 5)
    assert (res.posts, res.duplicates, res.dead, res.conflicts) == (3, 1, 1, 1)
    assert _q(path, "SELECT id, parent_id, conversation_id, text, kafka_partition, kafka_offset "
                    "FROM posts ORDER BY id") == [
        ("p0", None, "c1", P0["text"], 1, 3), ("p1", "p0", "c1", "I agree.", 1, 4),
        ("p2", None, "c1", p2["text"], 1, 5)]
    assert _q(path, "SELECT post_id, parent_id FROM interactions") == [("p1", "p0")]
    (partition, offset, source, reason, raw), = _q(
        path, "SELECT kafka_partition, kafka_offset, source, reason, raw FROM dead_letters")
    assert (partition, offset, source) == (0, 8, "stream")
    assert reason == (f"{REASON}: id 'p1' (platform 't') differs in text, conversation_id, "
                      f"parent_id; the first version (partition 1, offset 4) is kept")
    kept = json.loads(raw)  # nothing of the other version is lost
    assert (kept["text"], kept["conversation_id"], kept["parent_id"]) == (
        "Something else entirely.", "c9", None)
    assert kept["created_at"] == T0.isoformat()
    assert _q(path, "SELECT n_posts, n_dead FROM stream_batches") == [(3, 1)]


def test_across_batches_the_stored_version_wins_and_a_replay_adds_nothing(
        tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    sink = DuckDBSink(path, "q", "posts")
    sink.write(pd.DataFrame([P0, P1]), 0)
    # a later batch, even with an earlier Kafka time: the stored version stays
    changed = {**P1, "kafka_partition": 0, "kafka_offset": 8, "broker_ts": T0,
               "text": "I disagree."}
    same = {**P1, "kafka_offset": 9}  # the same content again
    batch = pd.DataFrame([changed, same])
    res = sink.write(batch, 1)
    _honest(res, 2)
    assert (res.posts, res.duplicates, res.dead, res.conflicts) == (0, 1, 1, 1)
    assert _q(path, "SELECT text FROM posts WHERE id = 'p1'") == [("I agree.",)]
    assert _q(path, "SELECT kafka_offset, reason FROM dead_letters") == [
        (8, f"{REASON}: id 'p1' (platform 't') differs in text; the first version "
            f"(partition 1, offset 4) is kept")]
    # Spark replays batch 1 after a crash between the DuckDB commit and its own commit
    assert sink.write(batch, 1).skipped
    assert _q(path, "SELECT count(*) FROM dead_letters") == [(1,)]


def test_a_new_checkpoint_reading_the_same_records_again_dead_letters_nothing_new(
        tmp_path: Path) -> None:
    """`stream --reset` reads the topic again under a new query key: a stored post's own record
    (same partition and offset) is a duplicate even when the stored row differs from what the
    stream parses now (a file written before a self or empty parent was made a root)."""
    path = tmp_path / "w.duckdb"
    batch = pd.DataFrame([P0, P1, P1_LATER])
    DuckDBSink(path, "q", "posts").write(batch, 0)
    with connect(path) as con:
        con.execute("UPDATE posts SET parent_id = '' WHERE id = 'p0'")  # as stored before
    res = DuckDBSink(path, "q@new-checkpoint", "posts").write(batch, 0)
    assert not res.skipped
    _honest(res, 3)
    assert (res.posts, res.duplicates, res.dead, res.conflicts) == (0, 2, 1, 1)  # P1_LATER
    assert _q(path, "SELECT kafka_partition, kafka_offset FROM dead_letters") == [(0, 8)]
    assert _q(path, "SELECT id, parent_id FROM posts ORDER BY id") == [("p0", ""), ("p1", "p0")]


@pytest.mark.slow
def test_the_audits_repro_end_to_end(stream_config: Config, spark: object) -> None:
    """Another client's records through the real broker and Spark (local[2]): p1 on partition
    1, then p1 again with other content on partition 0 at a later Kafka time, in one batch; and
    k13, which names itself as its parent."""
    cfg = stream_config
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)

    def record(pid: str, parent: str | None, conv: str, text: str) -> bytes:
        return json.dumps({"id": pid, "parent_id": parent, "platform": "kafka",
                           "author_id": "a", "text": text, "created_at": "2024-05-02T10:00:00Z",
                           "topic": "gun_control", "conversation_id": conv}).encode()

    sent = int(T0.timestamp() * 1000)
    producer = KafkaProducer(bootstrap_servers=cfg.broker.bootstrap_servers)
    for partition, offset_ms, value in [
            (1, 0, record("p0", None, "c1", "We need gun control now.")),
            (1, 1, record("p1", "p0", "c1", "Exactly, well said. Time for background checks.")),
            (0, 2, record("k13", "k13", "kc", "gun control now")),
            (0, 60_000, record("p1", None, "c2", "Stand up for gun rights."))]:
        producer.send(cfg.topics.posts, value=value, partition=partition,
                      timestamp_ms=sent + offset_ms)
    producer.flush()
    producer.close()

    run_stream(cfg, spark=spark)

    wh = cfg.warehouse_path
    assert _q(wh, "SELECT id, parent_id, conversation_id FROM posts ORDER BY id") == [
        ("k13", None, "kc"), ("p0", None, "c1"), ("p1", "p0", "c1")]
    assert _q(wh, "SELECT post_id, parent_id FROM interactions") == [("p1", "p0")]
    assert _q(wh, "SELECT kafka_partition, kafka_offset, reason FROM dead_letters") == [
        (0, 1, f"{REASON}: id 'p1' (platform 'kafka') differs in text, conversation_id, "
               f"parent_id; the first version (partition 1, offset 1) is kept")]
    assert _q(wh, "SELECT sum(n_posts), sum(n_dead) FROM stream_batches") == [(3, 1)]
