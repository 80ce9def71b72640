"""A producer sets any broker time (CreateTime): one far in the future or the past must not
stop the stream (Spark's toPandas converts timestamps to nanoseconds, whose range ends in 2262)
nor make its records compare as another life (real broker, real Spark, real DuckDB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from ingest.broker import EmbeddedBroker
from ingest.producer import encode
from ingest.sources.synthetic import generate
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import one_partition_stream

START = datetime(2026, 2, 1, tzinfo=UTC)
TIMES_MS = [253_402_300_799_999, 9_300_000_000_000, 1, 0]  # 9999-12-31, 2264, 1970 twice

pytestmark = pytest.mark.slow


def test_records_with_broker_times_out_of_pandas_range_are_stored(
        memory_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = one_partition_stream(memory_broker.bootstrap, tmp_path)
    posts = list(generate(cfg.load_topics(), days=1, seed=1, start=START))[:len(TIMES_MS)]
    producer = KafkaProducer(bootstrap_servers=memory_broker.bootstrap)
    for post, ms in zip(posts, TIMES_MS, strict=True):
        producer.send(cfg.topics.posts, encode(post), timestamp_ms=ms)
        producer.send(cfg.topics.posts, json.dumps({"junk": ms}).encode(), timestamp_ms=ms)
    producer.flush()
    producer.close()
    run_stream(cfg, spark=spark)
    run_stream(cfg, spark=spark)  # the marks it left compare as this life: not refused
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT id FROM posts").fetchall()}
        dead = con.execute("SELECT kafka_offset, reason FROM dead_letters ORDER BY 1").fetchall()
    # past pandas' range: no broker time, so the wall clock is the ingest clock
    assert stored == {posts[0].id, posts[1].id}
    # a broker time of 1970 is the ingest clock the post's date is checked against: each is
    # a dead letter that says so, as is every record that is not a post
    assert [o for o, _ in dead] == [1, 3, 4, 5, 6, 7]
    assert all("ingest clock 1970-01-01 00:00 UTC" in why for o, why in dead if o in (4, 6))
