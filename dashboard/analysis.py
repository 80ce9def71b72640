"""Pure pandas helpers behind the pages: formatting, trend arrows, flag wording, event studies.

No Streamlit and no DuckDB here, so each function is tested with plain frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from dashboard.events import Event

# Trend arrow: the latest window against the mean of the windows before it. Half a point on the
# 0–10 interaction scale is roughly the hour-to-hour wobble of a calm synthetic topic, so smaller
# moves read as flat.
TREND_THRESHOLD = 0.5
# The paper's event study looks 3 days either side of an event.
EVENT_STUDY_DAYS = 3
# A conversation is extreme when its mean interaction score is above this ([aggregate] default).
EXTREME_THRESHOLD = 7.0
# Columns a flag's class may be stored in by later stages (first one present wins); otherwise
# the flag value itself (spike / dip / anticipatory / reactive ...) is its class.
FLAG_CLASS_COLUMNS = ("flag_class", "alarm_class", "pattern", "kind", "class")
PHASES = ("before", "during", "after")


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


def event_study_range(event: Event, days: int = EVENT_STUDY_DAYS) -> tuple[datetime, datetime]:
    return event.start - timedelta(days=days), event.effective_end + timedelta(days=days)


def event_study(convs: pd.DataFrame, event: Event, days: int = EVENT_STUDY_DAYS,
                extreme_threshold: float = EXTREME_THRESHOLD) -> pd.DataFrame:
    """The paper's before / during / after comparison for one event.

    ``convs`` has one row per conversation (first_at, mean_score). Conversations starting before
    the event fall in day -1, -2, ... (24 h steps back from its start), those starting while it
    runs in day 0 ("during"), those after its end in day +1, +2, ... Within ±``days`` days.

    Columns: day, phase, n, mean (mean conversation score), sem (standard error of the mean,
    NaN for n < 2), lo / hi (mean ∓ sem), extreme_share (share of conversations above the
    extreme threshold). One row per day with conversations, ordered by day.
    """
    columns = ["day", "phase", "n", "mean", "sem", "lo", "hi", "extreme_share"]
    if convs.empty:
        return pd.DataFrame(columns=columns)
    start, end = pd.Timestamp(event.start), pd.Timestamp(event.effective_end)
    first = pd.to_datetime(convs["first_at"], utc=True)
    day_s = 86400.0
    before = -((start - first).dt.total_seconds() // day_s + 1)
    after = (first - end).dt.total_seconds() // day_s + 1
    day = before.where(first < start, after.where(first > end, 0)).astype(int)
    df = pd.DataFrame({"day": day, "score": convs["mean_score"].astype(float)})
    df = df[(df["day"].abs() <= days) & df["score"].notna()]
    if df.empty:
        return pd.DataFrame(columns=columns)
    g = df.groupby("day")["score"]
    out = pd.DataFrame({"n": g.size(), "mean": g.mean(), "sem": g.sem(),
                        "extreme_share": g.apply(lambda s: float((s > extreme_threshold).mean()))})
    out = out.reset_index()
    out["phase"] = [PHASES[0] if d < 0 else PHASES[2] if d > 0 else PHASES[1]
                    for d in out["day"]]
    out["lo"] = out["mean"] - out["sem"].fillna(0)
    out["hi"] = out["mean"] + out["sem"].fillna(0)
    return out[columns].sort_values("day").reset_index(drop=True)


def phase_summary(study: pd.DataFrame) -> dict[str, float]:
    """Conversation-weighted mean score per phase (for a one-line caption)."""
    out: dict[str, float] = {}
    for phase in PHASES:
        part = study[study["phase"] == phase]
        if len(part) and part["n"].sum():
            out[phase] = float((part["mean"] * part["n"]).sum() / part["n"].sum())
    return out
