"""Soak: the monitor under a live feed with hostile records, readers, forecasts and two kills.

    .venv/bin/python benchmarks/soak.py --minutes 31
    .venv/bin/python benchmarks/soak.py --minutes 3     # a trial

For `--minutes`: a live feed at `--rate` posts/s (created_at = now) with hostile records from
tests/stream/test_hostile.py mixed in (half through the validating producer, half written
straight into the posts topic); the stream as its own process (`polarwatch stream --continuous`,
supervised); five dashboard sessions (threads of one reader process, like one dashboard
server with five tabs, on a snapshot refreshed every `--snapshot` s, see
dashboard/snapshot.py) and the forecast every minute (processes of
benchmarks/live_load.py); the broker (s3 storage) killed with -9 at 1/3 of the run and started
again, the stream's driver (Python and its JVM) killed with -9 at 2/3 and run again. Then the
feed stops, the stream drains, and the run is accounted for: sent = stored + dead-lettered,
0 lost and 0 duplicated (rows per id in the lake, per Kafka position in posts); latency p95 per
5 minutes; RSS growth per process per hour.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.live_load import (  # noqa: E402
    ROOT,
    S3_CHUNK_S,
    PacedFeed,
    RssSampler,
    bench_env,
    config_of,
    jvm_of,
    kill_group,
    latency,
    load,
    read_stats,
    spawn,
    wait_first_commit,
)
from dashboard.snapshot import SNAPSHOT_ENV  # noqa: E402
from ingest.broker import EmbeddedBroker, ensure_topics, free_port, port_open  # noqa: E402
from ingest.retention import start_pruner  # noqa: E402
from polarwatch.config import Config  # noqa: E402
from polarwatch.warehouse import connect  # noqa: E402
from tests.stream.test_hostile import hostile_lines  # noqa: E402

READERS = 5
REFRESH_S = 5.0


class Soak:
    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args, self.tmp = args, tmp
        self.broker = EmbeddedBroker(free_port(), tmp / "broker", storage="s3")
        self.broker.start()
        self.env = bench_env(tmp, self.broker.bootstrap, POLARWATCH_BROKER_STORAGE="s3",
                             POLARWATCH_BROKER_STATE_DIR=str(tmp / "broker"),
                             POLARWATCH_SPARK_TRIGGER_SECONDS="2.0")
        self.cfg: Config = config_of(self.env)
        # the pruner `polarwatch broker start` runs next to an s3 broker
        start_pruner(self.cfg, self.broker, {**os.environ, **self.env})
        ensure_topics(self.cfg.broker.bootstrap_servers,
                      [self.cfg.topics.posts, self.cfg.topics.dead_letter],
                      self.cfg.topics.partitions)
        self.procs: list[Any] = []
        self.stream = self._start_stream()
        self.generation = 1
        self.t0 = time.monotonic()
        self.events: list[str] = []

    def _start_stream(self) -> Any:
        proc = spawn(["stream", str(self.tmp / "stream.json")], self.env, self.tmp / "stream.log")
        self.procs.append(proc)
        return proc

    def say(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.0f} s] {msg} (load {load()})"
        self.events.append(line)
        print(line, flush=True)

    def pids(self) -> dict[str, int | None]:
        driver = self.stream.pid if self.stream.poll() is None else None
        g = self.generation
        return {"broker (tansu)": self.broker.pid(), "s3 server (moto)": self.broker.s3_pid(),
                f"stream driver python #{g}": driver,
                f"Spark driver JVM #{g}": jvm_of(driver) if driver else None,
                "feed (this python)": os.getpid(),
                "dashboard server (5 sessions)": self.procs[1].pid if len(self.procs) > 1 else None,
                "pruner": self.broker.pruner_pid()}

    def kill_broker(self) -> None:
        pid = self.broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        while port_open("127.0.0.1", self.broker.port):
            time.sleep(0.05)
        self.say(f"broker kill -9 (pid {pid}); the S3 server keeps the data")
        time.sleep(self.args.down)
        self.broker.start()
        self.say(f"broker started again (pid {self.broker.pid()})")

    def kill_driver(self) -> None:
        pid, jvm = self.stream.pid, jvm_of(self.stream.pid)
        kill_group(self.stream)  # the Python driver and its JVM, as kill -9 of the service
        self.stream.wait()
        self.say(f"driver kill -9 (python {pid}, JVM {jvm})")
        time.sleep(self.args.down)
        self.generation += 1
        self.stream = self._start_stream()
        self.say(f"stream run again (pid {self.stream.pid}): resumes from its checkpoint")


def run(args: argparse.Namespace, tmp: Path) -> None:
    soak = Soak(args, tmp)
    seconds = args.minutes * 60
    try:
        hostile = hostile_lines()
        feed = PacedFeed(soak.cfg, args.rate, prefix="soak", hostile=hostile,
                         hostile_every=args.hostile_every, chunk_s=S3_CHUNK_S).start()
        soak.say(f"stream started; feed at {args.rate:g} posts/s, a hostile record every "
                 f"{args.hostile_every} posts ({', '.join(hostile)})")
        waited = wait_first_commit(soak.cfg.warehouse_path)
        soak.t0 = time.monotonic()  # the planned times count from the stream's first commit
        soak.say(f"first batch committed after {waited:.0f} s (Spark start-up); the clock starts")
        readers_env = {**soak.env, SNAPSHOT_ENV: str(args.snapshot)}
        soak.procs.append(spawn(["reader", str(soak.cfg.warehouse_path), str(seconds + 300),
                                 str(REFRESH_S), str(tmp / "reader0.json"), str(READERS)],
                                readers_env, tmp / "readers.log"))  # one server, READERS tabs
        soak.procs.append(spawn(["forecast", str(seconds + 300), "60", str(tmp / "forecast.json")],
                                soak.env, tmp / "forecast.log"))
        sampler = RssSampler(soak.pids, every=30.0)
        started = datetime.now(UTC)
        plan = [(seconds / 3, soak.kill_broker), (2 * seconds / 3, soak.kill_driver)]
        while time.monotonic() - soak.t0 < seconds:
            time.sleep(5)
            if plan and time.monotonic() - soak.t0 >= plan[0][0]:
                plan.pop(0)[1]()
            if int(time.monotonic() - soak.t0) % 300 < 5:
                soak.say(f"feed acknowledged {feed.stats.acked:,}, stream alive "
                         f"{soak.stream.poll() is None}")
        stats = feed.finish()
        soak.say(f"feed stopped: {stats.acked:,} posts acknowledged, {stats.resent_chunks} "
                 f"chunks re-sent, hostile {stats.hostile_ingest} via ingest + "
                 f"{stats.hostile_raw} raw")
        drained = drain(soak.cfg, stats.acked, stats.hostile_ingest + stats.hostile_raw)
        soak.say(f"drained: {drained}")
        sampler.stop.set()
        account(soak, stats, started)
        print_memory(sampler)
        readers = [read_stats(tmp / "reader0.json")]
        fc = read_stats(tmp / "forecast.json")
        print(f"readers: {sum(r.get('refreshes', 0) for r in readers):,} page refreshes, "
              f"{sum(r.get('failures', 0) for r in readers)} failed, "
              f"{sum(r.get('lock_retries', 0) for r in readers):,} lock retries; forecast "
              f"{fc.get('runs', 0)} runs, {fc.get('failures', 0)} failed "
              f"{fc.get('failure_sample') or ''}")
        restarts = (tmp / "stream.log").read_text(errors="replace").count("stream restart")
        print(f"supervised restarts logged by the stream: {restarts}; writer lock retries "
              f"(second run of the driver): {read_stats(tmp / 'stream.json').get('lock_retries')}")
        print(f"load average now {load()}")
    finally:
        for proc in soak.procs:
            kill_group(proc)
        soak.broker.stop()


def _count(cfg: Config) -> tuple[int, int]:
    try:
        with connect(cfg.warehouse_path, read_only=True) as con:
            row = con.execute("SELECT (SELECT count(*) FROM posts), "
                              "(SELECT count(*) FROM dead_letters)").fetchall()[0]
        return int(row[0]), int(row[1])
    except Exception:  # the writer holds the file this instant
        return -1, -1


def drain(cfg: Config, posts: int, hostile: int, timeout: float = 600.0) -> str:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        stored, dead = _count(cfg)
        if stored >= posts and dead >= hostile:
            break
        time.sleep(2)
    time.sleep(10)  # one more batch: anything extra would show too
    stored, dead = _count(cfg)
    return f"{stored:,} posts and {dead:,} dead letters after {time.monotonic() - t0:.0f} s"


def account(soak: Soak, stats: Any, started: datetime) -> None:
    cfg = soak.cfg
    lake = str(cfg.path(cfg.warehouse.lake_dir) / "posts" / "**" / "*.parquet")
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT id) FROM posts").fetchall()[0]
        dead = dict(con.execute("SELECT source, count(*) FROM dead_letters GROUP BY 1")
                    .fetchall())
        lake_rows = con.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet("
                                f"'{lake}', hive_partitioning = true)").fetchall()[0]
        lake_twice = con.execute(f"SELECT count(*) FROM (SELECT id FROM read_parquet('{lake}', "
                                 f"hive_partitioning = true) GROUP BY id HAVING count(*) > 1)"
                                 ).fetchall()[0][0]
        pos_twice = con.execute("SELECT count(*) FROM (SELECT kafka_partition, kafka_offset "
                                "FROM posts GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
        missing = con.execute("SELECT count(*) FROM posts p WHERE p.id NOT IN "
                              f"(SELECT id FROM read_parquet('{lake}', hive_partitioning = true))"
                              ).fetchall()[0][0]
        windows = con.execute("SELECT count(*), max(window_start) FROM topic_windows").fetchall()[0]
    hostile = stats.hostile_ingest + stats.hostile_raw
    sent = stats.acked + hostile
    dl = sum(dead.values())
    print(f"\n== soak {soak.args.minutes:g} min at {soak.args.rate:g} posts/s "
          f"({started:%H:%M} UTC start)")
    print(f"sent {sent:,} = {stats.acked:,} valid posts acknowledged + {hostile} hostile "
          f"({stats.hostile_ingest} through ingest, {stats.hostile_raw} straight to the topic)")
    print(f"stored {stored[0]:,} posts ({stored[1]:,} distinct ids) + dead-lettered {dl:,} "
          f"({dead}) = {stored[0] + dl:,}; lost {sent - stored[0] - dl:,}")
    print(f"duplicates: {lake_twice} ids twice in the lake ({lake_rows[0]:,} rows, "
          f"{lake_rows[1]:,} ids, {missing} stored posts missing from it), {pos_twice} Kafka "
          f"positions twice in posts; {stats.resent_chunks} chunks re-sent by the feed")
    print(f"windows: {windows[0]:,}, newest starts {windows[1]}")
    print("latency created_at → commit per 5 minutes of commit time (posts, p50, p95, max s):")
    for b, n, p50, p95, mx in latency(cfg.warehouse_path, started, bucket_s=300):
        print(f"  {b:%H:%M}  {n:8,}  {p50:6.2f}  {p95:6.2f}  {mx:7.2f}")
    print("events:\n  " + "\n  ".join(soak.events))


def print_memory(sampler: RssSampler) -> None:
    print("RSS per process (MB: first, last, growth per hour from a line fit):")
    for name, (first, last, per_hour) in sampler.growth().items():
        print(f"  {name:28s} {first:8.0f} {last:8.0f} {per_hour:+9.0f} MB/h")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=31.0)
    ap.add_argument("--rate", type=float, default=300.0, help="posts/s")
    ap.add_argument("--hostile-every", type=int, default=1500, help="posts between hostile ones")
    ap.add_argument("--snapshot", type=float, default=5.0,
                    help="readers on a snapshot at most this many seconds old (0: the live file)")
    ap.add_argument("--down", type=float, default=5.0, help="seconds each killed part stays down")
    args = ap.parse_args()
    os.chdir(ROOT)
    work = Path(tempfile.mkdtemp(prefix="pw-soak-"))  # kept: logs and the DuckDB file
    print(f"work dir {work} (logs of every process; remove it when done)", flush=True)
    run(args, work)


if __name__ == "__main__":
    main()
