"""The paper's event study: polarization before / during / after each event of the calendar.

Pure pandas functions (:func:`event_study` per day, :func:`phase_table` per phase), used by the
dashboard's topic page and by the forecast's reports (which read the conversations from DuckDB in
:mod:`forecast.event_conversations`). Conversations are placed
by their first interaction: day -1, -2, ... before the event's start (24 h steps back), day 0
while it runs, day +1, +2, ... after its end, within ±``days`` days. A conversation is extreme
above ``extreme_threshold``: callers pass ``[aggregate] extreme_threshold`` (default
:data:`scoring.rules.EXTREME_THRESHOLD`), so the share matches the stream's windows.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pandas as pd

from polarwatch.events import Event

# The paper's event study looks 3 days either side of an event.
EVENT_STUDY_DAYS = 3
PHASES = ("before", "during", "after")
STUDY_COLUMNS = ["day", "phase", "n", "mean", "sem", "lo", "hi", "extreme_share"]
PHASE_COLUMNS = ["event", "topic", "kind", "start", "phase", "n", "mean", "sem",
                 "extreme_share", "extreme_sem"]


def event_study_range(event: Event, days: int = EVENT_STUDY_DAYS) -> tuple[datetime, datetime]:
    return event.start - timedelta(days=days), event.effective_end + timedelta(days=days)


def _days(convs: pd.DataFrame, event: Event, days: int) -> pd.DataFrame:
    """``day`` and ``score`` of every scored conversation within ±``days`` of ``event``."""
    start, end = pd.Timestamp(event.start), pd.Timestamp(event.effective_end)
    first = pd.to_datetime(convs["first_at"], utc=True)
    day_s = 86400.0
    before = -((start - first).dt.total_seconds() // day_s + 1)
    after = (first - end).dt.total_seconds() // day_s + 1
    day = before.where(first < start, after.where(first > end, 0)).astype(int)
    df = pd.DataFrame({"day": day, "score": convs["mean_score"].astype(float)})
    return df[(df["day"].abs() <= days) & df["score"].notna()]


def _phase(day: int) -> str:
    return PHASES[0] if day < 0 else PHASES[2] if day > 0 else PHASES[1]


def event_study(convs: pd.DataFrame, event: Event, days: int = EVENT_STUDY_DAYS, *,
                extreme_threshold: float) -> pd.DataFrame:
    """The paper's before / during / after comparison for one event, one row per day.

    ``convs`` has one row per conversation (first_at, mean_score). Columns: day, phase, n, mean
    (mean conversation score), sem (standard error of the mean, NaN for n < 2), lo / hi (mean ∓
    sem), extreme_share (share of conversations above the extreme threshold). One row per day
    with conversations, ordered by day.
    """
    if convs.empty:
        return pd.DataFrame(columns=STUDY_COLUMNS)
    df = _days(convs, event, days)
    if df.empty:
        return pd.DataFrame(columns=STUDY_COLUMNS)
    g = df.groupby("day")["score"]
    out = pd.DataFrame({"n": g.size(), "mean": g.mean(), "sem": g.sem(),
                        "extreme_share": g.apply(lambda s: float((s > extreme_threshold).mean()))})
    out = out.reset_index()
    out["phase"] = [_phase(d) for d in out["day"]]
    out["lo"] = out["mean"] - out["sem"].fillna(0)
    out["hi"] = out["mean"] + out["sem"].fillna(0)
    return out[STUDY_COLUMNS].sort_values("day").reset_index(drop=True)


def phase_summary(study: pd.DataFrame) -> dict[str, float]:
    """Conversation-weighted mean score per phase (for a one-line caption)."""
    out: dict[str, float] = {}
    for phase in PHASES:
        part = study[study["phase"] == phase]
        if len(part) and part["n"].sum():
            out[phase] = float((part["mean"] * part["n"]).sum() / part["n"].sum())
    return out


def phase_table(convs: pd.DataFrame, event: Event, days: int = EVENT_STUDY_DAYS, *,
                extreme_threshold: float) -> pd.DataFrame:
    """One row per phase (before, during, after; always all three) for ``event``.

    Columns: event, topic, kind, start, phase, n (conversations), mean ± sem (conversation
    scores; sem NaN for n < 2, mean NaN for n = 0), extreme_share ± extreme_sem (share of
    conversations above ``extreme_threshold``, binomial standard error).
    """
    df = _days(convs, event, days) if not convs.empty else pd.DataFrame(columns=["day", "score"])
    rows = []
    for phase in PHASES:
        s = df.loc[[_phase(int(d)) == phase for d in df["day"]], "score"].astype(float)
        n = len(s)
        share = float((s > extreme_threshold).mean()) if n else math.nan
        rows.append({"event": event.name, "topic": event.topic, "kind": event.kind,
                     "start": pd.Timestamp(event.start), "phase": phase, "n": n,
                     "mean": float(s.mean()) if n else math.nan,
                     "sem": float(s.sem()) if n > 1 else math.nan,
                     "extreme_share": share,
                     "extreme_sem": math.sqrt(share * (1 - share) / n) if n > 1 else math.nan})
    return pd.DataFrame(rows, columns=PHASE_COLUMNS)
