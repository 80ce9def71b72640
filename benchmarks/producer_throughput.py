"""Producer throughput on this machine: kafka-python into the embedded broker, per codec.

For each compression codec it times (1) a bare ``KafkaProducer`` sending pre-encoded synthetic
posts keyed by conversation id, (2) polarwatch's :class:`~ingest.producer.PostProducer`
(``send_raw``: JSON parse + JSON-Schema validation + send) for the codecs in ``--validated``,
and (3) reading the topic back with a ``KafkaConsumer`` (this proves the codec can be *read*,
which needs the codec package installed). Each run writes to a fresh topic and ends with a flush
that waits for every acknowledgement (acks=all), so the figures are confirmed deliveries.

    .venv/bin/python benchmarks/producer_throughput.py --posts 100000 [--append-readme]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from ingest.broker import EmbeddedBroker, ensure_topics, free_port
from ingest.producer import PostProducer, encode
from ingest.sources.synthetic import generate
from polarwatch.config import load_topics

REPO = Path(__file__).resolve().parent.parent
PARTITIONS = 4
LINGER_MS = 20  # the same batching as PostProducer
BATCH_BYTES = 256 * 1024


def corpus(n: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of `n` synthetic posts, encoded once up front."""
    topics = load_topics(REPO / "topics.toml")
    out: list[tuple[bytes, bytes]] = []
    days = 7
    while len(out) < n:
        out = [(p.conversation_id.encode(), encode(p)) for p in
               generate(topics, days=days, seed=3, start=datetime(2024, 1, 1, tzinfo=UTC))]
        days *= 2
    return out[:n]


def bench_raw(bootstrap: str, topic: str, data: list[tuple[bytes, bytes]],
              codec: str | None) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type=codec,
                             linger_ms=LINGER_MS, batch_size=BATCH_BYTES)
    try:
        t0 = time.perf_counter()
        for key, value in data:
            producer.send(topic, key=key, value=value)
        producer.flush()
        return time.perf_counter() - t0
    finally:
        producer.close()


def bench_validated(bootstrap: str, topic: str, data: list[tuple[bytes, bytes]],
                    codec: str | None) -> float:
    with PostProducer(bootstrap, topic, f"{topic}-dead", compression=codec) as producer:
        t0 = time.perf_counter()
        for _key, value in data:
            producer.send_raw(value)
        producer.flush()
        elapsed = time.perf_counter() - t0
    assert producer.stats.sent == len(data), producer.stats
    return elapsed


def bench_consume(bootstrap: str, topic: str, expected: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_bytes=32 * 1024 * 1024, max_poll_records=10_000)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got, t0 = 0, time.perf_counter()
        deadline = t0 + 300
        while got < expected and time.perf_counter() < deadline:
            got += sum(len(b) for b in consumer.poll(timeout_ms=500).values())
        elapsed = time.perf_counter() - t0
    finally:
        consumer.close()
    if got != expected:
        raise SystemExit(f"read back {got:,} of {expected:,} records from {topic}")
    return elapsed


def run(args: argparse.Namespace) -> str:
    data = corpus(args.posts)
    mb = sum(len(k) + len(v) for k, v in data) / 1e6
    rows: list[tuple[str, str, float, float]] = []
    with tempfile.TemporaryDirectory() as state:
        broker = EmbeddedBroker(free_port(), Path(state))
        broker.start()
        try:
            for codec in args.codecs.split(","):
                comp = None if codec == "none" else codec
                topic = f"bench-{codec}-{uuid.uuid4().hex[:6]}"
                ensure_topics(broker.bootstrap, [topic], PARTITIONS)
                secs = bench_raw(broker.bootstrap, topic, data, comp)
                rows.append((codec, "KafkaProducer (pre-encoded)", len(data) / secs, mb / secs))
                print(rows[-1], flush=True)
                secs = bench_consume(broker.bootstrap, topic, len(data))
                rows.append((codec, "KafkaConsumer read-back", len(data) / secs, mb / secs))
                print(rows[-1], flush=True)
                if codec in args.validated.split(","):
                    vtopic = f"{topic}-v"
                    ensure_topics(broker.bootstrap, [vtopic, f"{vtopic}-dead"], PARTITIONS)
                    secs = bench_validated(broker.bootstrap, vtopic, data, comp)
                    rows.append((codec, "PostProducer.send_raw (validates)", len(data) / secs,
                                 mb / secs))
                    print(rows[-1], flush=True)
        finally:
            broker.stop()
    return report(args, rows, mb)


def report(args: argparse.Namespace, rows: list[tuple[str, str, float, float]],
           mb: float) -> str:
    import kafka

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## Producer throughput", "",
        f"{args.posts:,} synthetic posts ({mb:.1f} MB of keys + JSON values, "
        f"~{mb * 1e6 / args.posts:.0f} B each) into a fresh {PARTITIONS}-partition topic of the "
        f"embedded Tansu broker, kafka-python {kafka.__version__}, acks=all, "
        f"linger_ms={LINGER_MS}, batch_size={BATCH_BYTES // 1024} KiB; timed until the final "
        f"flush confirmed every record. {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, load average {load:.1f} at the end (the machine was shared).",
        "", "| codec | client | msg/s | MB/s |", "|---|---|---:|---:|",
        *[f"| {c} | {what} | {rate:,.0f} | {mbs:.1f} |" for c, what, rate, mbs in rows],
        "", "Reproduce:", "",
        f"    .venv/bin/python benchmarks/producer_throughput.py --posts {args.posts} "
        f"--codecs {args.codecs} --validated {args.validated}", "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--codecs", default="none,gzip,lz4,zstd")
    parser.add_argument("--validated", default="none,zstd",
                        help="codecs to also time through the validating PostProducer")
    parser.add_argument("--append-readme", action="store_true",
                        help="append the section to benchmarks/README.md (one write at the end)")
    args = parser.parse_args(argv)
    text = run(args)
    print(text)
    if args.append_readme:
        readme = REPO / "benchmarks" / "README.md"
        with open(readme, "a") as f:
            f.write(("\n" if readme.exists() and readme.stat().st_size else "") + text)


if __name__ == "__main__":
    main()
