"""The report's HTML: frames in, one document out, through the jinja2 template
``templates/report.html.j2`` with autoescaping on (a topic, event or explanation holding
``<script>`` is shown as text). Pure: no DuckDB, no clock unless ``now`` is omitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from forecast.reports.charts import chart_png

if TYPE_CHECKING:
    from forecast.reports.gather import TopicData

RECENT_FLAGS = 15  # rows of the recent-flags table per topic

_ENV = Environment(loader=PackageLoader("forecast.reports", "templates"),
                   autoescape=select_autoescape(["html", "html.j2"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    empty: str  # shown instead when there are no rows


def cell(value: Any) -> str:
    """One table cell as text (the template escapes it)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (pd.Timestamp, datetime)):
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(df: pd.DataFrame, columns: dict[str, str], empty: str) -> Table:
    """``df[columns]`` with headers ``columns.values()``."""
    rows = [] if df.empty else [[cell(r[c]) for c in columns] for _, r in df.iterrows()]
    return Table(list(columns.values()), rows, empty)


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


def section(d: TopicData, metric: str, threshold: float | None) -> dict[str, Any]:
    """One topic's part of the page (its chart drawn only when it has data)."""
    base = {"name": d.name, "topic": d.topic}
    if d.windows.empty and d.forecasts.empty:
        return {**base, "empty": True}
    fut = d.forecasts[d.forecasts["flag"] == "forecast"] if len(d.forecasts) else d.forecasts
    cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "forecast": "forecast",
            "anomaly_score": "score", "explanation": "why"}
    drivers = [(cell(ts), table(conv, {
        "conversation_id": "conversation", "n_in_window": "interactions in window",
        "window_score": "score in window", "mean_score": "conversation score",
        "root_text": "root post"}, "No scored interactions in that window."))
        for ts, conv in d.drivers.items()]
    flagged = d.forecasts[~d.forecasts["flag"].isin(["none", "forecast"])] \
        if len(d.forecasts) else d.forecasts
    recent = flagged.sort_values("ts", ascending=False).head(RECENT_FLAGS)
    recent_cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "forecast": "forecast",
                   "explanation": "why"}
    return {**base, "empty": False, "chart": chart_png(d, metric, threshold), "n_future": len(fut),
            "forecast": table(fut, {"ts": "window (UTC)", "forecast": metric, "lower": "lower",
                                    "upper": "upper"}, "No forecast (run `polarwatch forecast`)."),
            "active": table(d.active, {k: v for k, v in cols.items() if k in d.active},
                            "No active flags."),
            "drivers": drivers,
            "recent": table(recent, {k: v for k, v in recent_cols.items() if k in recent},
                            "No flags in the range.")}


def studies_table(studies: pd.DataFrame) -> Table:
    if not studies.empty:
        studies = studies.assign(
            score=[_pm(m, s) for m, s in zip(studies["mean"], studies["sem"], strict=True)],
            extreme=[_pm(m, s, True) for m, s in zip(studies["extreme_share"],
                                                     studies["extreme_sem"], strict=True)])
    return table(studies, {"event": "event", "topic": "topic", "kind": "kind",
                           "start": "start (UTC)", "phase": "phase", "n": "conversations",
                           "score": "mean score ± SEM", "extreme": "extreme share ± SEM"},
                 "No events in the calendar for these topics (`polarwatch events add`).")


def render(data: list[TopicData], studies: pd.DataFrame, facts: dict[str, Any],
           now: datetime | None = None) -> str:
    """The report as one HTML document."""
    now = now or datetime.now(UTC)
    metric, horizon = facts["metric"], facts["horizon"]
    summary = table(pd.DataFrame([summary_row(d, metric) for d in data]),
                    {"topic": "topic", "window": "newest window (UTC)", "mean_score":
                     "mean score", "extreme_share": "extreme share", "volume": "posts",
                     "next": "forecast +1", "end": f"forecast +{horizon}",
                     "flags": "active flags"}, "No topics with data yet.")
    return _ENV.get_template("report.html.j2").render(
        now=f"{now:%Y-%m-%d %H:%M}", warehouse=str(facts["warehouse"]),
        latest=cell(facts["latest"]),
        since="since " + cell(facts["since"]) if facts["since"] else "all data",
        metric=metric, horizon=horizon, summary=summary,
        sections=[section(d, metric, facts["threshold"]) for d in data],
        studies=studies_table(studies))
