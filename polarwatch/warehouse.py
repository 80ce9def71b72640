"""The DuckDB warehouse: schema (generated from the record contract) and short-lived connections.

DuckDB lets one process hold the file read-write and then locks everyone else out, even readers
(see shared FACTS). So every writer and reader here opens a connection for one unit of work and
closes it, and both sides retry on the lock error: :func:`connect` does that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from polarwatch.records import Interaction, Labels, Post, duckdb_columns

# Lock retry: 25 ms × up to 200 tries (5 s). Measured in FACTS: 25 ms × 40 on both sides gave
# 0 failures under a writer committing every 0.1 s; we allow more headroom for slow batches.
LOCK_RETRY_SECONDS = 0.025
LOCK_RETRY_ATTEMPTS = 200

KAFKA_COLUMNS = [("kafka_partition", "INTEGER"), ("kafka_offset", "BIGINT"),
                 ("ingested_at", "TIMESTAMPTZ")]


def _ddl(table: str, columns: list[tuple[str, str]], primary_key: str) -> str:
    cols = ",\n  ".join(f'"{name}" {typ}' for name, typ in columns)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n  PRIMARY KEY ({primary_key})\n)"


def post_columns() -> list[tuple[str, str]]:
    """`posts` = Post fields + Labels fields (minus the post_id link) + Kafka provenance."""
    labels = [(n, t) for n, t in duckdb_columns(Labels) if n != "post_id"]
    return duckdb_columns(Post) + labels + KAFKA_COLUMNS


DEAD_LETTER_COLUMNS = [
    ("source_topic", "VARCHAR NOT NULL"), ("kafka_partition", "INTEGER NOT NULL"),
    ("kafka_offset", "BIGINT NOT NULL"), ("reason", "VARCHAR NOT NULL"), ("raw", "VARCHAR"),
    ("seen_at", "TIMESTAMPTZ NOT NULL"),  # when the warehouse stored it
    # added after the first release (ALTER TABLE in init_schema keeps older files working):
    ("source", "VARCHAR"),  # "ingest" (producer) | "stream" (the stream's parser)
    ("raw_size", "BIGINT"),  # bytes of the original record (raw may be cut)
    ("rejected_at", "TIMESTAMPTZ"),  # when it was rejected (the dead letter's broker time)
]
# Columns added to existing tables since their first release: (table, column, type).
ADDED_COLUMNS = [("dead_letters", name, typ) for name, typ in DEAD_LETTER_COLUMNS[6:]]

TABLES: dict[str, str] = {
    "posts": _ddl("posts", post_columns(), "id"),
    "interactions": _ddl("interactions", duckdb_columns(Interaction), "post_id"),
    "topic_windows": _ddl("topic_windows", [
        ("topic", "VARCHAR NOT NULL"), ("window_start", "TIMESTAMPTZ NOT NULL"),
        ("window_end", "TIMESTAMPTZ NOT NULL"), ("volume", "INTEGER NOT NULL"),
        ("n_interactions", "INTEGER NOT NULL"), ("mean_score", "DOUBLE"),
        ("n_conversations", "INTEGER NOT NULL"), ("extreme_share", "DOUBLE"),
        ("hostility_share", "DOUBLE"), ("pro_share", "DOUBLE"), ("anti_share", "DOUBLE"),
        ("cross_stance_rate", "DOUBLE"),  # share of scored replies opposing their parent
        ("esteban_ray", "DOUBLE"),  # scoring.indices.esteban_ray of the stance shares
        ("bimodality", "DOUBLE"),  # Sarle's coefficient of the window's conversation scores
        ("updated_at", "TIMESTAMPTZ NOT NULL"),
    ], "topic, window_start"),
    "stream_batches": _ddl("stream_batches", [
        ("query", "VARCHAR NOT NULL"), ("batch_id", "BIGINT NOT NULL"),
        ("n_posts", "INTEGER NOT NULL"), ("n_dead", "INTEGER NOT NULL"),
        ("n_interactions", "INTEGER NOT NULL"), ("committed_at", "TIMESTAMPTZ NOT NULL"),
        ("n_late", "INTEGER"),  # posts older than the watermark: stored, windows not reopened
        # end-to-end latency at commit: now − created_at (the post) and now − broker timestamp
        ("latency_created_p50_s", "DOUBLE"), ("latency_created_p95_s", "DOUBLE"),
        ("latency_broker_p50_s", "DOUBLE"), ("latency_broker_p95_s", "DOUBLE"),
    ], "query, batch_id"),
    "stream_metrics": _ddl("stream_metrics", [
        ("query", "VARCHAR NOT NULL"), ("batch_id", "BIGINT NOT NULL"),
        ("input_rows", "BIGINT NOT NULL"), ("input_rows_per_s", "DOUBLE"),
        ("processed_rows_per_s", "DOUBLE"), ("batch_ms", "BIGINT"), ("lag_total", "BIGINT"),
        ("lag_by_partition", "VARCHAR"), ("recorded_at", "TIMESTAMPTZ NOT NULL"),
    ], "query, batch_id"),
    # Every rejected record, from ingest (drained from the dead-letter topic: source_topic is
    # that topic) and from the stream (source_topic is the posts topic). `raw` is cut to
    # records.MAX_DEAD_LETTER_BYTES; raw_size is the original size in bytes.
    "dead_letters": _ddl("dead_letters", DEAD_LETTER_COLUMNS,
                         "source_topic, kafka_partition, kafka_offset"),
    "forecasts": _ddl("forecasts", [
        ("topic", "VARCHAR NOT NULL"), ("metric", "VARCHAR NOT NULL"),
        ("ts", "TIMESTAMPTZ NOT NULL"), ("y", "DOUBLE"), ("forecast", "DOUBLE"),
        ("lower", "DOUBLE"), ("upper", "DOUBLE"), ("flag", "VARCHAR NOT NULL"),
        ("model", "VARCHAR NOT NULL"), ("created_at", "TIMESTAMPTZ NOT NULL"),
        # the causal detector's 0..1 score and why a flag has its class (forecast/run.py)
        ("anomaly_score", "DOUBLE"), ("explanation", "VARCHAR"),
    ], "topic, metric, ts"),
}

VIEWS: dict[str, str] = {
    # A conversation's score is the mean of its interactions (the paper); extreme when > 7.
    "conversations": """
        CREATE OR REPLACE VIEW conversations AS
        SELECT conversation_id, any_value(topic) AS topic, count(*) AS n_interactions,
               avg(score) AS mean_score, min(created_at) AS first_at, max(created_at) AS last_at
        FROM interactions GROUP BY conversation_id""",
}


def orphans_sql(horizon_interval: str) -> str:
    """Replies whose parent has not arrived within the horizon (relative to the newest post)."""
    return f"""
        SELECT r.* FROM posts r
        WHERE r.parent_id IS NOT NULL
          AND r.parent_id NOT IN (SELECT id FROM posts)
          AND r.created_at < (SELECT max(created_at) FROM posts) - {horizon_interval}"""


def is_lock_error(exc: BaseException) -> bool:
    """Transient contention: another process holds the file lock, or (same process) another
    thread has the file open in the other mode (read-only vs read-write)."""
    text = str(exc)
    return ("Could not set lock" in text or "Conflicting lock" in text
            or "different configuration than existing connections" in text)


@contextmanager
def connect(path: str | Path, read_only: bool = False) -> Iterator[Any]:
    """A short-lived DuckDB connection that retries while another process holds the lock.

    Read-only connections to a file that does not exist raise FileNotFoundError with a hint.
    """
    import duckdb

    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"DuckDB file {path} does not exist yet: start the stream "
                                f"(`polarwatch stream`) or run `make demo` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(LOCK_RETRY_ATTEMPTS):
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not is_lock_error(exc) or attempt == LOCK_RETRY_ATTEMPTS - 1:
                raise
            time.sleep(LOCK_RETRY_SECONDS)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(path: str | Path) -> Iterator[Any]:
    """One unit of write work: open the file read-write (retrying on the lock like
    :func:`connect`), BEGIN, yield the connection, COMMIT when the block ends normally (a
    ``return`` inside the block commits too), ROLLBACK and re-raise on any exception, close.

    ``with warehouse.transaction(path) as con: con.execute(...)``
    """
    with connect(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def init_schema(path: str | Path) -> None:
    """Create every table and view if missing (idempotent)."""
    with connect(path) as con:
        for ddl in TABLES.values():
            con.execute(ddl)
        for table, column, typ in ADDED_COLUMNS:  # a file from an older release
            con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{column}" {typ}')
        con.execute("UPDATE dead_letters SET source = 'stream' WHERE source IS NULL")
        for view in VIEWS.values():
            con.execute(view)


def table_columns(con: Any, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_name = ? ORDER BY ordinal_position", [table]).fetchall()
    return [(name, dtype + ("" if nullable == "YES" else " NOT NULL"))
            for name, dtype, nullable in rows]


def scalar(con: Any, sql: str, params: list[Any] | None = None) -> Any:
    """First column of the first row (or None). Fetches everything: DuckDB 2.0 refuses further
    work on a connection while a result is only partly fetched."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0][0] if rows else None


