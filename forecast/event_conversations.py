"""The conversations around each event, read from the warehouse: :func:`event_studies` reads
them from the ``conversations`` view and tabulates them by phase with
:func:`scoring.event_phases.phase_table` (the pure computation).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd

from polarwatch.events import Event
from polarwatch.reads import CONVERSATIONS
from polarwatch.warehouse import connect
from scoring.event_phases import EVENT_STUDY_DAYS, PHASE_COLUMNS, event_study_range, phase_table

__all__ = ["EVENT_STUDY_DAYS", "event_studies", "phase_table", "read_conversations"]


def read_conversations(path: str | Path, topic: str, start: datetime,
                       end: datetime) -> pd.DataFrame:
    """platform, conversation_id, first_at, mean_score of ``topic``'s conversations starting in
    range (a conversation is named by its platform and its id there, as a post is)."""
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute(
            f"SELECT platform, conversation_id, first_at, mean_score FROM {CONVERSATIONS} "
            "WHERE topic = ? AND first_at >= ? AND first_at < ? ORDER BY first_at",
            [topic, start, end]).df()
    return df


def event_studies(path: str | Path, events: Sequence[Event], days: int = EVENT_STUDY_DAYS, *,
                  extreme_threshold: float) -> pd.DataFrame:
    """:func:`phase_table` of every event, read from the warehouse at ``path``."""
    frames = []
    for ev in events:
        start, end = event_study_range(ev, days)
        convs = read_conversations(path, ev.topic, start, end)
        frames.append(phase_table(convs, ev, days, extreme_threshold=extreme_threshold))
    if not frames:
        return pd.DataFrame(columns=PHASE_COLUMNS)
    return pd.concat(frames, ignore_index=True)
