"""Shared parts of the live-load benchmarks (``readers.py``, ``soak.py``): a paced feed, the
stream as its own process, dashboard-style readers and a forecast/report loop as processes,
lock-retry counting, RSS sampling and latency figures from DuckDB.

The helper processes are this file run as a script:

    python benchmarks/live_load.py stream  STATS_FILE            # polarwatch stream --continuous
    python benchmarks/live_load.py reader  DUCKDB SECONDS PERIOD STATS_FILE [SESSIONS]
    python benchmarks/live_load.py forecast SECONDS EVERY STATS_FILE [REPORT_DIR]

Each writes its figures (JSON) to STATS_FILE as it goes, so a process killed with -9 still
leaves what it counted. Configuration comes from POLARWATCH_* variables, like the CLI's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.producer import PostProducer  # noqa: E402
from ingest.sources.synthetic import generate  # noqa: E402
from polarwatch.config import Config, load_config  # noqa: E402
from polarwatch.errors import BrokerError  # noqa: E402
from polarwatch.records import Post  # noqa: E402
from polarwatch.warehouse import connect, is_lock_error  # noqa: E402

CHUNK_S = 0.1  # the feed sends and confirms one chunk of posts per this many seconds
# s3 storage keeps one object per produced batch and fetches them back one by one: small
# frequent batches read back slower than they arrive there, so the soak sends one a second
S3_CHUNK_S = 1.0


def bench_env(tmp: Path, bootstrap: str, **extra: str) -> dict[str, str]:
    """POLARWATCH_* variables for a benchmark run in `tmp` (lexicon backend)."""
    return {"POLARWATCH_CONFIG": str(ROOT / "polarwatch.toml"),
            "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": bootstrap,
            "POLARWATCH_WAREHOUSE_PATH": str(tmp / "bench.duckdb"),
            "POLARWATCH_WAREHOUSE_LAKE_DIR": str(tmp / "lake"),
            "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp / "ckpt"),
            "POLARWATCH_EXTRACTOR_BACKEND": "lexicon",
            "POLARWATCH_EVENTS_FILE": str(tmp / "events.toml"), **extra}


def config_of(env: dict[str, str]) -> Config:
    return load_config(ROOT / "polarwatch.toml", env={**os.environ, **env})


# -- the feed -------------------------------------------------------------------------------------

@dataclass
class FeedStats:
    acked: int = 0  # valid posts the broker confirmed
    resent_chunks: int = 0  # chunks whose flush failed (broker gone) and were sent again
    hostile_ingest: int = 0  # hostile records given to the validating producer
    hostile_raw: int = 0  # hostile records written straight into the posts topic
    errors: list[str] = field(default_factory=list)


class PacedFeed:
    """Posts at `rate`/s with ``created_at`` = now and ids of their own, in a thread. Every
    chunk is flushed; a chunk the broker did not confirm is sent again until it is (post ids
    make that safe: the sink keys posts by id). `hostile` (name → raw bytes) records are mixed
    in every `hostile_every` posts, alternately through the validating producer (ingest's dead
    letters) and straight into the posts topic (the stream's parser dead-letters them)."""

    def __init__(self, cfg: Config, rate: float, *, prefix: str = "live",
                 hostile: dict[str, bytes] | None = None, hostile_every: int = 0,
                 chunk_s: float = CHUNK_S) -> None:
        self.cfg, self.rate, self.prefix, self.chunk_s = cfg, rate, prefix, chunk_s
        self.hostile = list((hostile or {}).values())
        self.hostile_every = hostile_every
        self.stats = FeedStats()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="paced-feed", daemon=True)

    def start(self) -> PacedFeed:
        self.thread.start()
        return self

    def finish(self) -> FeedStats:
        self.stop.set()
        self.thread.join(120)
        return self.stats

    def _posts(self) -> Iterator[Post]:
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for rnd in range(1_000_000):
            p = f"{self.prefix}{rnd}-"
            for post in generate(self.cfg.load_topics(), days=7, seed=rnd, rate=8.0, start=start):
                yield replace(post, id=p + post.id, created_at=datetime.now(UTC),
                              conversation_id=p + post.conversation_id,
                              parent_id=post.parent_id and p + post.parent_id)

    def _producer(self) -> PostProducer:
        return PostProducer(self.cfg.broker.bootstrap_servers, self.cfg.topics.posts,
                            self.cfg.topics.dead_letter, linger_ms=5, retries=3,
                            retry_backoff_ms=200, max_request_size=4 * 1024 * 1024)

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # reported by the benchmark
            self.stats.errors.append(f"{type(exc).__name__}: {exc}")

    def _loop(self) -> None:
        from kafka import KafkaProducer

        posts = self._posts()
        producer = self._producer()
        raw = KafkaProducer(bootstrap_servers=self.cfg.broker.bootstrap_servers,
                            max_request_size=4 * 1024 * 1024, retries=3)
        t0, due, n = time.monotonic(), 0, 0
        while not self.stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            chunk = [next(posts) for _ in range(max(due - n, 0))]
            while chunk and not self.stop.is_set():
                try:
                    producer.send_many(chunk)
                    self._mix_hostile(producer, raw, n, len(chunk))
                    producer.flush(timeout=10)
                    raw.flush(timeout=10)
                    break
                except (BrokerError, Exception) as exc:  # broker down: resend the chunk
                    self.stats.resent_chunks += 1
                    self.stats.errors.append(f"resent a chunk: {exc}"[:200])
                    time.sleep(1.0)
            else:
                if chunk:
                    break  # stopped while the broker was down: the chunk was not confirmed
            n += len(chunk)
            self.stats.acked += len(chunk)
            time.sleep(self.chunk_s)
        producer.close()
        raw.close()

    def _mix_hostile(self, producer: PostProducer, raw: Any, n: int, size: int) -> None:
        if not self.hostile or self.hostile_every <= 0:
            return
        for i in range(n, n + size):
            if i % self.hostile_every == 0 and i:
                k = i // self.hostile_every
                value = self.hostile[k % len(self.hostile)]
                if k % 2:
                    producer.send_raw(value)
                    self.stats.hostile_ingest += 1
                else:
                    raw.send(self.cfg.topics.posts, key=b"hostile", value=value)
                    self.stats.hostile_raw += 1


