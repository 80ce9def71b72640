"""Ingest dead letters reach `dead_letters` also when no posts arrive, all of them, once (real
broker, real Spark, real DuckDB). They were drained only inside a posts micro-batch, at most
20,000 a run: a `stream` run with no new posts stored none, a backlog beyond one chunk waited
for posts that might never come, and an idle `stream --continuous` stored nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import stream.dead_letters
from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from polarwatch.config import Config, load_config
from polarwatch.records import Post
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.conftest import REPO
from tests.kafka_helpers import stream_env
from tests.stream.test_dead_letter_drain import _sink

pytestmark = pytest.mark.slow

CHUNK = 1_000  # DRAIN_MAX_RECORDS for these tests (20,000 in use): 2,500 are three chunks
BACKLOG = 2_500


def _config(broker: EmbeddedBroker, tmp_path: Path) -> Config:
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(broker.bootstrap, tmp_path))
    ensure_topics(broker.bootstrap, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    return cfg


def _producer(cfg: Config) -> PostProducer:
    return PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts, cfg.topics.dead_letter)


def _reject(cfg: Config, rows: range, again: int = 0) -> None:
    """Dead letters as `ingest file` sends them (keyed by file and row); the first `again` of
    them sent a second time, as `ingest file --restart` does (same key, new offset)."""
    with _producer(cfg) as producer:
        for row in [*rows, *list(rows)[:again]]:
            producer.send_raw(b'{"id": "r%d", "text": ' % row, origin=("rejects.jsonl", row))


def _counts(cfg: Config) -> tuple[int, int, int, int]:
    """Ingest dead letters stored, their distinct keys, distinct offsets, micro-batches."""
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT dead_letter_key), count(DISTINCT "
                             "(kafka_partition, kafka_offset)) FROM dead_letters WHERE source "
                             "= 'ingest'").fetchone()
        batches = con.execute("SELECT count(*) FROM stream_batches").fetchone()
    assert stored is not None and batches is not None
    return (*stored, batches[0])


def _post(pid: str) -> Post:
    return Post(id=pid, platform="p", author_id="a", text="gun control now",
                created_at=datetime.now(UTC), topic="gun_control", conversation_id=pid)


def test_a_run_with_no_new_posts_stores_every_dead_letter_in_chunks_once(
        broker: EmbeddedBroker, spark: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream.dead_letters, "DRAIN_MAX_RECORDS", CHUNK)
    cfg = _config(broker, tmp_path)
    with _producer(cfg) as producer:
        producer.send_post(_post("p1"))
    run_stream(cfg, spark=spark)  # the stream ran: a checkpoint, the post stored
    batches = _counts(cfg)[3]
    assert batches >= 1

    _reject(cfg, range(BACKLOG), again=10)  # after the stream ran, and no post with them
    run_stream(cfg, spark=spark)
    assert _counts(cfg) == (BACKLOG, BACKLOG, BACKLOG, batches)  # no micro-batch ran

    _reject(cfg, range(BACKLOG, BACKLOG + 5), again=5)
    run_stream(cfg, spark=spark)  # the next run: only the new ones, once
    assert _counts(cfg) == (BACKLOG + 5, BACKLOG + 5, BACKLOG + 5, batches)


def test_an_idle_continuous_stream_stores_dead_letters(
        broker: EmbeddedBroker, spark: Any, tmp_path: Path) -> None:
    cfg = _config(broker, tmp_path)
    run_stream(cfg, spark=spark)  # a checkpoint; the posts topic stays empty from here on
    _reject(cfg, range(30), again=3)
    run_stream(cfg, available_now=False, timeout=35.0, spark=spark)  # idle triggers only
    assert _counts(cfg)[:3] == (30, 30, 30)


def test_the_sink_drains_a_backlog_chunk_by_chunk_to_the_end(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    cfg = _config(broker, tmp_path)
    sink = _sink(cfg.warehouse_path, cfg.broker.bootstrap_servers, cfg.topics.dead_letter)
    assert sink.dead_letters is not None
    sink.dead_letters.max_records = 100
    _reject(cfg, range(250), again=20)
    assert sink.store_ingest_dead_letters() == 250
    assert sink.store_ingest_dead_letters() == 0  # at the end: nothing twice
    assert _counts(cfg)[:3] == (250, 250, 250)


def test_the_drain_ends_at_the_end_it_began_with_while_dead_letters_keep_coming(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Each chunk read to the topic's end as it stood then, and the loop stopped only at a
    chunk with no progress: under a steady trickle of new dead letters a run's final drain
    never ended (a review saw it still going at 40 s with 50 a second). It ends at the end it
    began with; the trickle is the next call's."""
    cfg = _config(broker, tmp_path)
    sink = _sink(cfg.warehouse_path, cfg.broker.bootstrap_servers, cfg.topics.dead_letter)
    assert sink.dead_letters is not None
    sink.dead_letters.max_records = 20
    _reject(cfg, range(200))
    stop, sent = threading.Event(), [0]

    def trickle() -> None:  # a dead letter every 10 ms, each its own send (a new end each time)
        with _producer(cfg) as producer:
            while not stop.is_set() and sent[0] < 5_000:
                producer.send_raw(b"{", origin=("trickle.jsonl", 1_000 + sent[0]))
                producer.flush()
                sent[0] += 1
                stop.wait(0.01)

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        stored, t0 = [0], time.monotonic()
        drainer = threading.Thread(target=lambda: stored.__setitem__(
            0, sink.store_ingest_dead_letters()), daemon=True)
        drainer.start()
        drainer.join(60)
        assert not drainer.is_alive(), f"still draining after 60 s ({sent[0]:,} sent meanwhile)"
        assert stored[0] >= 200 and time.monotonic() - t0 < 60
    finally:
        stop.set()
        feeder.join(30)
        sink.dead_letters.close()
