"""Per-topic event-time windows, recomputed from the stored rows for the windows a batch touched.

Runs inside the sink's batch transaction (temp tables ``post_batch``, ``topic_watermarks`` and,
when the batch scored replies, ``touched_interactions`` are present). Windows that end before
their topic's watermark — that topic's event clock before this batch
(:func:`polarwatch.warehouse.event_clock_sql`) minus the configured delay — are final: late rows
are stored (never lost) and counted, but do not reopen them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from polarwatch.warehouse import scalar
from scoring.indices import bimodality_coefficient, esteban_ray


def update_windows(con: Any, interval: str, extreme_threshold: float, now: datetime,
                   final_too: bool = False) -> int:
    """Recompute touched, still-open windows (with `final_too`, also those behind the
    watermark: ``polarwatch relabel`` corrects them); returns how many were written."""
    iv = interval
    has_touched = scalar(
        con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'touched_interactions' "
        "AND temporary")
    touched_inter = (f"UNION SELECT topic, time_bucket({iv}, created_at) FROM "
                     "touched_interactions") if has_touched else ""
    open_only = "" if final_too else (f"LEFT JOIN topic_watermarks w USING (topic) "
                                      f"WHERE w.watermark IS NULL OR t.ws + {iv} > w.watermark")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE touched AS
        SELECT t.topic, t.ws FROM (SELECT DISTINCT topic, time_bucket({iv}, created_at) AS ws
                                   FROM post_batch {touched_inter}) t
        {open_only}
    """)
    lo_hi = "posts.created_at >= (SELECT min(ws) FROM touched) AND " \
            f"posts.created_at < (SELECT max(ws) FROM touched) + {iv}"  # zonemap pruning
    con.execute(f"""
        INSERT OR REPLACE INTO topic_windows BY NAME
        WITH p AS (
            SELECT t.topic, t.ws, count(*) AS volume,
                   avg(CASE WHEN affect = 'yes' THEN 1 ELSE 0 END) AS hostility_share,
                   avg(CASE WHEN stance = 'pro' THEN 1 ELSE 0 END) AS pro_share,
                   avg(CASE WHEN stance = 'anti' THEN 1 ELSE 0 END) AS anti_share
            FROM touched t JOIN posts ON posts.topic = t.topic
              AND posts.created_at >= t.ws AND posts.created_at < t.ws + {iv}
            WHERE {lo_hi}
            GROUP BY ALL),
        i AS (
            SELECT t.topic, t.ws, i.platform, i.conversation_id, i.score, i.rule
            FROM touched t JOIN interactions i ON i.topic = t.topic
              AND i.created_at >= t.ws AND i.created_at < t.ws + {iv}),
        -- a conversation is named by its platform and its id there, as a post is
        c AS (SELECT topic, ws, platform, conversation_id, avg(score) AS conv_score,
                     count(*) AS n
              FROM i GROUP BY ALL),
        ca AS (
            SELECT topic, ws, sum(n) AS n_interactions,
                   sum(conv_score * n) / sum(n) AS mean_score,
                   count(*) AS n_conversations,
                   avg(CASE WHEN conv_score > {float(extreme_threshold)} THEN 1 ELSE 0 END)
                       AS extreme_share
            FROM c GROUP BY ALL),
        x AS (SELECT topic, ws, avg(CASE WHEN rule LIKE 'opposite%' THEN 1 ELSE 0 END)
                  AS cross_stance_rate FROM i GROUP BY ALL)
        SELECT p.topic, p.ws AS window_start, p.ws + {iv} AS window_end, p.volume,
               coalesce(ca.n_interactions, 0) AS n_interactions, ca.mean_score,
               coalesce(ca.n_conversations, 0) AS n_conversations, ca.extreme_share,
               p.hostility_share, p.pro_share, p.anti_share, x.cross_stance_rate,
               NULL::DOUBLE AS esteban_ray, NULL::DOUBLE AS bimodality,
               ?::TIMESTAMPTZ AS updated_at
        FROM p LEFT JOIN ca ON ca.topic = p.topic AND ca.ws = p.ws
               LEFT JOIN x ON x.topic = p.topic AND x.ws = p.ws
    """, [now])
    _update_indices(con, iv)
    n = int(scalar(con, "SELECT count(*) FROM touched"))
    con.execute("DROP TABLE IF EXISTS touched_interactions")
    con.execute("DROP TABLE touched")
    return n


def _update_indices(con: Any, iv: str) -> None:
    """Esteban–Ray and bimodality for the touched windows (formulas live in scoring.indices)."""
    rows = con.execute(f"""
        SELECT w.topic, w.window_start, w.pro_share, w.anti_share,
               (SELECT list(s) FROM (SELECT avg(score) AS s FROM interactions i
                 WHERE i.topic = w.topic AND i.created_at >= w.window_start
                   AND i.created_at < w.window_start + {iv}
                 GROUP BY platform, conversation_id)) AS scores
        FROM topic_windows w JOIN touched t ON t.topic = w.topic AND t.ws = w.window_start
    """).fetchall()
    if not rows:
        return
    idx = pd.DataFrame({
        "topic": [r[0] for r in rows], "window_start": [r[1] for r in rows],
        "esteban_ray": [esteban_ray(r[2], r[3]) for r in rows],
        "bimodality": [bimodality_coefficient(r[4] or []) for r in rows]})
    con.register("idx_batch", idx)
    con.execute("""UPDATE topic_windows SET esteban_ray = idx_batch.esteban_ray,
                   bimodality = idx_batch.bimodality FROM idx_batch
                   WHERE topic_windows.topic = idx_batch.topic
                     AND topic_windows.window_start = idx_batch.window_start""")
    con.unregister("idx_batch")
