"""Stream throughput and latency, end to end: produced → Kafka → Spark → stored in DuckDB.

    .venv/bin/python benchmarks/stream_throughput.py --posts 200000            # sustained rate
    .venv/bin/python benchmarks/stream_throughput.py --latency-rate 1000 --latency-seconds 60

Throughput: the corpus is produced first (texts made unique so nothing can be cached), then the
job drains it with Trigger.AvailableNow; the sustained rate counts from the end of the first
micro-batch (which carries ~7 s of Python-worker start-up) to the last commit.
Latency: posts are produced at a fixed rate with created_at = now while the job runs with a
processing-time trigger; latency = commit time (posts.ingested_at) − created_at, over all posts.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402
from ingest.producer import PostProducer  # noqa: E402
from ingest.sources.synthetic import generate  # noqa: E402
from polarwatch.config import Config, load_config  # noqa: E402
from polarwatch.warehouse import connect  # noqa: E402
from stream.job import build_spark, run_stream, start_stream  # noqa: E402


def make_config(tmp: Path, bootstrap: str, backend: str, max_rows: int,
                trigger: float) -> Config:
    env = {"POLARWATCH_BROKER_BOOTSTRAP_SERVERS": bootstrap,
           "POLARWATCH_WAREHOUSE_PATH": str(tmp / "bench.duckdb"),
           "POLARWATCH_WAREHOUSE_LAKE_DIR": str(tmp / "lake"),
           "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp / "ckpt"),
           "POLARWATCH_EXTRACTOR_BACKEND": backend,
           "POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER": str(max_rows),
           "POLARWATCH_SPARK_TRIGGER_SECONDS": str(trigger)}
    root = Path(__file__).resolve().parent.parent
    return load_config(root / "polarwatch.toml", env={**os.environ, **env})


def produce_corpus(cfg: Config, n: int) -> float:
    topics = cfg.load_topics()
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    t0 = time.perf_counter()
    sent = 0
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        days = 1
        while sent < n:
            for post in generate(topics, days=days, seed=days, rate=4.0):
                producer.send_post(replace(post, id=f"{post.id}-{days}",
                                           conversation_id=f"{post.conversation_id}-{days}",
                                           parent_id=post.parent_id and f"{post.parent_id}-{days}",
                                           text=f"{post.text} #{sent}"))
                sent += 1
                if sent >= n:
                    break
            days += 1
    return time.perf_counter() - t0


def throughput(args: argparse.Namespace, tmp: Path, broker: EmbeddedBroker) -> None:
    cfg = make_config(tmp, broker.bootstrap, args.backend, args.max_per_trigger, 1.0)
    secs = produce_corpus(cfg, args.posts)
    print(f"produced {args.posts:,} posts in {secs:.1f} s ({args.posts / secs:,.0f}/s)")
    t0 = time.perf_counter()
    spark = build_spark(cfg.spark.master)
    print(f"Spark up in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    run_stream(cfg, spark=spark)
    total = time.perf_counter() - t1
    spark.stop()
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
        batches = con.execute("SELECT batch_id, n_posts, committed_at FROM stream_batches "
                              "ORDER BY batch_id").fetchall()
    print(f"stored {stored:,} posts in {len(batches)} batches; whole run {total:.1f} s "
          f"({stored / total:,.0f} posts/s incl. first-batch warm-up)")
    if len(batches) > 1:
        span = (batches[-1][2] - batches[0][2]).total_seconds()
        rows = sum(b[1] for b in batches[1:])
        print(f"sustained (after batch 0): {rows:,} posts in {span:.1f} s = "
              f"{rows / span:,.0f} posts/s")


def latency(args: argparse.Namespace, tmp: Path, broker: EmbeddedBroker) -> None:
    cfg = make_config(tmp, broker.bootstrap, args.backend, args.max_per_trigger, args.trigger)
    topics = cfg.load_topics()
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    spark = build_spark(cfg.spark.master)
    query = start_stream(spark, cfg, available_now=False)
    stop = threading.Event()
    sent = [0]

    def produce() -> None:
        with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                          cfg.topics.dead_letter, linger_ms=5) as producer:
            corpus = generate(topics, days=30, seed=11, rate=4.0)
            t_start = time.perf_counter()
            while not stop.is_set():
                due = int((time.perf_counter() - t_start) * args.latency_rate)
                while sent[0] < due:
                    post = next(corpus)
                    producer.send_post(replace(post, created_at=datetime.now(UTC)))
                    sent[0] += 1
                producer.flush()
                time.sleep(0.01)

    print(f"warming up the stream for {args.warmup:.0f} s …")
    time.sleep(args.warmup)
    thread = threading.Thread(target=produce, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    time.sleep(args.latency_seconds)
    stop.set()
    thread.join()
    print(f"produced {sent[0]:,} posts in {time.perf_counter() - t0:.1f} s")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with connect(cfg.warehouse_path, read_only=True) as con:
            stored = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
        if stored >= sent[0]:
            break
        time.sleep(0.5)
    query.stop()
    spark.stop()
    with connect(cfg.warehouse_path, read_only=True) as con:
        q = con.execute("""SELECT count(*),
            quantile_cont(epoch(ingested_at - created_at), 0.5),
            quantile_cont(epoch(ingested_at - created_at), 0.95),
            max(epoch(ingested_at - created_at)) FROM posts""").fetchall()[0]
    print(f"latency over {q[0]:,} posts at {args.latency_rate}/s, trigger {args.trigger} s: "
          f"p50 {q[1]:.2f} s, p95 {q[2]:.2f} s, max {q[3]:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--posts", type=int, default=100_000)
    ap.add_argument("--backend", default="lexicon")
    ap.add_argument("--max-per-trigger", type=int, default=20_000)
    ap.add_argument("--latency-rate", type=int, default=0, help="posts/s; 0 = throughput mode")
    ap.add_argument("--latency-seconds", type=float, default=60)
    ap.add_argument("--trigger", type=float, default=0.5)
    ap.add_argument("--warmup", type=float, default=15)
    ap.add_argument("-v", "--verbose", action="store_true", help="log each micro-batch")
    args = ap.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="  %(message)s")
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as d:
        tmp = Path(d)
        broker = EmbeddedBroker(free_port(), tmp / "broker")
        broker.start()
        try:
            (latency if args.latency_rate else throughput)(args, tmp, broker)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