def prune(con: Any, keep_days: float, now: datetime) -> dict[str, int]:
    """Retention (``[warehouse] keep_days``; 0 keeps everything): delete posts and interactions
    whose created_at is more than `keep_days` before the newest stored post (event time, so a
    replayed archive is not wiped on arrival), and dead letters stored more than `keep_days`
    before `now` (but the newest of each topic partition). Returns the rows deleted per table. Runs on the caller's connection (inside
    its transaction)."""
    if keep_days <= 0:
        return {}
    span = timedelta(days=keep_days)
    newest = scalar(con, "SELECT max(created_at) FROM posts")
    deleted: dict[str, int] = {}
    if newest is not None:
        cutoff = newest - span
        for table in ("interactions", "posts"):
            deleted[table] = int(scalar(con, f"SELECT count(*) FROM {table} WHERE created_at < ?",
                                        [cutoff]))
            if deleted[table]:
                con.execute(f"DELETE FROM {table} WHERE created_at < ?", [cutoff])
    # the newest dead letter of each topic partition stays: the sink's dead-letter drain
    # resumes after it (stream/dead_letters.py)
    old_dead = """FROM dead_letters d WHERE seen_at < ? AND kafka_offset < (
                      SELECT max(kafka_offset) FROM dead_letters n
                      WHERE n.source_topic = d.source_topic
                        AND n.kafka_partition = d.kafka_partition)"""
    deleted["dead_letters"] = int(scalar(con, f"SELECT count(*) {old_dead}", [now - span]))
    if deleted["dead_letters"]:
        con.execute(f"DELETE {old_dead}", [now - span])
    return deleted
