"""Read-side queries for the dashboard: DuckDB path in, pandas DataFrame out.

The stream writer holds the DuckDB file only for the length of one batch, but while a process
holds a DuckDB file read-write, DuckDB refuses every other process, readers included (the "Could
not set lock" error). So each function here opens its own short-lived
read-only connection through :func:`polarwatch.warehouse.connect` (which retries on the lock),
runs one query and closes it. A missing file raises ``FileNotFoundError`` with a hint.

With ``$POLARWATCH_DASHBOARD_SNAPSHOT_S`` > 0 (``polarwatch dashboard`` sets it from
``[dashboard] snapshot_seconds``) the readers work on a snapshot copy of the file, at most that
many seconds old, instead of the live file (:func:`dashboard.snapshot.readable`), and every
session of the server shares each query's result per snapshot copy (:mod:`dashboard.results`).

Timestamps come back timezone-aware in UTC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.results import read_frame, reading
from dashboard.threads import thread_order
from polarwatch.reads import CONVERSATIONS, SIDE_CONSISTENCY_SQL

DEFAULT_METRIC = "mean_score"  # the series the forecaster writes for the demo ([forecast] metric)

# How each ``topic_windows`` metric is re-aggregated when hourly windows are merged into coarser
# ones: every share is a mean over something, so it is weighted by what it is a mean over
# (stream/sink.py: mean_score over interactions, extreme_share over conversations, the stance and
# hostility shares over posts); volume adds up.
METRICS: dict[str, tuple[str, str]] = {
    "mean_score": ("Polarization (mean interaction score, 0–10)",
                   "sum(mean_score * n_interactions) / nullif(sum(n_interactions) "
                   "FILTER (WHERE mean_score IS NOT NULL), 0)"),
    "extreme_share": ("Share of extreme conversations",
                      "sum(extreme_share * n_conversations) / nullif(sum(n_conversations) "
                      "FILTER (WHERE extreme_share IS NOT NULL), 0)"),
    "hostility_share": ("Share of hostile posts",
                        "sum(hostility_share * volume) / nullif(sum(volume), 0)"),
    "pro_share": ("Share of posts with the pro stance",
                  "sum(pro_share * volume) / nullif(sum(volume), 0)"),
    "anti_share": ("Share of posts with the anti stance",
                   "sum(anti_share * volume) / nullif(sum(volume), 0)"),
    "volume": ("Posts per window", "sum(volume)"),
}
# Window sizes offered on the topic page besides the stored one (buckets start at midnight
# UTC); only those coarser than, and a multiple of, the stored window are offered.
WINDOWS: dict[str, str] = {"1 hour": "1 hour", "6 hours": "6 hours", "1 day": "1 day",
                           "1 week": "7 days"}
# The count each metric's window value is a mean / share of (stream/sink.py): the support of
# its uncertainty interval.
SUPPORT: dict[str, str] = {"mean_score": "n_interactions", "extreme_share": "n_conversations",
                           "hostility_share": "volume", "pro_share": "volume",
                           "anti_share": "volume", "volume": "volume"}
_UNITS = (("week", 7 * 86400), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
# A flag is "active" while its window is one of the last few observed windows of its series.
ACTIVE_FLAG_WINDOWS = 3
# Forecast rows that are not alarms: ordinary in-sample points and out-of-sample steps.
NOT_FLAGS = ("none", "forecast")


def _df(path: str | Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """One query on what readers open; on a snapshot, run once per snapshot copy for the
    whole process (:func:`dashboard.results.read_frame`)."""
    return read_frame(path, sql, params)


def topics_overview(path: str | Path, sparkline: int = 24, trend_windows: int = 6
                    ) -> pd.DataFrame:
    """The latest window of every topic, with the previous window's score for a delta.

    Columns: topic, window_start, window_end, mean_score, prev_mean_score, trend_base (mean
    score of the ``trend_windows`` windows before the latest, for a trend arrow), extreme_share,
    hostility_share, volume, n_interactions, n_conversations, updated_at, recent_scores (the
    last ``sparkline`` mean scores, oldest first, for a sparkline). One row per topic, ordered
    by topic.
    """
    return _df(path, """
        WITH ranked AS (
            SELECT *,
                   lag(mean_score) OVER (PARTITION BY topic ORDER BY window_start)
                       AS prev_mean_score,
                   avg(mean_score) OVER (PARTITION BY topic ORDER BY window_start
                                         ROWS BETWEEN ? PRECEDING AND 1 PRECEDING) AS trend_base,
                   row_number() OVER (PARTITION BY topic ORDER BY window_start DESC) AS rn
            FROM topic_windows
            WHERE window_start <= now()),  -- a post dated ahead opens no "latest" window
             spark AS (
            SELECT topic, list(mean_score ORDER BY window_start) AS recent_scores
            FROM ranked WHERE rn <= ? AND mean_score IS NOT NULL GROUP BY topic)
        SELECT r.topic, window_start, window_end, mean_score, prev_mean_score, trend_base,
               extreme_share,
               hostility_share, volume, n_interactions, n_conversations, updated_at,
               s.recent_scores
        FROM ranked r LEFT JOIN spark s USING (topic)
        WHERE rn = 1 ORDER BY r.topic""", [trend_windows, sparkline])


def future_windows(path: str | Path) -> pd.DataFrame:
    """The windows dated after now, which :func:`topics_overview` leaves out (their posts are
    dated ahead of this machine's clock). One row: n (windows), n_topics, first_start (NULL
    when there are none), first_topic (the topic of the first one)."""
    return _df(path, """
        SELECT count(*) AS n, count(DISTINCT topic) AS n_topics, min(window_start) AS first_start,
               arg_min(topic, window_start) AS first_topic
        FROM topic_windows WHERE window_start > now()""")


def topic_series(path: str | Path, topic: str, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """One topic's windows joined with the forecaster's output for ``metric``.

    Columns: ts, y (observed mean interaction score), volume, extreme_share, forecast, lower,
    upper, flag (none|spike|dip|forecast; NULL where no forecast row exists). Forecast rows in
    the future (no window yet) appear with y = NULL. The model's band only: on an alarm row,
    which stores the detector's band, forecast/lower/upper are NULL. Ordered by ts.
    """
    return _df(path, """
        WITH w AS (SELECT window_start AS ts, mean_score AS y, volume, extreme_share
                   FROM topic_windows WHERE topic = ?),
             -- an alarm row holds the detector's band (model 'detector: <test>',
             -- forecast/alarms.py DETECTOR_MODEL): not drawn as a kink in the model's band
             f AS (SELECT ts, y, flag,
                          CASE WHEN starts_with(model, 'detector: ') THEN NULL
                               ELSE forecast END AS forecast,
                          CASE WHEN starts_with(model, 'detector: ') THEN NULL
                               ELSE lower END AS lower,
                          CASE WHEN starts_with(model, 'detector: ') THEN NULL
                               ELSE upper END AS upper
                   FROM forecasts WHERE topic = ? AND metric = ?)
        SELECT coalesce(w.ts, f.ts) AS ts, coalesce(w.y, f.y) AS y, w.volume, w.extreme_share,
               f.forecast, f.lower, f.upper, f.flag
        FROM w FULL OUTER JOIN f ON w.ts = f.ts
        ORDER BY ts""", [topic, topic, metric])


def top_conversations(path: str | Path, topic: str | None = None, limit: int = 10) -> pd.DataFrame:
    """The most polarized conversations (highest mean interaction score), optionally per topic.

    Columns: platform, conversation_id (a conversation is named by both, as a post is), topic,
    mean_score, n_interactions, first_at, last_at, root_text (the text of the conversation's
    root post when it is stored, else NULL).
    """
    return conversations_in_range(path, topic, None, None, limit)


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


def window_label(length: pd.Timedelta) -> str:
    """'1 hour', '6 hours', '1 day', '15 minutes' ... for a window length."""
    seconds = int(length.total_seconds())
    for unit, size in _UNITS:
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    raise ValueError(f"window length must be positive, got {length}")


def native_window(path: str | Path, default: str = "1 hour") -> str:
    """The stored window ([aggregate] window, as the data has it): the most common
    ``window_end - window_start`` of ``topic_windows`` (the forecast infers it the same way);
    ``default`` when there is no window yet."""
    df = _df(path, "SELECT window_end - window_start AS length, count(*) AS n FROM topic_windows "
                   "GROUP BY 1 ORDER BY n DESC, length LIMIT 1")
    return default if df.empty else window_label(pd.Timedelta(df["length"].iloc[0]))


def window_choices(native: str) -> list[str]:
    """Window sizes the topic page offers: the stored one first (the default), then the coarser
    multiples of it among WINDOWS."""
    base = pd.Timedelta(native)
    coarser = [label for label, interval in WINDOWS.items()
               if pd.Timedelta(interval) > base
               and pd.Timedelta(interval) % base == pd.Timedelta(0)]
    return [native, *coarser]


def metric_series(path: str | Path, topic: str, metric: str = DEFAULT_METRIC,
                  window: str = "1 hour") -> pd.DataFrame:
    """One topic's ``metric`` re-aggregated into ``window``-sized buckets (a label such as
    '1 hour', '6 hours', '1 day', '15 minutes': see :func:`window_choices`).

    Columns: ts (bucket start), value, volume, n_windows (stored windows merged) and n (the
    interactions / conversations / posts the value is a mean or share of: its support).
    Ordered by ts.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    try:
        interval = window_label(pd.Timedelta(WINDOWS.get(window, window)))
    except ValueError as exc:
        raise ValueError(f"unknown window {window!r}: use a length such as "
                         f"{', '.join(WINDOWS)}") from exc
    # The metric is checked against METRICS and the interval rebuilt from a Timedelta, so
    # interpolating is safe.
    return _df(path, f"""
        SELECT time_bucket(INTERVAL '{interval}', window_start) AS ts,
               {METRICS[metric][1]} AS value, sum(volume) AS volume, count(*) AS n_windows,
               sum({SUPPORT[metric]}) AS n
        FROM topic_windows WHERE topic = ?
        GROUP BY ALL ORDER BY ts""", [topic])


