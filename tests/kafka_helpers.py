"""Helpers shared by the tests that talk to the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest.broker import ensure_topics
from polarwatch.config import Config, load_config

CONSUME_TIMEOUT_S = 15.0


def unique_topics(bootstrap: str, prefix: str, partitions: int = 2) -> tuple[str, str]:
    """A fresh (posts, dead-letter) topic pair for one test."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"{prefix}-posts-{suffix}", f"{prefix}-dead-{suffix}")
    ensure_topics(bootstrap, list(names), partitions)
    return names


def consume(bootstrap: str, topic: str, expected: int) -> list[Any]:
    """Read a topic from the beginning (no consumer group) until `expected` records arrived or
    CONSUME_TIMEOUT_S passed; then one more short poll so extra records would be seen too."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, fetch_max_wait_ms=100)
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    try:
        parts = consumer.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.1)
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"topic {topic} has no partitions"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
        return records
    finally:
        consumer.close()


def stream_env(bootstrap: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """POLARWATCH_* overrides pointing the shipped config at a test broker, fresh topics and
    temp DuckDB / lake / checkpoint paths (lexicon backend: no model weights needed)."""
    suffix = uuid.uuid4().hex[:8]
    return {
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": bootstrap,
        "POLARWATCH_TOPICS_POSTS": f"posts-{suffix}",
        "POLARWATCH_TOPICS_DEAD_LETTER": f"dead-{suffix}",
        "POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "pw.duckdb"),
        "POLARWATCH_WAREHOUSE_LAKE_DIR": str(tmp_path / "lake"),
        "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
        "POLARWATCH_EXTRACTOR_BACKEND": "lexicon",
        **overrides,
    }


def one_partition_stream(bootstrap: str, tmp_path: Path) -> Config:
    """The shipped config on :func:`stream_env`'s fresh topics, made with one partition each
    (records sent with a plain KafkaProducer then land in order on partition 0)."""
    cfg = load_config(Path(__file__).resolve().parents[1] / "polarwatch.toml", env=stream_env(
        bootstrap, tmp_path, POLARWATCH_TOPICS_PARTITIONS="1"))
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 1)
    return cfg


def stream_cli(tmp_path: Path, bootstrap: str, *args: str, timeout: float = 120,
               **overrides: str) -> subprocess.CompletedProcess[str]:
    """`polarwatch stream ARGS` in a child process on the shipped config pointed at `bootstrap`
    (:func:`stream_env` with `overrides`), in its own process group: a run still going after
    `timeout` seconds is killed with Spark's JVM, should it have started, and fails the test."""
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "POLARWATCH_CONFIG": str(repo / "polarwatch.toml"),
           **stream_env(bootstrap, tmp_path, **overrides)}
    proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream", *args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"`polarwatch stream {' '.join(args)}` with {overrides} on {bootstrap} "
                    f"still ran after {timeout:g} s")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
