"""How long the sink's checks before a micro-batch's commit take, by fetch size and storage.

    .venv/bin/python benchmarks/posts_checks_speed.py [--storage s3] [--partitions 2]
                                                      [--batches 1000] [--rounds 8]

Before each commit the sink compares one record per partition three times with the broker
(``stream.topic_generation.PostsLife``: the checkpoint's last post, the batch's first and last).
This starts an embedded broker (``--storage``), writes ``--batches`` one-record batches to each
partition (a live trickle of posts makes such batches), and times ``PostsLife.check`` for a batch
of the last 20 % of every partition, with the consumer the sink uses (one record batch per fetch)
and with one that fetches ranges (8 MiB), alternated.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from stream.kafka_source import ONE_BATCH, RANGE_FETCH_BYTES, consumer_for  # noqa: E402
from stream.topic_generation import PostsLife  # noqa: E402

TOPIC = "posts"


def fill(bootstrap: str, partitions: int, batches: int) -> pd.DataFrame:
    """One-record batches, `batches` per partition; their marks as the sink keeps them."""
    from kafka import KafkaProducer

    ensure_topics(bootstrap, [TOPIC], partitions)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    rows = []
    for i in range(batches * partitions):
        meta = producer.send(TOPIC, json.dumps({"platform": "x", "id": str(i)}).encode(),
                             partition=i % partitions).get(30)  # sent alone: a batch of one
        rows.append((meta.partition, meta.offset, "x", str(i)))
        if (i + 1) % 1000 == 0:
            print(f"  {i + 1:,} of {batches * partitions:,} records written", file=sys.stderr)
    producer.close()
    return pd.DataFrame(rows, columns=["kafka_partition", "kafka_offset", "platform", "id"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", choices=("memory", "s3"), default="s3")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--batches", type=int, default=1000, help="record batches per partition")
    ap.add_argument("--rounds", type=int, default=8)
    args = ap.parse_args(argv)

    state = Path(tempfile.mkdtemp(prefix="posts-checks-"))
    broker = EmbeddedBroker(free_port(), state / "broker", storage=args.storage)
    broker.start()
    try:
        rows = fill(broker.bootstrap, args.partitions, args.batches)
        tail = rows.groupby("kafka_partition").tail(max(args.batches // 5, 1))
        marks = {int(p): (int(o), str(pl), str(i)) for p, o, pl, i in
                 rows.drop(tail.index).groupby("kafka_partition").tail(1)
                 .itertuples(index=False)}
        times: dict[str, list[float]] = {"one batch": [], "8 MiB": []}
        for _ in range(args.rounds):
            for name, size in (("one batch", ONE_BATCH), ("8 MiB", RANGE_FETCH_BYTES)):
                life = PostsLife(broker.bootstrap, TOPIC, state)
                life._consumer = consumer_for(broker.bootstrap, fetch_bytes=size)
                life.check(tail, marks)  # connects and learns the topic: not timed
                t0 = time.perf_counter()
                life.check(tail, marks)
                times[name].append(time.perf_counter() - t0)
                life.close()
    finally:
        broker.stop(keep_storage=False) if args.storage == "s3" else broker.stop()
    print(f"storage {args.storage}, {args.partitions} partitions of {args.batches:,} "
          f"one-record batches, {args.rounds} rounds: seconds per micro-batch's checks")
    for name, ts in times.items():
        print(f"  {name:>9}: median {statistics.median(ts):.3f}, "
              f"range {min(ts):.3f}-{max(ts):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
