"""Stopping the stream (Ctrl-C, the demo's shutdown) between micro-batches, on real parts: the
batch in hand finishes and is stored instead of being cancelled inside its Spark job (which
printed ~1,000 lines of Java stack traces), and a restart stores every other post exactly once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from ingest.sources.synthetic import generate
from polarwatch.config import load_config
from polarwatch.warehouse import connect, scalar
from stream import job
from stream.job import run_stream, start_stream, stop_between_batches
from tests.conftest import REPO
from tests.kafka_helpers import stream_env

POSTS = 1500


def _wait(what: str, ready: Callable[[], bool], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_stop_lets_the_batch_in_hand_finish_and_a_restart_stores_the_rest(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    # the shipped backend makes a batch of 500 posts take seconds inside its Spark job
    env = stream_env(broker.bootstrap, tmp_path, POLARWATCH_EXTRACTOR_BACKEND="learned",
                     POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER="500",
                     POLARWATCH_SPARK_TRIGGER_SECONDS="1")
    cfg = load_config(REPO / "polarwatch.toml", env=env)
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    posts = list(itertools.islice(generate(cfg.load_topics(), days=1, seed=5,
                                           start=datetime(2026, 3, 1, tzinfo=UTC)), POSTS))
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)

    query = start_stream(spark, cfg, available_now=False)
    sink = job._SINKS[query.id]
    _wait("a micro-batch in the sink", lambda: sink.busy)
    time.sleep(0.5)  # inside the batch's Spark job (labelling 500 posts)
    stop_between_batches(query)

    assert not query.isActive and query.exception() is None
    assert sink.started is not None
    assert sink.last_batch == sink.started  # the batch in hand finished, none was cut
    with connect(cfg.warehouse_path, read_only=True) as con:
        assert scalar(con, "SELECT max(batch_id) FROM stream_batches") == sink.started
        stored = scalar(con, "SELECT count(*) FROM posts")
    assert 0 < stored < POSTS

    run_stream(cfg, spark=spark)  # a restart drains the rest from the checkpoint
    with connect(cfg.warehouse_path, read_only=True) as con:
        assert scalar(con, "SELECT count(*) FROM posts") == POSTS
        assert scalar(con, "SELECT count(DISTINCT id) FROM posts") == POSTS
