"""A stream that ends closes the Kafka clients its sink opened (the dead-letter drain's reader and
group committer, the posts-topic check). They were kept until the process exited: one process
running many streams (the tests, the demo) kept a connected client per stream, which went on
reconnecting to a broker long gone and logged "No node available" into later work."""

from __future__ import annotations

import gc
import itertools
from datetime import UTC, datetime
from pathlib import Path

from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from ingest.sources.synthetic import generate
from polarwatch.config import load_config
from polarwatch.warehouse import connect, scalar
from stream.job import run_stream
from tests.conftest import REPO
from tests.kafka_helpers import stream_env


def open_consumers() -> dict[int, object]:
    """Every kafka-python consumer of this process not closed yet, by id. One whose constructor
    raised (no broker at its address, in an earlier test of this worker) never set ``_closed``
    and holds no client: it is not open."""
    from kafka import KafkaConsumer

    gc.collect()  # type(), not isinstance(): that asks torch's deprecated objects for a class
    return {id(c): c for c in gc.get_objects()
            if issubclass(type(c), KafkaConsumer) and not getattr(c, "_closed", True)}


def test_a_drained_stream_leaves_no_kafka_client_open(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(broker.bootstrap, tmp_path))
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    posts = list(itertools.islice(generate(cfg.load_topics(), days=1, seed=3,
                                           start=datetime(2026, 3, 1, tzinfo=UTC)), 40))
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)
        producer.send_raw(b"{not json")  # a dead letter: the drain reads its topic too
    before = open_consumers()

    run_stream(cfg, spark=spark)

    with connect(cfg.warehouse_path, read_only=True) as con:
        assert scalar(con, "SELECT count(*) FROM posts") == len(posts)
        assert scalar(con, "SELECT count(*) FROM dead_letters") == 1
    left = {k: c for k, c in open_consumers().items() if k not in before}
    assert not left, f"{len(left)} Kafka consumer(s) left open by the ended stream"