def forecast_series(path: str | Path, topic: str, metric: str = DEFAULT_METRIC) -> pd.DataFrame:
    """The forecaster's rows for one topic and metric: every column of ``forecasts`` (so classes
    other stages add, e.g. anticipatory / reactive, come along). Ordered by ts."""
    return _df(path, "SELECT * FROM forecasts WHERE topic = ? AND metric = ? ORDER BY ts",
               [topic, metric])


def flags(path: str | Path, topic: str | None = None) -> pd.DataFrame:
    """Every alarm row (flag not in NOT_FLAGS: one per episode), newest first, optionally per
    topic.

    Columns: every column of ``forecasts`` plus ``active`` (the alarm's episode has not resolved
    yet, as in forecast.alerts.delivery; rows written before episodes existed: the window is one of the
    last ACTIVE_FLAG_WINDOWS observed windows of its series), ``resolved_at`` (the window where
    the episode resolved, NULL while open) and ``latest_ts`` (the newest observed window of that
    series).
    """
    cols = set(_df(path, "DESCRIBE forecasts")["column_name"])
    if {"episode", "episode_event"} <= cols:
        resolved = ("SELECT topic, metric, episode, min(ts) AS resolved_at FROM forecasts "
                    "WHERE episode_event = 'resolve' GROUP BY ALL")
        active = (f"CASE WHEN f.episode IS NULL THEN o.recency <= {ACTIVE_FLAG_WINDOWS} "
                  f"ELSE r.resolved_at IS NULL END")
        join = "LEFT JOIN resolved r ON r.topic = f.topic AND r.metric = f.metric AND " \
               "r.episode = f.episode"
    else:
        resolved = "SELECT NULL AS resolved_at"
        active, join = f"o.recency <= {ACTIVE_FLAG_WINDOWS}", "CROSS JOIN resolved r"
    return _df(path, f"""
        WITH observed AS (
            SELECT topic, metric, ts,
                   row_number() OVER (PARTITION BY topic, metric ORDER BY ts DESC) AS recency,
                   max(ts) OVER (PARTITION BY topic, metric) AS latest_ts
            FROM forecasts WHERE flag <> 'forecast'),
             resolved AS ({resolved})
        SELECT f.*, {active} AS active, r.resolved_at, o.latest_ts
        FROM forecasts f JOIN observed o USING (topic, metric, ts) {join}
        WHERE f.flag NOT IN ('none', 'forecast') AND (? IS NULL OR f.topic = ?)
        ORDER BY f.ts DESC, f.topic, f.metric""", [topic, topic])


