"""Broker retention against the real embedded broker with s3 storage (Tansu + a moto S3 server):
consumed record batches past the retention are removed, nothing unconsumed is lost, and the
broker keeps serving old and new offsets; the pruning rules on their own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, ensure_topics, free_port
from ingest.retention import Batch, plan, prune, read_storage, s3_client

REPO = Path(__file__).resolve().parents[2]
ROUNDS, PER_ROUND = 4, 10  # each round flushed on its own: one record batch per round


@pytest.fixture(scope="module")
def s3_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("s3broker"), storage="s3")
    b.start()
    yield b
    b.stop()


def _produce(bootstrap: str, topic: str, rounds: int, start: int = 0) -> None:
    from kafka import KafkaProducer

    # A long linger: the round's records wait in the accumulator until flush() sends them as
    # one batch. With linger_ms=0 the sender thread could take a round's first records alone
    # when the machine was busy (CI saw bases 20, 21 and 30, 31: two batches for one round).
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=60_000)
    for r in range(rounds):
        for i in range(PER_ROUND):
            producer.send(topic, value=f"{start + r * PER_ROUND + i}".encode(), partition=0)
        producer.flush()
    producer.close()


def _commit(bootstrap: str, topic: str, group: str, offset: int) -> None:
    from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.commit({TopicPartition(topic, 0): OffsetAndMetadata(offset, "", -1)})
    consumer.close()


def _values(bootstrap: str, topic: str) -> list[int]:
    """Every record the broker still serves on partition 0, read the way the stream reads
    (assign + seek over [0, latest))."""
    from stream.kafka_source import consumer_for, latest_offsets, read_range

    consumer = consumer_for(bootstrap)
    try:
        end = latest_offsets(consumer, topic)["0"]
    finally:
        consumer.close()
    return [int(v) for _, _, _, v in read_range(bootstrap, topic, 0, 0, end)]


def test_prune_removes_consumed_batches_only_and_the_broker_keeps_serving(
        s3_broker: EmbeddedBroker) -> None:
    topic, idle = f"ret-{uuid.uuid4().hex[:8]}", f"ret-idle-{uuid.uuid4().hex[:8]}"
    ensure_topics(s3_broker.bootstrap, [topic, idle], 1)
    _produce(s3_broker.bootstrap, topic, ROUNDS)
    _produce(s3_broker.bootstrap, idle, 2)  # no group ever commits here
    consumed = 2 * PER_ROUND + 5  # the group stopped inside round 3
    _commit(s3_broker.bootstrap, topic, "stream", consumed)
    _commit(s3_broker.bootstrap, topic, "laggard-is-ahead", consumed + 10)
    endpoint = s3_broker.s3_endpoint()
    assert endpoint is not None

    later = datetime.now(UTC) + timedelta(hours=2)  # every batch is past a 1 h retention
    dry = prune(endpoint, retention_hours=1, retention_mb=0, dry_run=True, now=later)
    before, _ = read_storage(s3_client(endpoint))
    report = prune(endpoint, retention_hours=1, retention_mb=0, now=later)
    after, _ = read_storage(s3_client(endpoint))

    assert [b.key for b in dry.removed] == [b.key for b in report.removed]  # dry run: same plan
    ours = sorted((b for b in before if b.topic == topic), key=lambda b: b.base)
    assert [b.base for b in ours] == [0, 10, 20, 30]
    assert [b.base for b in report.removed] == [0, 10]  # round 3 holds offsets 25-29: kept
    assert report.held[(topic, 0)] == 20
    assert (idle, 0) in report.unguarded
    assert len(after) == len(before) - 2
    assert report.bytes_removed == ours[0].size + ours[1].size > 0
    # nothing unconsumed is lost, and the stream's reader still reads from the first kept batch
    assert _values(s3_broker.bootstrap, topic) == list(range(20, ROUNDS * PER_ROUND))
    assert _values(s3_broker.bootstrap, idle) == list(range(2 * PER_ROUND))
    # the broker still takes and serves new records after the prune
    _produce(s3_broker.bootstrap, topic, 1, start=ROUNDS * PER_ROUND)
    assert _values(s3_broker.bootstrap, topic) == list(range(20, (ROUNDS + 1) * PER_ROUND))


def _batch(base: int, size: int, hours_ago: float, now: datetime) -> Batch:
    return Batch(f"b{base}", "t", 0, base, size, now - timedelta(hours=hours_ago))


def test_plan_by_size_and_age() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    batches = [_batch(0, 100, 50, now), _batch(10, 100, 40, now), _batch(20, 100, 30, now),
               _batch(30, 100, 20, now), _batch(40, 100, 10, now)]
    committed = {("t", 0): 40}
    by_size = plan(batches, committed, retention_hours=0, retention_bytes=250, now=now)
    assert [b.base for b in by_size.removed] == [0, 10, 20]  # 500 → 200 bytes
    by_age = plan(batches, committed, retention_hours=35, retention_bytes=0, now=now)
    assert [b.base for b in by_age.removed] == [0, 10]  # older than 35 h
    off = plan(batches, committed, retention_hours=0, retention_bytes=0, now=now)
    assert off.removed == []
    everything = plan(batches, {("t", 0): 10**9}, retention_hours=1, retention_bytes=0, now=now)
    assert [b.base for b in everything.removed] == [0, 10, 20, 30]  # the newest always stays
    nothing_known = plan(batches, {}, retention_hours=1, retention_bytes=1, now=now)
    assert nothing_known.removed == [] and nothing_known.unguarded == [("t", 0)]


def test_plan_by_batch_count() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    batches = [_batch(base, 100, 0, now) for base in (0, 10, 20, 30, 40)]  # all new
    by_count = plan(batches, {("t", 0): 45}, retention_hours=168, retention_bytes=0, now=now,
                    retention_batches=2)
    assert [b.base for b in by_count.removed] == [0, 10, 20]  # 5 → 2 batches
    behind = plan(batches, {("t", 0): 15}, retention_hours=168, retention_bytes=0, now=now,
                  retention_batches=2)
    assert [b.base for b in behind.removed] == [0]  # 10-19 not consumed: kept, and the rest
    assert behind.held == {("t", 0): 10}
    off = plan(batches, {("t", 0): 45}, retention_hours=168, retention_bytes=0, now=now)
    assert off.removed == []


def test_broker_start_runs_a_pruner_that_broker_stop_stops(tmp_path: Path) -> None:
    """`polarwatch broker start` with s3 storage keeps the partitions at most
    `retention_batches` batches long once they are consumed, with no other command run."""
    port = free_port()
    env = {**os.environ, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"),
           "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
           "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker"),
           "POLARWATCH_BROKER_STORAGE": "s3", "POLARWATCH_BROKER_RETENTION_BATCHES": "2",
           "POLARWATCH_BROKER_PRUNE_EVERY_S": "0.5"}
    broker = EmbeddedBroker(port, tmp_path / "broker", storage="s3")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "polarwatch.cli", "broker", *args],
                              env=env, cwd=REPO, capture_output=True, text=True, timeout=120)

    try:
        start = cli("start")
        assert start.returncode == 0, start.stderr
        assert "pruner running every 0.5 s" in start.stdout + start.stderr
        pruner = broker.pruner_pid()
        assert pruner is not None
        topic = "pruned"
        ensure_topics(broker.bootstrap, [topic], 1)
        _produce(broker.bootstrap, topic, ROUNDS)  # ROUNDS or more batches (the producer may
        # split a round in two)
        endpoint = broker.s3_endpoint()
        assert endpoint is not None
        # nothing is pruned before a group commits: these are all the batches
        produced = sorted(b.base for b in read_storage(s3_client(endpoint))[0] if b.topic == topic)
        assert len(produced) >= ROUNDS
        _commit(broker.bootstrap, topic, "stream", ROUNDS * PER_ROUND)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            left = [b for b in read_storage(s3_client(endpoint))[0] if b.topic == topic]
            if len(left) <= 2:
                break
            time.sleep(0.5)
        assert sorted(b.base for b in left) == produced[-2:]  # the newest two stay
    finally:
        stop = cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert broker.pruner_pid() is None
    with pytest.raises(ProcessLookupError):
        os.kill(pruner, 0)
