"""The Reddit event study of issue 23: real threads with their real dates through the product,
flags against a calendar of real events.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/reddit_events.py [--window "7 days"]

DEBAGREEMENT's dev threads (``../shared/data/agreement/debagreement_dev.csv``) become a JSONL of
posts: every reply with its own date (the ``datetime`` column, day-first ``%d/%m/%Y %H:%M``,
UTC), every parent as a root post of the same submission one minute before its first reply in
the file (the data have no date for parents). r/Brexit is topic ``brexit``; r/democrats and
r/Republican together are ``us_politics``. The real commands then run on it, each a process with
its own broker port, state, checkpoint, DuckDB file and calendar:
``polarwatch broker start`` → ``ingest file`` → ``stream`` → ``forecast --metric M`` (per metric)
→ ``broker stop``, with the shipped ``learned`` backend and the calendar
``benchmarks/reddit_events.toml``. Prints every flag (window, metric, class, explanation), its
distance to the nearest event, and per event the nearest flag, as Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.heads_data import debagreement_rows  # noqa: E402
from benchmarks.live_load import bench_env, config_of  # noqa: E402
from benchmarks.real_text import BREXIT  # noqa: E402
from forecast.alarms import DEFAULT_THRESHOLD  # noqa: E402
from forecast.series import SUPPORT  # noqa: E402
from ingest.broker import free_port  # noqa: E402
from polarwatch.events import Event, load_events  # noqa: E402
from polarwatch.warehouse import connect  # noqa: E402

CALENDAR = ROOT / "benchmarks" / "reddit_events.toml"
DATE_FORMAT = "%d/%m/%Y %H:%M"  # DEBAGREEMENT's datetime column is day-first (pandas guesses wrong)
PARENT_LEAD = timedelta(minutes=1)  # a parent is dated this long before its first reply
# subreddit -> topic id; the topics themselves are written to the run's own topics file
SUBREDDITS = {"Brexit": "brexit", "democrats": "us_politics", "Republican": "us_politics"}
US_POLITICS = ("us_politics", "US politics",
               "Supports the Democratic Party and its candidates (Biden, Harris).",
               "Supports the Republican Party and its candidates (Trump).")
NEAR = timedelta(days=7)  # "no event within a week"
# the default metric, two more polarization metrics, and the count (DEBAGREEMENT's sampling, not
# Reddit's activity: read it as such)
METRICS = ("mean_score", "extreme_share", "hostility_share", "volume")


def posts_of(rows: Sequence[dict[str, str]]) -> list[dict[str, str | None]]:
    """Posts (record contract dicts) of the rows of SUBREDDITS, sorted by created_at."""
    replies: dict[str, dict[str, str | None]] = {}
    parents: dict[str, dict[str, str | None]] = {}
    for r in rows:
        topic = SUBREDDITS.get(r["subreddit"])
        if topic is None:
            continue
        at = datetime.strptime(r["datetime"], DATE_FORMAT).replace(tzinfo=UTC)
        replies[r["msg_id_child"]] = {
            "id": r["msg_id_child"], "platform": "reddit", "author_id": r["author_child"],
            "text": r["body_child"], "created_at": at.isoformat(), "topic": topic,
            "conversation_id": r["submission_id"], "parent_id": r["msg_id_parent"], "lang": "en"}
        first = (at - PARENT_LEAD).isoformat()
        known = parents.get(r["msg_id_parent"])
        if known is None or first < str(known["created_at"]):
            parents[r["msg_id_parent"]] = {
                "id": r["msg_id_parent"], "platform": "reddit", "author_id": r["author_parent"],
                "text": r["body_parent"], "created_at": first, "topic": topic,
                "conversation_id": r["submission_id"], "parent_id": None, "lang": "en"}
    both = [p for k, p in parents.items() if k not in replies] + list(replies.values())
    return sorted(both, key=lambda p: str(p["created_at"]))


def topics_toml() -> str:
    out = []
    for tid, name, pro, anti in (BREXIT, US_POLITICS):
        out.append(f'[[topic]]\nid = "{tid}"\nname = "{name}"\npro = "{pro}"\nanti = "{anti}"\n')
    return "\n".join(out)


def polarwatch(env: dict[str, str], *args: str) -> str:
    """Run one ``polarwatch`` command (this checkout's code); its log, or exit on failure."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", *args], cwd=ROOT,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, check=False)
    log = (proc.stdout + proc.stderr).strip()
    print(f"$ polarwatch {' '.join(args)}  ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    if proc.returncode:
        sys.exit(f"polarwatch {' '.join(args)} failed ({proc.returncode}):\n{log}")
    return log


def run(tmp: Path, window: str, metrics: Sequence[str]) -> tuple[Path, int]:
    """The whole chain in ``tmp``; returns the DuckDB file and ``[forecast] min_volume``."""
    (tmp / "topics.toml").write_text(topics_toml())
    posts = posts_of(debagreement_rows())
    with (tmp / "posts.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in posts)
    print(f"{len(posts):,} posts written ({sum(p['parent_id'] is not None for p in posts):,} "
          f"replies)", file=sys.stderr)
    env = bench_env(tmp, f"127.0.0.1:{free_port()}",
                    POLARWATCH_EXTRACTOR_BACKEND="learned",
                    POLARWATCH_EXTRACTOR_TOPICS_FILE=str(tmp / "topics.toml"),
                    POLARWATCH_BROKER_STATE_DIR=str(tmp / "broker"),
                    POLARWATCH_AGGREGATE_WINDOW=window,
                    POLARWATCH_EVENTS_FILE=str(CALENDAR))
    polarwatch(env, "broker", "start")
    try:
        for line in polarwatch(env, "ingest", "file", str(tmp / "posts.jsonl"),
                               "--state-dir", str(tmp / "ingest")).splitlines()[-1:]:
            print(line, file=sys.stderr)
        print(polarwatch(env, "stream").splitlines()[-1], file=sys.stderr)
        for metric in metrics:
            print(polarwatch(env, "forecast", "--metric", metric).splitlines()[-1],
                  file=sys.stderr)
    finally:
        polarwatch(env, "broker", "stop")
    cfg = config_of(env)
    return cfg.warehouse_path, cfg.forecast.min_volume


def nearest(t0: datetime, t1: datetime, events: Sequence[Event]) -> tuple[Event | None, float]:
    """The event nearest to the window [t0, t1) and its signed distance in days (0 inside the
    window, < 0: the event comes after the window, > 0: before it)."""
    def dist(e: Event) -> float:
        if t0 <= e.start < t1:
            return 0.0
        return ((t0 - e.start) if e.start < t0 else -(e.start - t1)).total_seconds() / 86400
    best = min(events, key=lambda e: abs(dist(e)), default=None)
    return best, (dist(best) if best is not None else float("nan"))


def matches(flag: str, event: Event | None, days: float) -> str:
    """Whether the flag's class agrees with the nearest event's kind (within a week)."""
    if event is None or abs(days) > NEAR.days:
        return "no event"
    want = "anticipatory" if event.kind == "scheduled" and days <= 0 else "reactive"
    return "yes" if flag == want else f"no ({event.kind}: {want} expected)"


def read_rows(path: Path) -> pd.DataFrame:
    """Every observed ``forecasts`` row with ``n``, the count behind its value
    (:data:`forecast.series.SUPPORT`), and ``ts`` tz-aware."""
    support = " ".join(f"WHEN '{m}' THEN w.{c}" for m, c in SUPPORT.items())
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT f.topic, f.metric, timezone('UTC', f.ts) AS ts, f.y, f.anomaly_score, f.flag, "
            f"f.explanation, CASE f.metric {support} END AS n FROM forecasts f JOIN topic_windows "
            "w ON w.topic = f.topic AND w.window_start = f.ts WHERE f.flag <> 'forecast' "
            "ORDER BY f.topic, f.metric, f.ts").df()
    rows["ts"] = pd.to_datetime(rows["ts"]).dt.tz_localize(UTC)
    return rows


def report(rows: pd.DataFrame, window: pd.Timedelta, events: Sequence[Event],
           min_volume: int) -> None:
    """Markdown tables: the series, every flag against the calendar, every event."""
    print(f"\n| topic | metric | windows | with n >= {min_volume} | scored (past the warm-up) | "
          f"first scored | highest score (window, n) | highest with n >= {min_volume} |"
          "\n|---|---|---:|---:|---:|---|---|---|")
    for (topic, metric), g in rows.groupby(["topic", "metric"]):
        scored = g.dropna(subset=["anomaly_score"])
        full = scored[scored["n"] >= min_volume]
        top = scored.loc[scored["anomaly_score"].idxmax()]
        top_full = (f"{full['anomaly_score'].max():.5f}" if len(full) else "none")
        print(f"| {topic} | {metric} | {len(g)} | {int((g['n'] >= min_volume).sum())} | "
              f"{len(scored)} | {scored['ts'].min():%Y-%m-%d} | {top.anomaly_score:.5f} "
              f"({top.ts:%Y-%m-%d}, {top.n:.0f}) | {top_full} |")
    print(f"\nalarm threshold {DEFAULT_THRESHOLD}; share of the scored windows with an event "
          f"within {NEAR.days} days (the hit rate of a flag fired at random):")
    first_scored = rows.dropna(subset=["anomaly_score"]).groupby("topic")["ts"].min()
    for topic, first in first_scored.items():
        starts = pd.date_range(first, rows[rows["topic"] == topic]["ts"].max(), freq=window)
        near = [abs(nearest(t, t + window, [e for e in events if e.topic == topic])[1])
                <= NEAR.days for t in starts]
        print(f"- {topic}: {sum(near)} of {len(starts)} ({sum(near) / len(starts):.0%})")
    flags = rows[rows["flag"] != "none"]
    print("\n| window start | topic | metric | value (n) | class | nearest event (kind, date) | "
          "days | class matches | explanation |\n|---|---|---|---:|---|---|---:|---|---|")
    lonely = 0
    for r in flags.itertuples():
        t0 = r.ts.to_pydatetime()
        ev, days = nearest(t0, t0 + window, [e for e in events if e.topic == r.topic])
        lonely += abs(days) > NEAR.days
        name = f"{ev.name} ({ev.kind}, {ev.start:%Y-%m-%d})" if ev else "none"
        print(f"| {t0:%Y-%m-%d} | {r.topic} | {r.metric} | {r.y:.2f} ({r.n:.0f}) | {r.flag} | "
              f"{name} | {days:+.1f} | {matches(r.flag, ev, days)} | {r.explanation} |")
    print(f"\n{len(flags)} flag(s); {lonely} with no event within {NEAR.days} days of the window")
    print("\n| event | kind | date | after the warm-up | nearest flag (days, class, metric) |"
          "\n|---|---|---|---|---|")
    for e in events:
        warm = e.topic in first_scored and first_scored[e.topic] <= e.start
        best = None
        for r in flags[flags["topic"] == e.topic].itertuples():
            t0 = r.ts.to_pydatetime()
            _, days = nearest(t0, t0 + window, [e])
            if best is None or abs(days) < abs(best[0]):
                best = (days, r.flag, r.metric)
        closest = (f"{best[0]:+.1f} ({best[1]}, {best[2]})" if best and abs(best[0]) <= NEAR.days
                   else "none within 7 days")
        print(f"| {e.name} | {e.kind} | {e.start:%Y-%m-%d} | {'yes' if warm else 'no'} | "
              f"{closest} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--window", default="7 days", help="[aggregate] window of the run")
    ap.add_argument("--metrics", default=",".join(METRICS), help="metrics to forecast")
    ap.add_argument("--keep", type=Path, help="run in this directory and keep it")
    args = ap.parse_args()
    events = load_events(CALENDAR)
    with tempfile.TemporaryDirectory(prefix="pw-events-") as d:
        tmp = args.keep or Path(d)
        tmp.mkdir(parents=True, exist_ok=True)
        path, min_volume = run(tmp, args.window, args.metrics.split(","))
        report(read_rows(path), pd.Timedelta(args.window), events, min_volume)


if __name__ == "__main__":
    main()
