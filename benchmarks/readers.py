"""Readers against the writer: does a busy dashboard slow or stop the stream? (issue 13)

    .venv/bin/python benchmarks/readers.py --arm readers --minutes 10   # 10 readers + forecast
    .venv/bin/python benchmarks/readers.py --arm snapshot --minutes 10  # readers on a snapshot
    .venv/bin/python benchmarks/readers.py --arm server --minutes 10    # one server, 10 sessions
    .venv/bin/python benchmarks/readers.py --arm none --minutes 10      # the same, no readers
    .venv/bin/python benchmarks/readers.py --arm cost --warehouse F.duckdb  # the sessions' own CPU

The stream (`polarwatch stream --continuous` as its own process, lexicon backend) takes a live
feed of ~1,000 posts/s (created_at = now) for `--minutes`. In the `readers` arm, 10 dashboard
sessions (processes calling dashboard/queries.py like open pages refreshed every 5 s) and one
process running the forecast and writing the HTML report every minute read the same DuckDB
file; in the `snapshot` arm the sessions read a copy refreshed every 5 s
(``$POLARWATCH_DASHBOARD_SNAPSHOT_S``, dashboard/snapshot.py) and only the forecast reads the
live file. In the `server` arm the 10 sessions are threads of ONE reader process on that snapshot,
as one `polarwatch dashboard` with 10 open tabs runs them, so they share each query's result per
snapshot copy (dashboard/results.py); the forecast process is the same. Printed: end-to-end latency (commit − created_at) over the posts of the measured span
(after a warm-up), the per-batch p95 from stream_batches, stream restarts and stops, DuckDB lock
retries on both sides, and what the readers managed. Compare the p95 of the two arms: the aim is
readers ≤ 2× none.

The `cost` arm runs no stream: 10 sessions, threads of one process as in the `server` arm,
refresh every page as fast as they can (50 ms apart) for `--seconds` on a copy of an existing
DuckDB file (a `server` arm's work dir keeps one), with the snapshot re-copied every 5 s; it
prints the process's CPU time per refresh — what the result cache (dashboard/results.py) costs
the readers, without the noise of a stream sharing the CPU.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.live_load import (  # noqa: E402
    PacedFeed,
    _refresh,
    batch_latency,
    bench_env,
    config_of,
    kill_group,
    latency,
    load,
    read_stats,
    spawn,
    wait_first_commit,
)
from dashboard.snapshot import SNAPSHOT_ENV  # noqa: E402
from ingest.broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402

READERS = 10
REFRESH_S = 5.0  # the dashboard's auto-refresh
FORECAST_EVERY_S = 60.0
SNAPSHOT_S = 5.0  # the `snapshot` and `server` arms: readers on a copy at most this old


def run(args: argparse.Namespace, tmp: Path) -> None:
    broker = EmbeddedBroker(free_port(), tmp / "broker")
    broker.start()
    env = bench_env(tmp, broker.bootstrap,
                    POLARWATCH_SPARK_TRIGGER_SECONDS=str(args.trigger),
                    POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER="20000")
    cfg = config_of(env)
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    procs = []
    try:
        stream = spawn(["stream", str(tmp / "stream.json")], env, tmp / "stream.log")
        procs.append(stream)
        feed = PacedFeed(cfg, args.rate).start()
        print(f"[{args.arm}] stream started, feed at {args.rate:g} posts/s; load {load()}",
              flush=True)
        waited = wait_first_commit(cfg.warehouse_path, stream=stream)
        print(f"first batch committed after {waited:.0f} s; warming up {args.warmup:g} s more",
              flush=True)
        time.sleep(args.warmup)
        since = datetime.now(UTC)
        seconds = args.minutes * 60
        if args.arm != "none":
            on_snapshot = args.arm in ("snapshot", "server")
            readers_env = {**env, SNAPSHOT_ENV: str(SNAPSHOT_S if on_snapshot else 0)}
            processes, sessions = _reader_layout(args.arm)
            for i in range(processes):
                procs.append(spawn(["reader", str(cfg.warehouse_path), str(seconds),
                                    str(REFRESH_S), str(tmp / f"reader{i}.json"), str(sessions)],
                                   readers_env, tmp / "readers.log"))
            procs.append(spawn(["forecast", str(seconds), str(FORECAST_EVERY_S),
                                str(tmp / "forecast.json"), str(tmp / "reports")], env,
                               tmp / "forecast.log"))
        loads = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(min(30.0, max(end - time.monotonic(), 0.1)))
            loads.append(load())
            print(f"  {seconds - (end - time.monotonic()):5.0f} s: load {loads[-1]}, "
                  f"stream alive {stream.poll() is None}", flush=True)
        stats = feed.finish()
        until = datetime.now(UTC)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and latency(cfg.warehouse_path, since)[0][0] < 1:
            time.sleep(1)
        time.sleep(3 * args.trigger + 2)  # the last posts commit
        alive = stream.poll() is None
        report(args, tmp, cfg.warehouse_path, since, until, stats.acked, alive, loads)
    finally:
        for proc in procs:
            kill_group(proc)
        broker.stop()


def _reader_layout(arm: str) -> tuple[int, int]:
    """(reader processes, sessions per process): the `server` arm runs the READERS sessions as
    threads of one process, the other arms one process per session."""
    return (1, READERS) if arm == "server" else (READERS, 1)


def report(args: argparse.Namespace, tmp: Path, path: Path, since: datetime, until: datetime,
           acked: int, alive: bool, loads: list[str]) -> None:
    n, p50, p95, mx = latency(path, since)[0]
    batches = batch_latency(path, since)
    log = (tmp / "stream.log").read_text(errors="replace")
    restarts = log.count("stream restart")
    writer = read_stats(tmp / "stream.json")
    print(f"\n== arm {args.arm}: {args.minutes:g} min at {args.rate:g} posts/s, trigger "
          f"{args.trigger:g} s ({since:%H:%M}–{until:%H:%M} UTC)")
    print(f"posts committed in the measured span: {n:,} (feed acknowledged {acked:,} in all)")
    print(f"latency created_at → commit: p50 {p50:.2f} s, p95 {p95:.2f} s, max {mx:.2f} s")
    print(f"per-batch p95 (stream_batches, {batches[0]} batches): median {batches[1]:.2f} s, "
          f"max {batches[2]:.2f} s; from broker timestamp median {batches[3]:.2f} s")
    print(f"stream process alive at the end: {alive}; supervised restarts: {restarts}; "
          f"writer lock retries: {writer.get('lock_retries', '?')}")
    if args.arm != "none":
        processes, sessions = _reader_layout(args.arm)
        readers = [read_stats(tmp / f"reader{i}.json") for i in range(processes)]
        fc = read_stats(tmp / "forecast.json")
        print(f"readers ({processes} process(es) × {sessions} session(s)): "
              f"{sum(r.get('refreshes', 0) for r in readers):,} page refreshes, "
              f"{sum(r.get('failures', 0) for r in readers)} failed, "
              f"{sum(r.get('lock_retries', 0) for r in readers):,} lock retries, refresh p95 "
              f"{max((r.get('refresh_p95_s') or 0) for r in readers):.2f} s "
              f"({'over all sessions' if processes == 1 else 'worst reader process'})")
        print(f"forecast + report: {fc.get('runs', 0)} runs, {fc.get('failures', 0)} failed, "
              f"{fc.get('lock_retries', 0)} lock retries, p95 {fc.get('seconds_p95') or 0:.1f} s; "
              f"samples {[r.get('failure_sample') for r in readers if r.get('failures')][:2]}"
              f"{fc.get('failure_sample') or ''}")
    print(f"load average during the run: {loads[0] if loads else '?'} … "
          f"{loads[-1] if loads else '?'}; now {load()}")


def cost(warehouse: Path, seconds: float, tmp: Path) -> None:
    """The `cost` arm: CPU time per page refresh of 10 sessions of one process on a snapshot."""
    path = tmp / "bench.duckdb"
    shutil.copyfile(warehouse, path)
    os.environ[SNAPSHOT_ENV] = str(SNAPSHOT_S)
    _refresh(path)  # imports and the first snapshot copy, outside the measured span
    end = time.monotonic() + seconds
    times: list[float] = []

    def session() -> None:
        while time.monotonic() < end:
            t0 = time.monotonic()
            _refresh(path)
            times.append(time.monotonic() - t0)
            time.sleep(0.05)

    cpu0, wall0 = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=session) for _ in range(READERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    times.sort()
    print(f"== arm cost: {READERS} sessions, {len(times):,} refreshes in {wall:.0f} s; CPU "
          f"{cpu:.1f} s = {1000 * cpu / len(times):.1f} ms per refresh; refresh p50 "
          f"{times[len(times) // 2]:.3f} s, p95 {times[int(len(times) * 0.95)]:.3f} s; load {load()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arm", choices=("readers", "snapshot", "server", "none", "cost"),
                    required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="posts/s")
    ap.add_argument("--trigger", type=float, default=2.0, help="seconds (the shipped default)")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="seconds of feed before the measured span (Spark start-up)")
    ap.add_argument("--warehouse", type=Path, help="cost: the DuckDB file the sessions read")
    ap.add_argument("--seconds", type=float, default=40.0, help="cost: measured seconds")
    args = ap.parse_args()
    if args.arm == "cost":
        if args.warehouse is None:
            ap.error("--arm cost needs --warehouse FILE (a server arm's work dir keeps one)")
        with tempfile.TemporaryDirectory(prefix="pw-cost-") as tmp:
            cost(args.warehouse, args.seconds, Path(tmp))
        return
    work = Path(tempfile.mkdtemp(prefix="pw-readers-"))  # kept: logs and the DuckDB file
    print(f"work dir {work} (logs of every process; remove it when done)", flush=True)
    run(args, work)


if __name__ == "__main__":
    main()
