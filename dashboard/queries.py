"""Read-side queries for the dashboard: DuckDB path in, pandas DataFrame out.

The stream writer holds the DuckDB file only for the length of one batch, and DuckDB locks every
other process out while it does (shared FACTS). So each function here opens its own short-lived
read-only connection through :func:`polarwatch.warehouse.connect` (which retries on the lock),
runs one query and closes it. A missing file raises ``FileNotFoundError`` with a hint.

Timestamps come back timezone-aware in UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from polarwatch.warehouse import connect

DEFAULT_METRIC = "mean_score"  # the series the forecaster writes for the demo ([forecast] metric)


def _df(path: str | Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute(sql, params or []).df()
    return df


def topics_overview(path: str | Path, sparkline: int = 24) -> pd.DataFrame:
    """The latest window of every topic, with the previous window's score for a delta.

    Columns: topic, window_start, window_end, mean_score, prev_mean_score, extreme_share,
    hostility_share, volume, n_interactions, n_conversations, updated_at, recent_scores (the
    last ``sparkline`` mean scores, oldest first, for a sparkline). One row per topic, ordered
    by topic.
    """
    return _df(path, """
        WITH ranked AS (
            SELECT *,
                   lag(mean_score) OVER (PARTITION BY topic ORDER BY window_start)
                       AS prev_mean_score,
                   row_number() OVER (PARTITION BY topic ORDER BY window_start DESC) AS rn
            FROM topic_windows),
             spark AS (
            SELECT topic, list(mean_score ORDER BY window_start) AS recent_scores
            FROM ranked WHERE rn <= ? AND mean_score IS NOT NULL GROUP BY topic)
        SELECT r.topic, window_start, window_end, mean_score, prev_mean_score, extreme_share,
               hostility_share, volume, n_interactions, n_conversations, updated_at,
               s.recent_scores
        FROM ranked r LEFT JOIN spark s USING (topic)
        WHERE rn = 1 ORDER BY r.topic""", [sparkline])


def topic_series(path: str | Path, topic: str, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One topic's windows joined with the forecaster's output for ``metric``.

    Columns: ts, y (observed mean interaction score), volume, extreme_share, forecast, lower,
    upper, flag (none|spike|dip|forecast; NULL where no forecast row exists). Forecast rows in
    the future (no window yet) appear with y = NULL. Ordered by ts.
    """
    return _df(path, """
        WITH w AS (SELECT window_start AS ts, mean_score AS y, volume, extreme_share
                   FROM topic_windows WHERE topic = ?),
             f AS (SELECT ts, y, forecast, lower, upper, flag
                   FROM forecasts WHERE topic = ? AND metric = ?)
        SELECT coalesce(w.ts, f.ts) AS ts, coalesce(w.y, f.y) AS y, w.volume, w.extreme_share,
               f.forecast, f.lower, f.upper, f.flag
        FROM w FULL OUTER JOIN f ON w.ts = f.ts
        ORDER BY ts""", [topic, topic, metric])


def top_conversations(path: str | Path, topic: str | None = None, limit: int = 10) -> pd.DataFrame:
    """The most polarized conversations (highest mean interaction score), optionally per topic.

    Columns: conversation_id, topic, mean_score, n_interactions, first_at, last_at, root_text
    (the text of the conversation's root post when it is stored, else NULL).
    """
    return _df(path, """
        WITH roots AS (SELECT conversation_id, any_value(text) AS root_text
                       FROM posts WHERE parent_id IS NULL GROUP BY conversation_id)
        SELECT c.conversation_id, c.topic, c.mean_score, c.n_interactions, c.first_at,
               c.last_at, r.root_text
        FROM conversations c LEFT JOIN roots r USING (conversation_id)
        WHERE ? IS NULL OR c.topic = ?
        ORDER BY c.mean_score DESC, c.n_interactions DESC, c.conversation_id
        LIMIT ?""", [topic, topic, limit])


def stream_status(path: str | Path) -> pd.DataFrame:
    """A one-row summary of what the stream has written.

    Columns: last_batch_at (NULL before the first committed batch), n_batches, batch_posts,
    batch_dead, batch_interactions (sums over ``stream_batches``), n_posts, n_interactions
    (rows stored in ``posts`` / ``interactions``).
    """
    return _df(path, """
        SELECT b.last_batch_at, b.n_batches, b.batch_posts, b.batch_dead, b.batch_interactions,
               (SELECT count(*) FROM posts) AS n_posts,
               (SELECT count(*) FROM interactions) AS n_interactions
        FROM (SELECT max(committed_at) AS last_batch_at, count(*) AS n_batches,
                     coalesce(sum(n_posts), 0) AS batch_posts,
                     coalesce(sum(n_dead), 0) AS batch_dead,
                     coalesce(sum(n_interactions), 0) AS batch_interactions
              FROM stream_batches) b""")
