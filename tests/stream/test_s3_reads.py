"""Reading a long partition back from the embedded broker's s3 storage (issue 13).

Tansu's s3 engine answers a fetch by listing the partition's record objects and reading them one
by one until the fetch's max wait has passed. With a 100 ms wait a partition of a few hundred
batch objects came back empty on every fetch, and the stream stalled for good (the first soak).
Here a partition of 400 batches must be read back whole by the stream's range reader and by the
dead-letter drain's latest-offset lookup."""

from __future__ import annotations

import time

from kafka import KafkaProducer

from ingest.broker import EmbeddedBroker, ensure_topics
from stream.kafka_source import consumer_for, latest_offsets, read_range

BATCHES, PER_BATCH = 400, 20  # each flushed on its own: one S3 object per batch


def test_a_partition_of_hundreds_of_objects_reads_back_whole(
        s3_broker: EmbeddedBroker) -> None:
    topic = "long-partition"
    ensure_topics(s3_broker.bootstrap, [topic], 1)
    producer = KafkaProducer(bootstrap_servers=s3_broker.bootstrap, linger_ms=0)
    for b in range(BATCHES):
        for i in range(PER_BATCH):
            producer.send(topic, value=str(b * PER_BATCH + i).encode(), partition=0)
        producer.flush()
    producer.close()
    total = BATCHES * PER_BATCH

    consumer = consumer_for(s3_broker.bootstrap)
    try:
        assert latest_offsets(consumer, topic) == {"0": total}
    finally:
        consumer.close()
    t0 = time.monotonic()
    values = [int(v) for _, _, _, v in read_range(s3_broker.bootstrap, topic, 0, 0, total)]
    took = time.monotonic() - t0
    assert values == list(range(total)), (len(values), took)