def conversations_in_range(path: str | Path, topic: str | None, start: Any, end: Any,
                           limit: int = 20) -> pd.DataFrame:
    """The most polarized conversations whose first interaction falls in [start, end)
    (None leaves that side open).

    Columns as :func:`top_conversations`; a conversation without a stored opening post gets
    a note instead of its text (NO_OPENING_POST: its replies form a cycle, its opening post is
    not stored, or none of its posts is).
    """
    return _df(path, f"""
        WITH top AS (
            SELECT * FROM {CONVERSATIONS}
            WHERE (? IS NULL OR topic = ?) AND (? IS NULL OR first_at >= ?)
              AND (? IS NULL OR first_at < ?)
            ORDER BY mean_score DESC, n_interactions DESC, conversation_id, platform LIMIT ?),
             shape AS (  -- posts whose parent is none or not stored: a cycle has none
            SELECT p.platform, p.conversation_id,
                   any_value(p.text) FILTER (WHERE p.parent_id IS NULL) AS root_text,
                   count(*) FILTER (WHERE p.parent_id IS NULL OR q.id IS NULL) AS n_open
            FROM posts p SEMI JOIN top t
                 ON t.platform = p.platform AND t.conversation_id = p.conversation_id
            LEFT JOIN posts q ON q.platform = p.platform
                 AND q.conversation_id = p.conversation_id AND q.id = p.parent_id
            GROUP BY p.platform, p.conversation_id)
        SELECT t.platform, t.conversation_id, t.topic, t.mean_score, t.n_interactions,
               t.first_at, t.last_at,
               coalesce(s.root_text, CASE WHEN s.conversation_id IS NULL THEN ?
                                          WHEN s.n_open = 0 THEN ? ELSE ? END) AS root_text
        FROM top t LEFT JOIN shape s USING (platform, conversation_id)
        ORDER BY t.mean_score DESC, t.n_interactions DESC, t.conversation_id, t.platform""",
               [topic, topic, start, start, end, end, limit, NO_OPENING_POST["none stored"],
                NO_OPENING_POST["cycle"], NO_OPENING_POST["not stored"]])


