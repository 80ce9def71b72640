"""`polarwatch report`: one self-contained HTML file (charts embedded as base64 PNG).

Per topic: the current state (newest window), a chart of the forecast metric with its band, the
horizon forecast, flags and events, the forecast table for the next ``[forecast] horizon``
windows, the active flags with their class and explanation, the conversations driving them
(most interaction-score mass in the flagged window) and the recent flags; then the
before / during / after table of every event (:mod:`forecast.events_study`).

Reading is plain SQL over short read-only connections; rendering is pure (frames in, HTML out).
matplotlib draws with its Agg canvas directly (no pyplot state, no display needed).
"""

from __future__ import annotations

import base64
import html
import io
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
from polarwatch.config import Config
from polarwatch.errors import ConfigError, PolarwatchError
from polarwatch.events import Event, events_path, load_events
from polarwatch.warehouse import connect

DRIVERS_PER_FLAG = 5  # conversations listed under each active flag
RECENT_FLAGS = 15  # rows of the recent-flags table per topic
CLASS_COLORS = {"spike": "#d62728", "dip": "#1f77b4", "reactive": "#ff7f0e",
                "anticipatory": "#9467bd"}
EVENT_COLORS = {"scheduled": "#9467bd", "sudden": "#ff7f0e"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.num{text-align:right}
.muted{color:#777}.flag{font-weight:600}img{max-width:100%}section{margin-bottom:2.5em}"""


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


def chart_png(d: TopicData, metric: str, threshold: float | None) -> str:
    """The topic's chart as a base64 PNG (observed, band, horizon forecast, flags, events)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    f = d.forecasts
    observed = f[f["flag"] != "forecast"] if len(f) else f
    future = f[f["flag"] == "forecast"] if len(f) else f
    if len(d.windows) and metric in d.windows:
        ax.plot(d.windows["ts"], d.windows[metric], color="#333", lw=1.2, label=metric)
    for part, alpha in ((observed, 0.15), (future, 0.3)):
        if len(part) and part["lower"].notna().any():
            ax.fill_between(part["ts"], part["lower"], part["upper"], color="#1f77b4",
                            alpha=alpha, lw=0)
    if len(future):
        ax.plot(future["ts"], future["forecast"], "--", color="#1f77b4", lw=1.2,
                label="forecast")
    flagged = observed[~observed["flag"].isin(["none", "forecast"])] if len(observed) else f
    for cls, part in flagged.groupby("flag") if len(flagged) else []:
        ax.scatter(part["ts"], part["y"], color=CLASS_COLORS.get(str(cls), "#000"), s=28,
                   zorder=3, label=str(cls))
    for ev in d.events:
        ax.axvspan(pd.Timestamp(ev.start), pd.Timestamp(ev.effective_end), alpha=0.25,
                   color=EVENT_COLORS.get(ev.kind, "#999"))
        ax.axvline(pd.Timestamp(ev.start), color=EVENT_COLORS.get(ev.kind, "#999"), lw=1)
        ax.annotate(f"{ev.name} ({ev.kind})", (pd.Timestamp(ev.start), 1.0), fontsize=8,
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color=EVENT_COLORS.get(ev.kind, "#555"))
    if threshold is not None and metric == "mean_score":
        ax.axhline(threshold, color="#d62728", lw=0.8, ls=":", label=f"extreme ({threshold:g})")
    ax.set_title(f"{d.name}: {metric}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def _esc(value: Any) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (pd.Timestamp, datetime)):
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def table(df: pd.DataFrame, columns: dict[str, str], empty: str) -> str:
    """An HTML table of ``df[columns]`` with headers ``columns.values()`` (escaped)."""
    if df.empty:
        return f'<p class="muted">{html.escape(empty)}</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in columns.values())
    rows = "".join("<tr>" + "".join(f"<td>{_esc(r[c])}</td>" for c in columns) + "</tr>"
                   for _, r in df.iterrows())
    return f"<table><tr>{head}</tr>{rows}</table>"


def _pm(mean: Any, sem: Any, pct: bool = False) -> str:
    if pd.isna(mean):
        return "—"
    fmt = (lambda v: f"{v:.0%}") if pct else (lambda v: f"{v:.2f}")
    return fmt(mean) + ("" if pd.isna(sem) else f" ± {fmt(sem)}")


def summary_row(d: TopicData, metric: str) -> dict[str, Any]:
    last = d.windows.iloc[-1] if len(d.windows) else None
    fut = d.forecasts[d.forecasts["flag"] == "forecast"] if len(d.forecasts) else d.forecasts
    return {"topic": d.name, "window": None if last is None else last["ts"],
            "mean_score": None if last is None else last["mean_score"],
            "extreme_share": None if last is None else _pm(last["extreme_share"], None, True),
            "volume": None if last is None else int(last["volume"]),
            "next": None if fut.empty else fut["forecast"].iloc[0],
            "end": None if fut.empty else fut["forecast"].iloc[-1],
            "flags": ", ".join(str(x) for x in d.active["flag"]) or "none"}


def render(data: list[TopicData], studies: pd.DataFrame, facts: dict[str, Any],
           now: datetime | None = None) -> str:
    """The report as one HTML document."""
    now = now or datetime.now(UTC)
    metric, horizon = facts["metric"], facts["horizon"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>polarwatch report "
           f"{now:%Y-%m-%d %H:%M} UTC</title><style>{CSS}</style></head><body>",
           "<h1>polarwatch report</h1>",
           f"<p class='muted'>Generated {now:%Y-%m-%d %H:%M} UTC from "
           f"{html.escape(str(facts['warehouse']))}; newest window {_esc(facts['latest'])} "
           f"UTC; {'since ' + _esc(facts['since']) if facts['since'] else 'all data'}; "
           f"forecast metric <b>{html.escape(metric)}</b>, horizon {horizon} windows.</p>",
           "<h2>Current state</h2>",
           table(pd.DataFrame([summary_row(d, metric) for d in data]),
                 {"topic": "topic", "window": "newest window (UTC)", "mean_score":
                  "mean score", "extreme_share": "extreme share", "volume": "posts",
                  "next": "forecast +1", "end": f"forecast +{horizon}",
                  "flags": "active flags"}, "No topics with data yet.")]
    for d in data:
        out.append(f"<section><h2>{html.escape(d.name)} <span class='muted'>"
                   f"({html.escape(d.topic)})</span></h2>")
        if d.windows.empty and d.forecasts.empty:
            out.append("<p class='muted'>No windows in the report range.</p></section>")
            continue
        out.append(f'<img src="data:image/png;base64,{chart_png(d, metric, facts["threshold"])}" '
                   f'alt="{html.escape(d.name)} chart">')
        fut = d.forecasts[d.forecasts["flag"] == "forecast"] if len(d.forecasts) else d.forecasts
        out.append(f"<h3>Forecast: next {len(fut)} windows</h3>")
        out.append(table(fut, {"ts": "window (UTC)", "forecast": metric, "lower": "lower",
                               "upper": "upper"}, "No forecast (run `polarwatch forecast`)."))
        out.append("<h3>Active flags</h3>")
        cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "forecast": "forecast",
                "anomaly_score": "score", "explanation": "why"}
        cols = {k: v for k, v in cols.items() if k in d.active}
        out.append(table(d.active, cols, "No active flags."))
        for ts, conv in d.drivers.items():
            out.append(f"<h3>Conversations driving the flag of {_esc(ts)}</h3>")
            out.append(table(conv, {"conversation_id": "conversation", "n_in_window":
                                    "interactions in window", "window_score": "score in window",
                                    "mean_score": "conversation score", "root_text": "root post"},
                             "No scored interactions in that window."))
        flagged = d.forecasts[~d.forecasts["flag"].isin(["none", "forecast"])] \
            if len(d.forecasts) else d.forecasts
        recent = flagged.sort_values("ts", ascending=False).head(RECENT_FLAGS)
        cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "forecast": "forecast",
                "explanation": "why"}
        cols = {k: v for k, v in cols.items() if k in recent}
        out.append("<h3>Recent flags</h3>" + table(recent, cols, "No flags in the range."))
        out.append("</section>")
    out.append("<h2>Events: before / during / after (±3 days)</h2>")
    if not studies.empty:
        studies = studies.assign(
            score=[_pm(m, s) for m, s in zip(studies["mean"], studies["sem"], strict=True)],
            extreme=[_pm(m, s, True) for m, s in zip(studies["extreme_share"],
                                                     studies["extreme_sem"], strict=True)])
    out.append(table(studies, {"event": "event", "topic": "topic", "kind": "kind",
                               "start": "start (UTC)", "phase": "phase", "n": "conversations",
                               "score": "mean score ± SEM", "extreme": "extreme share ± SEM"},
                     "No events in the calendar for these topics (`polarwatch events add`)."))
    out.append("</body></html>")
    return "\n".join(out)


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
