"""The dashboard's scored share: replies with a known parent in a topic's latest window, and how
many of them have an interaction score (real DuckDB file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from dashboard import queries
from polarwatch.warehouse import connect, init_schema

if TYPE_CHECKING:
    import duckdb

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _post(con: duckdb.DuckDBPyConnection, pid: str, at: datetime, parent: str | None,
          stance: str) -> None:
    con.execute(
        "INSERT INTO posts (id, platform, author_id, text, created_at, topic, conversation_id, "
        "parent_id, schema_version, stance, affect, emotion, intensity, stance_conf, "
        "affect_conf, emotion_conf, backend) VALUES (?, 'test', 'a', 't', ?, 'guns', 'c', ?, 1, "
        "?, 'no', 'neutral', 0, 1, 1, 1, 'test')", [pid, at, parent, stance])


def test_scored_share_counts_replies_of_the_latest_window(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    init_schema(path)
    with connect(path) as con:
        for ws in (T0, T0 + HOUR):  # two windows; the latest one counts
            con.execute("INSERT INTO topic_windows (topic, window_start, window_end, volume, "
                        "n_interactions, n_conversations, updated_at) VALUES "
                        "('guns', ?, ?, 1, 1, 1, ?)", [ws, ws + HOUR, ws])
        _post(con, "root", T0, None, "pro")
        _post(con, "old", T0 + 0.5 * HOUR, "root", "anti")  # earlier window: not counted
        _post(con, "scored", T0 + 1.2 * HOUR, "root", "anti")
        _post(con, "unclear", T0 + 1.3 * HOUR, "root", "unclear")
        _post(con, "unclear2", T0 + 1.4 * HOUR, "scored", "unclear")
        _post(con, "orphan", T0 + 1.5 * HOUR, "not-yet-seen", "pro")  # parent unknown
        for pid in ("old", "scored"):
            con.execute("INSERT INTO interactions VALUES (?, 'root', 'c', 'guns', ?, 8, 'x', 'test')",
                        [pid, T0 + 1.2 * HOUR])
    share = queries.scored_share(path).set_index("topic")
    assert share.loc["guns", "replies"] == 3 and share.loc["guns", "scored"] == 1
