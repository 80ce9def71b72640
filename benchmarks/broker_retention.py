"""What `polarwatch broker prune` frees: bucket bytes and process memory before and after.

Starts the embedded broker with s3 storage (Tansu + a moto S3 server) in a temp dir, produces
``--posts`` synthetic posts per round (``--compression``, default zstd like PostProducer) to a 4-partition topic, has a consumer
group commit ``--consumed`` of each partition, then prunes with every batch past the retention; ``--rounds`` times, to see whether the
S3 server's memory is reused.
Prints the bucket's record-batch bytes and the RSS of the broker and of the S3 server before and
after, and checks that every unconsumed record is still served.

    .venv/bin/python benchmarks/broker_retention.py --posts 200000 --consumed 0.75 \
        [--compression none]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.producer_throughput import corpus  # noqa: E402
from ingest.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from ingest.retention import prune, read_storage, s3_client  # noqa: E402

PARTITIONS = 4


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bucket_bytes(endpoint: str) -> tuple[int, int]:
    batches, _ = read_storage(s3_client(endpoint))
    return len(batches), sum(b.size for b in batches)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3,
                    help="produce, commit and prune this many times (memory reuse)")
    ap.add_argument("--no-prune", action="store_true",
                    help="control run: measure the same rounds without pruning")
    ap.add_argument("--compression", default="zstd", help="zstd (PostProducer's) or none")
    ap.add_argument("--consumed", type=float, default=0.75,
                    help="share of each partition the consumer group has committed")
    args = ap.parse_args()
    from kafka import KafkaConsumer, KafkaProducer, OffsetAndMetadata, TopicPartition

    from stream.kafka_source import latest_offsets

    print(f"load average: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        broker = EmbeddedBroker(free_port(), Path(tmp), storage="s3")
        broker.start()
        try:
            endpoint = broker.s3_endpoint()
            assert endpoint is not None
            topic = f"retention-{uuid.uuid4().hex[:8]}"
            ensure_topics(broker.bootstrap, [topic], PARTITIONS)
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            pairs = corpus(args.posts)
            print(f"RSS at start: broker (Tansu) {rss_mb(broker.pid()):.0f} MB, S3 server "
                  f"(moto) {rss_mb(broker.s3_pid()):.0f} MB")
            for rnd in range(1, args.rounds + 1):
                t0 = time.perf_counter()
                producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=20,
                                         batch_size=256 * 1024,
                                         compression_type=None if args.compression == "none"
                                         else args.compression)
                for key, value in pairs:
                    producer.send(topic, key=key, value=value)
                producer.flush()
                producer.close()
                print(f"round {rnd}: produced {len(pairs):,} posts in "
                      f"{time.perf_counter() - t0:.1f} s")
                probe = KafkaConsumer(bootstrap_servers=broker.bootstrap)
                ends = {int(p): e for p, e in latest_offsets(probe, topic).items()}
                probe.close()
                group = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="bench",
                                      enable_auto_commit=False)
                group.assign(tps)
                committed = {tp: int(ends[tp.partition] * args.consumed) for tp in tps}
                group.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in committed.items()})
                group.close()
                before = bucket_bytes(endpoint)
                rss_before = rss_mb(broker.pid()), rss_mb(broker.s3_pid())
                t0 = time.perf_counter()
                report = prune(endpoint, retention_hours=1, retention_mb=0,
                               now=datetime.now(UTC) + timedelta(hours=2),
                               dry_run=args.no_prune)
                took = time.perf_counter() - t0
                time.sleep(2)
                after = bucket_bytes(endpoint)
                rss_after = rss_mb(broker.pid()), rss_mb(broker.s3_pid())
                verb = "would remove" if args.no_prune else "removed"
                print(f"round {rnd}: prune {verb} {len(report.removed):,} of {report.batches:,} "
                      f"batches in {took:.2f} s; bucket {before[1] / 1e6:.1f} -> "
                      f"{after[1] / 1e6:.1f} MB; RSS broker {rss_before[0]:.0f} -> "
                      f"{rss_after[0]:.0f} MB, S3 server {rss_before[1]:.0f} -> "
                      f"{rss_after[1]:.0f} MB")
            reader = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                   consumer_timeout_ms=5000)
            lost = 0
            for tp in tps:
                reader.assign([tp])
                reader.seek(tp, committed[tp])
                seen: set[int] = set()
                while len(seen) < ends[tp.partition] - committed[tp]:
                    batch = reader.poll(timeout_ms=3000).get(tp, [])
                    if not batch:
                        break
                    seen.update(r.offset for r in batch if r.offset >= committed[tp])
                lost += ends[tp.partition] - committed[tp] - len(seen)
            reader.close()
            print(f"unconsumed records not served after the prune: {lost}")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
