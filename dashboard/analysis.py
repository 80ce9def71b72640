"""Pure pandas helpers behind the pages: formatting, trend arrows, flag wording, event studies
(the event-study functions live in :mod:`forecast.events_study` and are re-exported here).

No Streamlit and no DuckDB here, so each function is tested with plain frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from forecast.events_study import (  # noqa: F401  (re-exported: the topic page imports them)
    EVENT_STUDY_DAYS,
    EXTREME_THRESHOLD,
    PHASES,
    event_study,
    event_study_range,
    phase_summary,
)
from polarwatch.events import Event

# Trend arrow: the latest window against the mean of the windows before it. Half a point on the
# 0–10 interaction scale is roughly the hour-to-hour wobble of a calm synthetic topic, so smaller
# moves read as flat.
TREND_THRESHOLD = 0.5
# Columns a flag's class may be stored in by later stages (first one present wins); otherwise
# the flag value itself (spike / dip / anticipatory / reactive ...) is its class.
FLAG_CLASS_COLUMNS = ("flag_class", "alarm_class", "pattern", "kind", "class")


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt_score(value: Any) -> str:
    return "—" if is_missing(value) else f"{float(value):.2f}"


def fmt_share(value: Any) -> str:
    return "—" if is_missing(value) else f"{float(value):.0%}"


def fmt_value(metric: str, value: Any) -> str:
    if is_missing(value):
        return "—"
    if metric == "volume":
        return f"{int(value):,}"
    return fmt_share(value) if metric.endswith("_share") else fmt_score(value)


def fmt_age(then: Any, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    return f"{fmt_duration(age_seconds(then, now))} ago"


def age_seconds(then: Any, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    return max(0, int((now - pd.Timestamp(then).to_pydatetime()).total_seconds()))


def fmt_duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def trend_arrow(latest: Any, base: Any, threshold: float = TREND_THRESHOLD) -> str:
    """'↑' / '↓' / '→' for the latest value against the recent mean; '' when unknown."""
    if is_missing(latest) or is_missing(base):
        return ""
    delta = float(latest) - float(base)
    if delta >= threshold:
        return "↑"
    if delta <= -threshold:
        return "↓"
    return "→"


def flag_class(row: Any) -> str:
    for col in FLAG_CLASS_COLUMNS:
        value = row.get(col)
        if isinstance(value, str) and value:
            return value
    return str(row.get("flag", ""))


def explain_flag(row: Any) -> str:
    """One sentence: what was observed against the forecast's prediction interval."""
    y, lower, upper = row.get("y"), row.get("lower"), row.get("upper")
    forecast = row.get("forecast")
    metric = str(row.get("metric", "value"))
    if is_missing(y):
        return f"{flag_class(row)} flagged on {metric}"
    text = f"{metric} {fmt_value(metric, y)}"
    if not is_missing(upper) and float(y) > float(upper):
        text += (f" is {float(y) - float(upper):.2f} above the prediction band "
                 f"[{fmt_value(metric, lower)}, {fmt_value(metric, upper)}]")
    elif not is_missing(lower) and float(y) < float(lower):
        text += (f" is {float(lower) - float(y):.2f} below the prediction band "
                 f"[{fmt_value(metric, lower)}, {fmt_value(metric, upper)}]")
    elif not is_missing(lower) and not is_missing(upper):
        text += (f" (band [{fmt_value(metric, lower)}, {fmt_value(metric, upper)}])")
    if not is_missing(forecast):
        text += f"; forecast was {fmt_value(metric, forecast)}"
    model = row.get("model")
    if isinstance(model, str) and model:
        text += f" ({model})"
    return text


def describe_flags(flags: pd.DataFrame) -> pd.DataFrame:
    """The flags table shown to users: when, topic, metric, class, status, explanation."""
    if flags.empty:
        return pd.DataFrame(columns=["ts", "topic", "metric", "class", "status", "explanation"])
    out = pd.DataFrame({
        "ts": flags["ts"], "topic": flags["topic"], "metric": flags["metric"],
        "class": [flag_class(r) for _, r in flags.iterrows()],
        "status": ["active" if a else "resolved" for a in flags["active"]],
        "explanation": [explain_flag(r) for _, r in flags.iterrows()],
    })
    return out.reset_index(drop=True)


def events_frame(events: Sequence[Event], topic: str | None = None) -> pd.DataFrame:
    """Events as a frame (start, end = effective end, name, kind, topic) for charts/tables."""
    rows = [{"name": e.name, "topic": e.topic, "kind": e.kind,
             "start": pd.Timestamp(e.start), "end": pd.Timestamp(e.effective_end)}
            for e in events if topic is None or e.topic == topic]
    return pd.DataFrame(rows, columns=["name", "topic", "kind", "start", "end"])
