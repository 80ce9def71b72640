"""Restart the broker under a running pipeline: with s3 storage (a local S3 server that outlives
the broker) topics, messages and offsets survive, so the stream resumes from its checkpoint with
0 lost and 0 duplicated (issue 4). Also the lifecycle of that S3 server and the CLI with it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, ensure_topics, free_port, port_open
from ingest.producer import PostProducer
from ingest.retention import prune
from ingest.sources.synthetic import generate
from polarwatch.config import Config, load_config
from polarwatch.errors import BrokerError
from polarwatch.records import Post
from polarwatch.warehouse import connect
from stream.group_offsets import STREAM_GROUP
from stream.job import run_stream
from tests.kafka_helpers import consume, stream_env

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 2, 1, tzinfo=UTC)

pytestmark = pytest.mark.slow


def _config(broker: EmbeddedBroker, tmp_path: Path) -> Config:
    return load_config(REPO / "polarwatch.toml", env=stream_env(
        broker.bootstrap, tmp_path, POLARWATCH_BROKER_STORAGE="s3",
        POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER="300"))


def _produce(cfg: Config, posts: list[Post]) -> int:
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)
    return producer.stats.sent


def _counts(cfg: Config) -> list[tuple[int, ...]]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return [tuple(r) for r in con.execute(
            "SELECT count(*), count(DISTINCT id), "
            "count(DISTINCT (kafka_partition, kafka_offset)) FROM posts").fetchall()]


def _restart(broker: EmbeddedBroker) -> None:
    """Stop Tansu only (the S3 server keeps the data) and start it again on the same port."""
    s3_pid, old_pid = broker.s3_pid(), broker.pid()
    assert broker.stop(keep_storage=True) is True
    assert not port_open("127.0.0.1", broker.port)
    assert broker.s3_pid() == s3_pid is not None
    assert broker.start() != old_pid


def test_broker_restart_mid_pipeline_loses_and_duplicates_nothing(
        s3_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = _config(s3_broker, tmp_path)
    posts = list(generate(cfg.load_topics(), days=1, seed=11, start=START))
    half = len(posts) // 2
    produced = _produce(cfg, posts[:half])
    run_stream(cfg, spark=spark)  # several batches (300 records each)
    assert _counts(cfg) == [(produced, produced, produced)]

    _restart(s3_broker)
    produced += _produce(cfg, posts[half:])
    assert produced == len(posts)
    # resumes from the checkpoint: the broker still has the offsets, so no OffsetRegressionError
    run_stream(cfg, spark=spark)
    assert _counts(cfg) == [(produced, produced, produced)]  # 0 lost, 0 duplicated

    _restart(s3_broker)  # nothing new: a restart alone neither re-reads nor skips
    run_stream(cfg, spark=spark)
    assert _counts(cfg) == [(produced, produced, produced)]
    with connect(cfg.warehouse_path, read_only=True) as con:
        batches = con.execute("SELECT count(*), count(DISTINCT (query, batch_id)) "
                              "FROM stream_batches").fetchall()
    assert batches[0][0] == batches[0][1] > 2


def test_s3_storage_survives_restart_and_stop_discards_it(tmp_path: Path) -> None:
    b = EmbeddedBroker(free_port(), tmp_path / "state", storage="s3")
    try:
        b.start()
        endpoint = b.s3_endpoint()
        assert endpoint is not None and b.s3_pid() is not None
        topic = f"t-{uuid.uuid4().hex[:8]}"
        ensure_topics(b.bootstrap, [topic], 2)
        with PostProducer(b.bootstrap, topic, f"{topic}-dead") as producer:
            producer.send_many(_few_posts())
        sent = producer.stats.sent
        b.stop(keep_storage=True)
        b.start()
        assert b.s3_endpoint() == endpoint  # the same S3 server, found through state_dir
        assert len(consume(b.bootstrap, topic, sent)) == sent
        assert ensure_topics(b.bootstrap, [topic], 2) == []  # the topic is still there

        assert b.stop() is True  # keep_storage=False: the S3 server goes too
        assert b.s3_pid() is None and not (tmp_path / "state" / "s3.pid").exists()
        b.start()  # a new, empty S3 server
        assert ensure_topics(b.bootstrap, [topic], 2) == [topic]
    finally:
        b.stop()
    assert b.stop() is False


def _few_posts() -> list[Post]:
    topics = load_config(REPO / "polarwatch.toml", env={}).load_topics()
    return list(generate(topics, days=1, seed=5, start=START))[:40]


def test_unknown_storage_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match="memory, s3"):
        EmbeddedBroker(free_port(), tmp_path, storage="disk")


def test_cli_broker_start_status_stop_with_s3_storage(tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, POLARWATCH_CONFIG=str(REPO / "polarwatch.toml"),
               POLARWATCH_BROKER_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}",
               POLARWATCH_BROKER_STATE_DIR=str(tmp_path / "broker"),
               POLARWATCH_BROKER_STORAGE="s3")

    def cli(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "polarwatch.cli", "broker", action],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)

    b = EmbeddedBroker(port, tmp_path / "broker", storage="s3")
    try:
        out = cli("start")
        assert out.returncode == 0, out.stdout + out.stderr
        assert b.running() and b.s3_endpoint() is not None
        assert cli("status").returncode == 0
        out = cli("stop")
        assert out.returncode == 0 and "broker stopped" in out.stderr
        assert b.s3_pid() is None and not port_open("127.0.0.1", port)
        assert cli("status").returncode == 3
    finally:
        b.stop()


def _group_offsets(cfg: Config) -> dict[tuple[str, int], int]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cfg.broker.bootstrap_servers)
    try:
        got = admin.list_group_offsets(STREAM_GROUP)
    finally:
        admin.close()
    return {(tp.topic, tp.partition): meta.offset for tp, meta in got[STREAM_GROUP].items()}


def test_the_stream_reports_its_position_so_retention_prunes_only_what_is_stored(
        s3_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = _config(s3_broker, tmp_path)
    posts = list(generate(cfg.load_topics(), days=1, seed=12, start=START))
    half = len(posts) // 2
    produced = _produce(cfg, posts[:half])
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:  # two rejects: the dead-letter topic
        assert not producer.send_raw(b"{not json") and not producer.send_raw(b'{"id": 1}')
    run_stream(cfg, spark=spark)
    assert _counts(cfg) == [(produced, produced, produced)]

    # the consumer group holds the stored position: on the drained dead-letter topic exactly;
    # on the posts topic Spark reports a batch's end when it plans the next one, so the last
    # batch of a drain is reported by the next run (at most one trigger's records behind)
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = {(cfg.topics.posts, p): o for p, o in con.execute(
            "SELECT kafka_partition, max(kafka_offset) + 1 FROM posts GROUP BY 1").fetchall()}
        stored |= {(cfg.topics.dead_letter, p): o for p, o in con.execute(
            "SELECT kafka_partition, max(kafka_offset) + 1 FROM dead_letters "
            "WHERE source = 'ingest' GROUP BY 1").fetchall()}
    assert sum(o for (t, _), o in stored.items() if t == cfg.topics.dead_letter) == 2
    group = _group_offsets(cfg)
    assert set(group) == set(stored)
    dead = {k: v for k, v in stored.items() if k[0] == cfg.topics.dead_letter}
    assert {k: v for k, v in group.items() if k[0] == cfg.topics.dead_letter} == dead
    behind = [stored[k] - v for k, v in group.items() if k[0] == cfg.topics.posts]
    assert all(b >= 0 for b in behind) and 0 < sum(behind) <= 300, (group, stored)

    # then retention may delete what was consumed (everything but each partition's newest
    # batch), the stream still takes new posts, and nothing is lost or read twice
    endpoint = s3_broker.s3_endpoint()
    assert endpoint is not None
    report = prune(endpoint, retention_hours=1.0, retention_mb=0,
                   now=datetime.now(UTC) + timedelta(days=1))
    assert report.removed, report.summary()
    produced += _produce(cfg, posts[half:])
    run_stream(cfg, spark=spark)
    assert _counts(cfg) == [(produced, produced, produced)]