# -- processes ------------------------------------------------------------------------------------

def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """This file as a helper process in its own session (kill its group to stop a JVM too)."""
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT,
                                env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def jvm_of(pid: int) -> int | None:
    """The Spark driver JVM started by the Python driver `pid`."""
    for child in children(pid):
        try:
            if b"java" in Path(f"/proc/{child}/cmdline").read_bytes():
                return child
        except OSError:
            continue
    return None


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the RSS of named processes every `every` s: rows of (t seconds, name, MB)."""

    def __init__(self, pids: Callable[[], dict[str, int | None]], every: float = 30.0) -> None:
        self.pids, self.every = pids, every
        self.rows: list[tuple[float, str, float]] = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            t = time.monotonic() - self.t0
            for name, pid in self.pids().items():
                mb = rss_mb(pid)
                if mb is not None:
                    self.rows.append((t, name, mb))
            if self.stop.wait(self.every):
                return

    def growth(self) -> dict[str, tuple[float, float, float]]:
        """Per name: (first MB, last MB, MB per hour from a least-squares line)."""
        import numpy as np

        out = {}
        for name in sorted({r[1] for r in self.rows}):
            pts = [(t, mb) for t, name2, mb in self.rows if name2 == name]
            if len(pts) < 2:
                continue
            ts, mbs = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            slope = float(np.polyfit(ts, mbs, 1)[0]) * 3600 if np.ptp(ts) > 0 else 0.0
            out[name] = (float(mbs[0]), float(mbs[-1]), slope)
        return out


class LockCounter:
    """Counts DuckDB lock errors seen by this process (each is one retry of
    polarwatch.warehouse.connect) and writes them with `extra` figures to a JSON file."""

    def __init__(self, stats_file: Path) -> None:
        import duckdb

        self.file, self.figures = stats_file, {"lock_retries": 0}
        self.lock = threading.Lock()  # sessions may be threads of one process
        real = duckdb.connect

        def counting(*args: Any, **kwargs: Any) -> Any:
            try:
                return real(*args, **kwargs)
            except Exception as exc:
                if is_lock_error(exc):
                    with self.lock:
                        self.figures["lock_retries"] += 1
                raise

        duckdb.connect = counting

    def save(self, **figures: Any) -> None:
        with self.lock:
            self.figures.update(figures)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.figures))
            tmp.replace(self.file)


def stream_main(stats_file: Path) -> int:
    """`polarwatch stream --continuous`, counting the sink's lock retries."""
    counter = LockCounter(stats_file)
    saver = threading.Thread(target=_save_every, args=(counter, 5.0), daemon=True)
    saver.start()
    from polarwatch.cli import main

    try:
        return main(["stream", "--continuous"])
    finally:
        counter.save()


def _save_every(counter: LockCounter, every: float) -> None:
    while True:
        counter.save()
        time.sleep(every)


