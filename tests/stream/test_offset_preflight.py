"""`polarwatch stream` after a restart of the in-memory broker (it lost the messages the
checkpoint has read) says so in one line, exit 2, before Spark starts (real broker restarted,
real Spark for the first run, the real CLI for the second). It printed ~35 lines first: a Spark
ERROR, a Python traceback and ~30 Java frames."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import EmbeddedBroker, ensure_topics, free_port
from ingest.producer import PostProducer
from polarwatch.config import load_config
from polarwatch.records import Post
from stream.job import run_stream
from tests.conftest import REPO
from tests.kafka_helpers import stream_env

pytestmark = pytest.mark.slow

FAIL_WITHIN_S = 15.0  # Spark alone takes longer than this to start here


def _stream(env: dict[str, str], cwd: Path) -> tuple[int, list[str], str, float]:
    child = {**os.environ, **env, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml")}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", "stream"], cwd=cwd,
                          env=child, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines(), proc.stdout, time.monotonic() - t0


def test_a_stream_after_the_memory_broker_restarted_says_it_in_one_line(
        spark: Any, tmp_path: Path) -> None:
    broker = EmbeddedBroker(free_port(), tmp_path / "broker")
    broker.start()
    try:
        env = stream_env(broker.bootstrap, tmp_path)
        cfg = load_config(REPO / "polarwatch.toml", env=env)
        topics = [cfg.topics.posts, cfg.topics.dead_letter]
        ensure_topics(broker.bootstrap, topics, cfg.topics.partitions)
        with PostProducer(broker.bootstrap, *topics) as producer:
            for i in range(4):
                producer.send_post(Post(id=f"k{i}", platform="p", author_id="u",
                                        text="gun control now", created_at=datetime.now(UTC),
                                        topic="gun_control", conversation_id=f"k{i}"))
        run_stream(cfg, spark=spark)  # the checkpoint has read the 4 posts
        broker.stop()
        broker.start()  # memory storage: the messages are gone

        code, lines, out, took = _stream(env, tmp_path)  # not even the topic is there
        assert (code, len(lines), out) == (2, 1, ""), lines
        assert lines[0].startswith(f"polarwatch: error: offsets of topic {cfg.topics.posts!r} "
                                   f"went backwards (partition ")
        assert f"the broker has no topic {cfg.topics.posts!r}" in lines[0]
        assert took < FAIL_WITHIN_S, took

        ensure_topics(broker.bootstrap, topics, cfg.topics.partitions)  # `broker start` does
        code, lines, out, took = _stream(env, tmp_path)
        assert (code, len(lines), out) == (2, 1, ""), lines
        assert ", broker at 0" in lines[0] and "no topic" not in lines[0]
        assert "run `polarwatch stream --reset`" in lines[0]
        assert took < FAIL_WITHIN_S, took
    finally:
        broker.stop()