# What the "opening post" column says when a conversation has none stored.
NO_OPENING_POST = {"cycle": "— none: its replies form a cycle (each answers another of them)",
                   "not stored": "— not stored (the replies' parent is missing)",
                   "none stored": "— no post of it is stored"}


def latest_conversation_start(path: str | Path) -> Any:
    """first_at of the newest scored conversation that is not dated in the future (None when
    there is none): one post dated years ahead must not move the default range off today."""
    with reading(path) as con:
        rows = con.execute(f"SELECT max(first_at) FROM {CONVERSATIONS} "
                           "WHERE first_at <= now()").fetchall()
    return rows[0][0] if rows else None


def conversation_scores(path: str | Path, topic: str, start: Any, end: Any) -> pd.DataFrame:
    """platform, conversation_id, first_at, mean_score of the topic's conversations starting in
    range."""
    return _df(path, f"""
        SELECT platform, conversation_id, first_at, mean_score FROM {CONVERSATIONS}
        WHERE topic = ? AND first_at >= ? AND first_at < ? ORDER BY first_at""",
               [topic, start, end])


# A thread page shows at most this many posts, down to this depth: one conversation cannot make
# the page (or the query's sort paths, memory ∝ posts × depth) unbounded.
THREAD_MAX_POSTS = 2_000
THREAD_MAX_DEPTH = 500


def conversation_platforms(path: str | Path, conversation_id: str) -> list[str]:
    """Platforms with a post or interaction of this conversation id (an older link names it)."""
    df = _df(path, "SELECT platform FROM posts WHERE conversation_id = ? UNION "
                   "SELECT platform FROM interactions WHERE conversation_id = ? ORDER BY 1",
             [conversation_id, conversation_id])
    return [str(p) for p in df["platform"]]