def reader_main(path: Path, seconds: float, period: float, stats_file: Path,
                sessions: int = 1) -> int:
    """`sessions` dashboard sessions as threads of this one process (as one Streamlit server
    runs its sessions), each with every page open, refreshed every `period` s: the overview, a
    topic's series and conversations, flags, the stream status and the dead letters. Session i
    starts i/`sessions` of a period late, as tabs opened at different times. The figures are
    over all sessions: refreshes, failures and lock retries summed, the p95 over every refresh."""
    counter = LockCounter(stats_file)
    end = time.monotonic() + seconds
    times: list[float] = []
    failures: list[str] = []

    def session(delay: float) -> None:
        time.sleep(delay)
        while time.monotonic() < end:
            t0 = time.monotonic()
            try:
                _refresh(path)
                times.append(time.monotonic() - t0)
            except Exception as exc:  # counted: a reader that fails is a figure too
                failures.append(f"{type(exc).__name__}: {exc}"[:200])
            counter.save(refreshes=len(times), failures=len(failures),
                         failure_sample=failures[-3:], refresh_p95_s=_p95(times),
                         sessions=sessions)
            time.sleep(max(period - (time.monotonic() - t0), 0.0))

    threads = [threading.Thread(target=session, args=(period * i / sessions,),
                                name=f"session{i}", daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 0


def _refresh(path: Path) -> None:
    """One refresh of a session with every page open."""
    from dashboard import queries as q
    from dashboard import rejects

    overview = q.topics_overview(path)
    topic = str(overview["topic"].iloc[0]) if len(overview) else "gun_control"
    q.stream_status(path)
    q.topic_series(path, topic)
    q.metric_series(path, topic, "mean_score", "6 hours")
    q.top_conversations(path, topic)
    q.flags(path)
    rejects.dead_letter_summary(path)


def forecast_main(seconds: float, every: float, stats_file: Path, report_dir: Path | None) -> int:
    """The forecast (and, with `report_dir`, the HTML report) every `every` s."""
    from forecast.run import run_forecast

    cfg = config_of({})
    counter = LockCounter(stats_file)
    end = time.monotonic() + seconds
    runs, failures, took = 0, [], []
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            run_forecast(cfg, alerts=False)
            if report_dir is not None:
                from forecast.reports.report import write_report

                write_report(cfg, report_dir / "report.html")
            runs += 1
            took.append(time.monotonic() - t0)
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])
        counter.save(runs=runs, failures=len(failures), failure_sample=failures[-3:],
                     seconds_p95=_p95(took))
        time.sleep(max(every - (time.monotonic() - t0), 0.0))
    return 0


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(int(0.95 * len(ordered)), len(ordered) - 1)]


def read_stats(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def latency(path: Path, since: datetime, bucket_s: int = 0) -> list[tuple]:
    """Posts committed since `since`: count, p50, p95, max of ingested_at − created_at; with
    `bucket_s`, one row per bucket of commit time (bucket start first)."""
    lat = "epoch(ingested_at - created_at)"
    cols = f"count(*), quantile_cont({lat}, 0.5), quantile_cont({lat}, 0.95), max({lat})"
    with connect(path, read_only=True) as con:
        if bucket_s:
            return con.execute(
                f"SELECT time_bucket(INTERVAL '{int(bucket_s)} seconds', ingested_at, ?) AS b, "
                f"{cols} FROM posts WHERE ingested_at >= ? GROUP BY b ORDER BY b",
                [since, since]).fetchall()
        return con.execute(f"SELECT {cols} FROM posts WHERE ingested_at >= ?",
                           [since]).fetchall()


def batch_latency(path: Path, since: datetime) -> tuple:
    """Over micro-batches committed since `since`: batches, median and max of the per-batch
    p95 latency from created_at and from the broker timestamp (stream_batches)."""
    with connect(path, read_only=True) as con:
        return tuple(con.execute(
            "SELECT count(*), median(latency_created_p95_s), max(latency_created_p95_s), "
            "median(latency_broker_p95_s), max(latency_broker_p95_s) FROM stream_batches "
            "WHERE committed_at >= ? AND n_posts > 0", [since]).fetchall()[0])


def wait_first_commit(path: Path, timeout: float = 600.0,
                      stream: subprocess.Popen[bytes] | None = None) -> float:
    """Wait until the stream has committed posts to `path`; returns the seconds waited. Raises
    at once when the `stream` process has exited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if stream is not None and stream.poll() is not None:
            raise RuntimeError(f"the stream process exited ({stream.returncode}) before its "
                               f"first commit to {path}: see its log in {path.parent}")
        try:
            with connect(path, read_only=True) as con:
                if con.execute("SELECT count(*) FROM posts").fetchall()[0][0]:
                    return time.monotonic() - t0
        except Exception:  # not created yet, schema not there yet
            pass
        time.sleep(1.0)
    raise TimeoutError(f"the stream committed nothing to {path} in {timeout:.0f} s")


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "stream":
        sys.exit(stream_main(Path(rest[0])))
    if cmd == "reader":
        sys.exit(reader_main(Path(rest[0]), float(rest[1]), float(rest[2]), Path(rest[3]),
                             int(rest[4]) if len(rest) > 4 else 1))
    if cmd == "forecast":
        sys.exit(forecast_main(float(rest[0]), float(rest[1]), Path(rest[2]),
                               Path(rest[3]) if len(rest) > 3 else None))
    sys.exit(f"unknown helper {cmd!r}: stream, reader or forecast")
