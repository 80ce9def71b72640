"""A transactional producer's records on the posts and dead-letter topics (real broker, real
Spark, real DuckDB). A commit or abort marker takes an offset but is never returned as a
record: a range ending on one was waited on for 60 s, then failed, and every restart planned the
same range again (a review: nothing stored, the stream stopped for good)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from ingest.broker import EmbeddedBroker
from ingest.producer import encode
from ingest.sources.synthetic import generate
from polarwatch.records import DEAD_LETTER_REASON_HEADER
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import one_partition_stream

START = datetime(2026, 2, 1, tzinfo=UTC)

pytestmark = pytest.mark.slow


def test_a_topic_ending_on_a_transaction_marker_is_read_to_its_end(
        memory_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = one_partition_stream(memory_broker.bootstrap, tmp_path)
    posts = list(generate(cfg.load_topics(), days=1, seed=1, start=START))[:6]
    producer = KafkaProducer(bootstrap_servers=memory_broker.bootstrap, transactional_id="pw-t")
    producer.init_transactions()
    for batch in (posts[:3], posts[3:]):  # each ends with its commit marker
        producer.begin_transaction()
        for post in batch:
            producer.send(cfg.topics.posts, encode(post))
        producer.send(cfg.topics.dead_letter, b"{bad",
                      headers=[(DEAD_LETTER_REASON_HEADER, b"malformed JSON")])
        producer.commit_transaction()
    producer.close()
    run_stream(cfg, spark=spark)  # failed after 60 s of waiting for offset 7, every run
    with connect(cfg.warehouse_path, read_only=True) as con:
        assert {r[0] for r in con.execute("SELECT id FROM posts").fetchall()} == {
            p.id for p in posts}
        assert con.execute("SELECT count(*) FROM dead_letters").fetchone() == (2,)
        batches = con.execute("SELECT count(*) FROM stream_batches").fetchone()
    run_stream(cfg, spark=spark)  # nothing new: no batch, nothing twice
    with connect(cfg.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (len(posts),)
        assert con.execute("SELECT count(*) FROM stream_batches").fetchone() == batches