def thread_size(path: str | Path, platform: str, conversation_id: str) -> int:
    """Stored posts of a conversation (named by its platform and its id there)."""
    df = _df(path, "SELECT count(*) AS n FROM posts WHERE platform = ? AND conversation_id = ?",
             [platform, conversation_id])
    return int(df["n"].iloc[0])


def thread(path: str | Path, platform: str, conversation_id: str,
           max_posts: int = THREAD_MAX_POSTS, max_depth: int = THREAD_MAX_DEPTH) -> pd.DataFrame:
    """The first ``max_posts`` stored posts of a conversation (named by its platform and its id
    there, as a post is) in thread order (depth-first, siblings by time,
    :func:`dashboard.threads.thread_order`), replies deeper than ``max_depth`` left out; a
    cycle of replies, which reaches no opening post, is shown from its earliest post.

    Columns: id, parent_id, depth (0 = root, a reply whose parent is not stored, or the first
    post shown of a reply cycle), in_cycle, author_id, created_at, text, stance, affect,
    agreement, emotion, intensity, stance_conf, affect_conf, agreement_conf, backend,
    explanation, score (interaction score of the reply → parent link, NULL for roots), rule,
    topic.
    """
    shape = _df(path, "SELECT id, parent_id, created_at FROM posts WHERE platform = ? AND "
                      "conversation_id = ?", [platform, conversation_id])
    order = thread_order(shape, max_posts, max_depth)
    rows = _df(path, """
        SELECT p.id, p.parent_id, p.author_id, p.created_at, p.text, p.stance, p.affect,
               p.agreement, p.emotion, p.intensity, p.stance_conf, p.affect_conf,
               p.agreement_conf, p.backend, p.explanation, i.score, i.rule, p.topic
        FROM posts p LEFT JOIN interactions i ON i.platform = p.platform AND i.post_id = p.id
        WHERE p.platform = ? AND p.conversation_id = ? AND list_contains(?::VARCHAR[], p.id)""",
               [platform, conversation_id, [str(i) for i in order["id"]]])
    out = order.merge(rows, on="id", how="inner", sort=False)
    columns = ["id", "parent_id", "depth", "in_cycle", *rows.columns.drop(["id", "parent_id"])]
    return out[columns].reset_index(drop=True)


DELIVERY_LIMIT = 200  # delivery attempts the alerts page shows at most (newest first)


def alert_deliveries(path: str | Path, limit: int = DELIVERY_LIMIT) -> pd.DataFrame:
    """The webhook delivery log (``alert_deliveries``, one row per POST attempt, written by
    forecast/alerts/webhooks.py), newest attempt first: every column of the table."""
    return _df(path, "SELECT * FROM alert_deliveries ORDER BY attempted_at DESC, webhook_id, "
                     "attempt DESC LIMIT ?", [limit])


def scored_share(path: str | Path) -> pd.DataFrame:
    """Per topic, in its latest window: replies whose parent is stored (``replies``) and how many
    of them have an interaction score (``scored``); the others have an "unclear" stance on one
    side, which the paper's rule table does not score. Columns: topic, replies, scored."""
    return _df(path, """
        WITH latest AS (SELECT topic, max(window_start) AS ws, max(window_end) AS we
                        FROM topic_windows WHERE window_start <= now() GROUP BY topic)
        SELECT l.topic, count(*) AS replies, count(i.post_id) AS scored
        FROM latest l
        JOIN posts r ON r.topic = l.topic AND r.created_at >= l.ws AND r.created_at < l.we
        JOIN posts parent ON parent.platform = r.platform AND parent.id = r.parent_id
        LEFT JOIN interactions i ON i.platform = r.platform AND i.post_id = r.id
        GROUP BY l.topic ORDER BY l.topic""")


def side_consistency(path: str | Path) -> pd.DataFrame:
    """Per topic, do the stored replies' sides follow their agreement labels? Columns topic,
    n_agree, agree_same, n_disagree, disagree_opposite (``SIDE_CONSISTENCY_SQL``; the verdict:
    :func:`scoring.side_check.side_check`)."""
    return _df(path, SIDE_CONSISTENCY_SQL)
