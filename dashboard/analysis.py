"""Pure pandas helpers behind the pages: formatting, trend arrows, flag wording, event studies
(the event-study functions live in :mod:`scoring.event_phases` and are re-exported here).

No Streamlit and no DuckDB here, so each function is tested with plain frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from polarwatch.events import Event
from scoring.event_phases import (  # noqa: F401  (re-exported: the topic page imports them)
    EVENT_STUDY_DAYS,
    PHASES,
    event_study,
    event_study_range,
    phase_summary,
)
from scoring.label_accuracy import TaskAccuracy, accuracy_by_task, under_sides
from scoring.side_check import side_check

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


# Upper end of each bounded metric's scale (a mean score or a share); counts have none.
SCALE_MAX = {"mean_score": 10.0, "extreme_share": 1.0, "hostility_share": 1.0,
             "pro_share": 1.0, "anti_share": 1.0}
Z95 = 1.959964  # two-sided 95 %


def window_interval(value: Any, n: Any, upper: float, z: float = Z95) -> tuple[float, float]:
    """95 % interval of a window's mean (or share) ``value`` on ``[0, upper]`` from ``n``
    observations: the Wilson score interval of ``value / upper``.

    For a share it is the usual Wilson interval; for a mean of bounded scores it is
    conservative (a variable on [0, 1] with mean p has variance <= p(1 - p)). It never leaves
    ``[0, upper]`` and is wide for small ``n``: 3 interactions at 9.0 give 3.6-9.9, 3,000 give
    8.9-9.1.
    (NaN, NaN) when the value or n is missing or n < 1.
    """
    if is_missing(value) or is_missing(n) or float(n) < 1:
        return math.nan, math.nan
    p, k = min(max(float(value) / upper, 0.0), 1.0), float(n)
    centre = (p + z * z / (2 * k)) / (1 + z * z / k)
    half = z * math.sqrt(p * (1 - p) / k + z * z / (4 * k * k)) / (1 + z * z / k)
    return upper * (centre - half), upper * (centre + half)


def with_intervals(series: pd.DataFrame, metric: str) -> pd.DataFrame:
    """``series`` (value, n per window) plus ``lo``/``hi``: the 95 % interval of each window's
    value (:func:`window_interval`); NaN for metrics without a bounded scale (volume)."""
    upper = SCALE_MAX.get(metric)
    if upper is None or "n" not in series:
        return series.assign(lo=math.nan, hi=math.nan)
    bounds = [window_interval(v, n, upper) for v, n in zip(series["value"], series["n"],
                                                           strict=True)]
    return series.assign(lo=[b[0] for b in bounds], hi=[b[1] for b in bounds])


def fmt_uncertain(metric: str, value: Any, n: Any) -> str:
    """'9.00 (4.4–9.8)': a value with its 95 % window interval when it has one."""
    text = fmt_value(metric, value)
    upper = SCALE_MAX.get(metric)
    lo, hi = window_interval(value, n, upper) if upper else (math.nan, math.nan)
    if math.isnan(lo):
        return text
    if upper == 1.0:
        return f"{text} ({lo:.0%}–{hi:.0%})"
    return f"{text} ({lo:.1f}–{hi:.1f})"


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
    """The flag's explanation: the sentence the forecast stage stored (``explanation``, built
    once by ``forecast/explain.py`` and shown by the report too); for rows stored without one,
    what was observed against the forecast's prediction interval."""
    stored = row.get("explanation")
    if isinstance(stored, str) and stored:
        return stored
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


def label_accuracy(labels: pd.DataFrame, topic: str, sides: tuple[str, str] | None = None
                   ) -> dict[str, TaskAccuracy]:
    """Per task, the model against the analysts on `topic`'s random labels (rows of
    ``label_store.random_labels``), its stance labels read under `sides`, its (pro, anti) now
    (``scoring.label_accuracy.under_sides``); tasks without labels are left out
    (``scoring.label_accuracy.accuracy_by_task``, as the report)."""
    rows = under_sides(labels[labels["topic"] == topic], sides)
    return accuracy_by_task(
        (str(task), str(value), None if is_missing(model) else str(model))
        for task, value, model in zip(rows["task"], rows["value"], rows["model_value"],
                                      strict=True))


def stance_labels_left_out(labels: pd.DataFrame, topic: str,
                           sides: tuple[str, str] | None) -> int:
    """How many of `topic`'s random stance labels were given under other pro/anti descriptions
    than `sides` and are left out of its accuracy (:func:`label_accuracy`)."""
    rows = labels[(labels["topic"] == topic) & (labels["task"] == "stance")]
    return len(rows) - len(under_sides(rows, sides))


def llm_agreement(pairs: pd.DataFrame) -> dict[str, TaskAccuracy]:
    """Per task, how often the LLM's suggestion matched the analyst's label (rows of
    ``label_store.suggestion_pairs``: task, value, suggestion): ``accuracy`` is the share of
    agreement, with its Wilson interval and n."""
    return accuracy_by_task((str(task), str(value), str(suggestion)) for task, value, suggestion
                            in zip(pairs["task"], pairs["value"], pairs["suggestion"],
                                   strict=True))


def describe_llm_agreement(pairs: pd.DataFrame) -> str | None:
    """One sentence on how often the LLM's suggestions matched the analysts' labels (rows of
    ``label_store.suggestion_pairs``, with ``after_seeing``), per task with its Wilson interval,
    and how many labels were made after seeing the suggestion; None without pairs. The Label
    and Topic pages both say it."""
    if pairs.empty:
        return None
    agreed = llm_agreement(pairs)
    swayed = int(pairs["after_seeing"].fillna(False).astype(bool).sum())
    return ("The LLM agreed with the analysts' labels: " + "; ".join(
        f"{m.task} {m.correct} of {m.n} ({m.accuracy:.0%}, 95 % interval {m.lower:.0%}–"
        f"{m.upper:.0%})" for m in agreed.values() if m.accuracy is not None)
        + f". {swayed} of these {len(pairs)} labels were made after seeing its suggestion.")


def sides_verdict(row: Any) -> tuple[bool, str] | None:
    """Whether the topic's sides look random against its replies' agreement, and the card's
    line (a row of ``queries.side_consistency``; ``scoring.side_check``); None with too few
    pairs to tell."""
    check = side_check(row)
    if check is None:
        return None
    if check.random:
        return True, f":orange-badge[{check.title.lower()}] {check.detail}"
    return False, check.sentence
