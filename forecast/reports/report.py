"""`polarwatch report`: one self-contained HTML file (charts embedded as base64 PNG).

Per topic: the current state (newest window), a chart of the forecast metric with its band, the
horizon forecast, flags and events, the forecast table for the next ``[forecast] horizon``
windows, the active flags with their class and explanation, the conversations driving them
(most interaction-score mass in the flagged window) and the recent flags; then the
before / during / after table of every event (:mod:`forecast.events_study`).

Reading is plain SQL over short read-only connections (here); rendering is pure, frames in and
HTML out (:mod:`forecast.reports.render`, an autoescaped jinja2 template, and
:mod:`forecast.reports.charts`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.alerts.delivery import active_flags
from forecast.events_study import event_studies
from forecast.reports.render import render
from polarwatch.config import Config
from polarwatch.errors import ConfigError, PolarwatchError
from polarwatch.events import Event, events_path, load_events
from polarwatch.warehouse import connect

DRIVERS_PER_FLAG = 5  # conversations listed under each active flag
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``1h``, ``1.5d``, ``2w`` -> timedelta (ConfigError otherwise)."""
    m = _DURATION.match(text or "")
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"expected a duration like 30m, 1h or 7d, got {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_since(text: str | None, latest: datetime | None) -> datetime | None:
    """A date / ISO time (UTC when naive), or a duration counted back from ``latest``."""
    if not text:
        return None
    if _DURATION.match(text):
        return None if latest is None else latest - parse_duration(text)
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"--since: expected 2026-03-01, an ISO time or 7d / 48h, got "
                          f"{text!r}") from None
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def _read(path: Path, sql: str, params: list[Any]) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute(sql, params).df()
    return df


@dataclass
class TopicData:
    topic: str
    name: str
    windows: pd.DataFrame  # ts, mean_score, extreme_share, hostility_share, volume
    forecasts: pd.DataFrame  # forecasts rows of the metric (observed + future)
    active: pd.DataFrame  # active flags (forecast.alerts.delivery.active_flags)
    drivers: dict[Any, pd.DataFrame] = field(default_factory=dict)  # flag ts -> conversations
    events: list[Event] = field(default_factory=list)


def drivers(path: Path, topic: str, start: Any, end: Any,
            limit: int = DRIVERS_PER_FLAG) -> pd.DataFrame:
    """Conversations with the most interaction-score mass in [start, end) on ``topic``."""
    return _read(path, """
        WITH roots AS (SELECT conversation_id, any_value(text) AS root_text
                       FROM posts WHERE parent_id IS NULL GROUP BY conversation_id)
        SELECT i.conversation_id, count(*) AS n_in_window, avg(i.score) AS window_score,
               any_value(c.mean_score) AS mean_score, any_value(r.root_text) AS root_text
        FROM interactions i JOIN conversations c USING (conversation_id)
        LEFT JOIN roots r USING (conversation_id)
        WHERE i.topic = ? AND i.created_at >= ? AND i.created_at < ?
        GROUP BY i.conversation_id ORDER BY sum(i.score) DESC, i.conversation_id LIMIT ?""",
                 [topic, start, end, limit])


def gather(cfg: Config, topics: Sequence[str] | None = None,
           since: str | None = None) -> tuple[list[TopicData], pd.DataFrame, dict[str, Any]]:
    """Everything the report shows: per-topic data, the event-study table and run facts."""
    path, metric = cfg.warehouse_path, cfg.forecast.metric
    windows = _read(path, "SELECT topic, window_start AS ts, window_end, mean_score, "
                          "extreme_share, hostility_share, volume FROM topic_windows "
                          "ORDER BY topic, ts", [])
    known = sorted(set(windows["topic"]))
    if topics:
        unknown = [t for t in topics if t not in known]
        if unknown:
            raise PolarwatchError(f"no windows for topic(s) {', '.join(unknown)} in {path}; "
                                  f"topics with data: {', '.join(known) or 'none'}")
    chosen = list(topics) if topics else known
    latest = windows["ts"].max() if len(windows) else None
    start = parse_since(since, None if latest is None else pd.Timestamp(latest).to_pydatetime())
    freq = (windows["window_end"] - windows["ts"]).mode().iloc[0] if len(windows) \
        else pd.Timedelta(hours=1)
    fc = _read(path, "SELECT * FROM forecasts WHERE metric = ? ORDER BY topic, ts", [metric])
    act = active_flags(path, metric)
    try:
        names = {t.id: t.name for t in cfg.load_topics()}
    except PolarwatchError:
        names = {}
    calendar = [e for e in load_events(events_path(cfg.root)) if e.topic in chosen
                and (start is None or e.effective_end >= start - timedelta(days=3))]
    data = []
    for topic in chosen:
        w = windows[windows["topic"] == topic]
        f = fc[fc["topic"] == topic]
        if start is not None:
            w = w[w["ts"] >= start]
            f = f[f["ts"] >= start]
        a = act[act["topic"] == topic]
        d = TopicData(topic, names.get(topic, topic), w.reset_index(drop=True),
                      f.reset_index(drop=True), a.reset_index(drop=True),
                      events=[e for e in calendar if e.topic == topic])
        for ts in a["ts"]:
            d.drivers[ts] = drivers(path, topic, ts, ts + freq)
        data.append(d)
    studies = event_studies(path, calendar, extreme_threshold=cfg.aggregate.extreme_threshold)
    facts = {"metric": metric, "since": start, "latest": latest, "freq": freq,
             "horizon": cfg.forecast.horizon, "warehouse": path,
             "threshold": cfg.aggregate.extreme_threshold}
    return data, studies, facts


def write_report(cfg: Config, output: str | Path, topics: Sequence[str] | None = None,
                 since: str | None = None, now: datetime | None = None) -> Path:
    """Render and write atomically; ``output`` may hold strftime codes (UTC ``now``)."""
    now = now or datetime.now(UTC)
    path = Path(now.strftime(str(output)))
    data, studies, facts = gather(cfg, topics, since)
    text = render(data, studies, facts, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def report_loop(cfg: Config, *, output: str | Path, topics: Sequence[str] | None = None,
                since: str | None = None, every: str | None = None, count: int | None = None,
                before: Callable[[], Any] | None = None, log: Callable[[str], Any] = print,
                sleep: Callable[[float], Any] = time.sleep) -> list[Path]:
    """One report, or one every ``every`` (``count`` times, or until interrupted); each path
    is printed as it is written. ``before`` runs first each time (``report --forecast``: the
    forecast run, so the report never imports the modelling code)."""
    period = parse_duration(every).total_seconds() if every else None
    paths: list[Path] = []
    while True:
        started = time.monotonic()
        if before is not None:
            before()
        paths.append(write_report(cfg, output, topics, since))
        log(str(paths[-1]))
        if period is None or (count is not None and len(paths) >= count):
            return paths
        sleep(max(0.0, period - (time.monotonic() - started)))
