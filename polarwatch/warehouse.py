"""The DuckDB warehouse: every table's DDL (generated from the contracts in
:mod:`polarwatch.records` and :mod:`polarwatch.tables`), versioned migrations
(:func:`init_schema`) and short-lived connections (:func:`connect`, :func:`transaction`).

DuckDB lets one process hold the file read-write and then refuses every other process, readers
included (a "Could not set lock" error). So every writer and reader here opens a connection for
one unit of work and closes it, and both sides retry on the lock error: :func:`connect` does
that.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from polarwatch.errors import SchemaError, WarehouseMissing, WarehouseUnreadable
from polarwatch.records import Interaction, Labels, Post
from polarwatch.schemas import duckdb_columns
from polarwatch.tables import (
    AlertDelivery,
    AlertState,
    AnalystLabel,
    DeadLetter,
    ForecastRow,
    KafkaProvenance,
    LabelSuggestion,
    Relabelling,
    SchemaVersion,
    StreamBatch,
    StreamMetric,
    TopicWindow,
)

LOG = logging.getLogger(__name__)

# Lock retry: 25 ms × up to 200 tries (5 s). When this was chosen, 25 ms × 40 tries on both
# sides gave 0 lock failures against a writer committing every 0.1 s; 200 leave headroom for
# slow batches.
LOCK_RETRY_SECONDS = 0.025
LOCK_RETRY_ATTEMPTS = 200
LISTED_TABLES = 5  # tables of a file that is not a warehouse named in the error


def _ddl(table: str, columns: list[tuple[str, str]], primary_key: Sequence[str]) -> str:
    cols = ",\n  ".join(f'"{name}" {typ}' for name, typ in columns)
    key = ", ".join(f'"{name}"' for name in primary_key)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n  PRIMARY KEY ({key})\n)"


KAFKA_COLUMNS = duckdb_columns(KafkaProvenance)
RELABEL_COLUMNS = duckdb_columns(Relabelling)


def post_columns() -> list[tuple[str, str]]:
    """What the stream stores of a post: Post fields + Labels fields (minus the post_id link) +
    Kafka provenance. The `posts` table adds :data:`RELABEL_COLUMNS` (``polarwatch relabel``)."""
    labels = [(n, t) for n, t in duckdb_columns(Labels) if n != "post_id"]
    return duckdb_columns(Post) + labels + KAFKA_COLUMNS


# The contract of each table that is one dataclass (polarwatch/tables.py); its PRIMARY_KEY.
CONTRACTS: dict[str, type] = {
    "schema_version": SchemaVersion, "topic_windows": TopicWindow,
    "stream_batches": StreamBatch, "stream_metrics": StreamMetric, "dead_letters": DeadLetter,
    "forecasts": ForecastRow, "alert_state": AlertState, "alert_deliveries": AlertDelivery,
    "labels": AnalystLabel, "label_suggestions": LabelSuggestion,
}
# Every table: (columns, primary key). The only place DDL is generated.
SCHEMA: dict[str, tuple[list[tuple[str, str]], tuple[str, ...]]] = {
    # a post is named by its platform and its id there (a Reddit comment and a Bluesky post may
    # share an id); a reply pairs only with a parent of its own platform
    "posts": (post_columns() + RELABEL_COLUMNS, ("platform", "id")),
    "interactions": (duckdb_columns(Interaction), ("platform", "post_id")),
    **{name: (duckdb_columns(c), c.PRIMARY_KEY) for name, c in CONTRACTS.items()},  # type: ignore[attr-defined]
}
TABLES: dict[str, str] = {name: _ddl(name, cols, key) for name, (cols, key) in SCHEMA.items()}

VIEWS: dict[str, str] = {
    # A conversation's score is the mean of its interactions (the paper); extreme when > 7.
    "conversations": """
        CREATE OR REPLACE VIEW conversations AS
        SELECT conversation_id, any_value(topic) AS topic, count(*) AS n_interactions,
               avg(score) AS mean_score, min(created_at) AS first_at, max(created_at) AS last_at
        FROM interactions GROUP BY conversation_id""",
}


# The event-time clock that the watermark, orphans and retention run on, which one post with a
# forged date cannot move: among the posts that arrived (ingested_at) within CLOCK_ARRIVALS of
# the latest arrival, the CLOCK_RANK-th newest created_at, or the oldest of the newest
# CLOCK_SHARE when more arrived (fewer than CLOCK_RANK posts: the oldest of them).
CLOCK_RANK, CLOCK_SHARE, CLOCK_ARRIVALS = 3, 0.01, "7 days"


def event_clock_sql(by_topic: bool = False) -> str:
    """``SELECT [topic,] newest``: the robust newest event time, per topic or over all."""
    part = "PARTITION BY topic" if by_topic else ""
    return f"""
        SELECT {"topic, " if by_topic else ""}created_at AS newest FROM (
            SELECT topic, created_at,
                   row_number() OVER ({part} ORDER BY created_at DESC) AS k,
                   count(*) OVER ({part}) AS n
            FROM posts
            WHERE ingested_at >= (SELECT max(ingested_at) FROM posts)
                                 - INTERVAL '{CLOCK_ARRIVALS}')
        WHERE k = greatest(least(n, {CLOCK_RANK}), ceil(n * {CLOCK_SHARE}))"""


def orphans_sql(horizon_interval: str) -> str:
    """Replies whose parent has not arrived within the horizon (relative to the event clock)."""
    return f"""
        SELECT r.* FROM posts r
        WHERE r.parent_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM posts p
                          WHERE p.platform = r.platform AND p.id = r.parent_id)
          AND r.created_at < ({event_clock_sql()}) - {horizon_interval}"""


# DuckDB's words for transient contention: another process holds the file lock, or (same
# process) another thread has the file open in the other mode (read-only vs read-write)
LOCK_ERROR_MARKERS = ("Could not set lock", "Conflicting lock",
                      "different configuration than existing connections")


def is_lock_error(exc: BaseException) -> bool:
    """Transient contention on the DuckDB file (LOCK_ERROR_MARKERS)."""
    text = str(exc)
    return any(marker in text for marker in LOCK_ERROR_MARKERS)


@contextmanager
def connect(path: str | Path, read_only: bool = False) -> Iterator[Any]:
    """A short-lived DuckDB connection that retries while another process holds the lock.

    Read-only connections to a file that does not exist raise FileNotFoundError with a hint.
    """
    import duckdb

    path = Path(path)
    if read_only and not path.exists():
        raise WarehouseMissing(f"DuckDB file {path} does not exist yet: start the stream "
                               f"(`polarwatch stream`) or run `make demo` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    opener = Retrying(  # module globals read per call: tests shorten them
        stop=stop_after_attempt(LOCK_RETRY_ATTEMPTS), wait=wait_fixed(LOCK_RETRY_SECONDS),
        retry=retry_if_exception(lambda exc: isinstance(
            exc, duckdb.IOException | duckdb.ConnectionException) and is_lock_error(exc)),
        reraise=True)
    try:
        con = opener(duckdb.connect, str(path), read_only=read_only)
    except duckdb.Error as exc:
        if is_lock_error(exc):
            raise  # still held after the retries: callers that wait on the writer handle it
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise WarehouseUnreadable(
            f"{path} cannot be opened as the DuckDB warehouse ({reason}); set [warehouse] path "
            f"(env POLARWATCH_WAREHOUSE_PATH) to the file the stream writes, or move this file "
            f"away so that a new warehouse is created") from exc
    try:
        yield con
    except duckdb.CatalogException as exc:
        foreign = _not_a_warehouse(con, path, exc)
        if foreign is None:
            raise
        raise foreign from exc
    finally:
        con.close()


def _not_a_warehouse(con: Any, path: Path, exc: Exception) -> WarehouseUnreadable | None:
    """The error to raise for ``exc`` (a missing table) when the file is a DuckDB database
    without any of polarwatch's tables (another program's file, or an empty one); None when
    the table is not polarwatch's or the file holds some of them."""
    missing = re.search(r"Table with name (\w+) does not exist", str(exc))
    if missing is None or missing.group(1) not in {*TABLES, *VIEWS}:
        return None
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                            "ORDER BY table_name").fetchall()]
    except Exception:  # the connection is unusable (e.g. an aborted transaction): say nothing
        return None
    if set(tables) & set(TABLES):
        return None
    held = (f"its tables are {', '.join(tables[:LISTED_TABLES])}"
            + (f" and {len(tables) - LISTED_TABLES:,} more" if len(tables) > LISTED_TABLES
               else "") if tables else "it holds no tables")
    return WarehouseUnreadable(
        f"{path} is a DuckDB database but not a polarwatch warehouse (no {missing.group(1)} "
        f"table; {held}): run `polarwatch stream` first to fill it, or set [warehouse] path "
        f"(env POLARWATCH_WAREHOUSE_PATH) to the file the stream writes")


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


# --------------------------------------------------------------------------------------------
# Versioned migrations. A file's version is max(version) in `schema_version` (0: a file from
# before versioning, or a new file). init_schema applies every newer migration, in order, in one
# transaction. Migration 1 creates what is missing from today's contracts, so the later ones
# must be idempotent (ADD COLUMN IF NOT EXISTS, updates that only touch old rows): on a new
# file they find their work done.


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Any], None]  # runs on the connection, inside init_schema's transaction


def _create_tables_and_views(con: Any) -> None:
    for ddl in TABLES.values():
        con.execute(ddl)
    for view in VIEWS.values():
        con.execute(view)


def _add_columns(table: str, *names: str) -> Callable[[Any], None]:
    """A migration step adding `names` to `table` with their types from the contract."""
    types = dict(SCHEMA[table][0])

    def apply(con: Any) -> None:
        for name in names:
            con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{name}" {types[name]}')
    return apply


def _create_table(table: str) -> Callable[[Any], None]:
    """A migration step creating `table` from its contract (a no-op when it exists)."""
    def apply(con: Any) -> None:
        con.execute(TABLES[table])
    return apply


def _primary_key(con: Any, table: str) -> list[str]:
    rows = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                       "table_name = ? AND constraint_type = 'PRIMARY KEY'", [table]).fetchall()
    return list(rows[0][0]) if rows else []


def _rebuild(con: Any, table: str, select: str) -> None:
    """Replace `table` by one with today's DDL (DuckDB cannot change a primary key in place),
    filled from `select` (by column name)."""
    con.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    con.execute(TABLES[table])
    con.execute(f"INSERT INTO {table} BY NAME {select.format(old=f'{table}_old')}")
    con.execute(f"DROP TABLE {table}_old")


def _key_by_platform(con: Any) -> None:
    if _primary_key(con, "interactions") == ["post_id"]:  # before: ids were global
        _rebuild(con, "interactions", "SELECT i.*, coalesce(p.platform, '') AS platform "
                                      "FROM {old} i LEFT JOIN posts p ON p.id = i.post_id")
    if _primary_key(con, "posts") == ["id"]:
        _rebuild(con, "posts", "SELECT * FROM {old}")
    for view in VIEWS.values():  # views name the tables they read: made again over the new ones
        con.execute(view)


def _dead_letter_provenance(con: Any) -> None:
    _add_columns("dead_letters", "source", "raw_size", "rejected_at")(con)
    # before ingest dead-lettered anything, every stored dead letter came from the stream
    con.execute("UPDATE dead_letters SET source = 'stream' WHERE source IS NULL")


def _roots_without_parent(con: Any) -> None:  # (stored as given before the root rule)
    con.execute("UPDATE posts SET parent_id = NULL WHERE parent_id = id OR parent_id = ''")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "every missing table and view, created from the contracts (a file from before "
                 "versioning keeps its tables and rows)", _create_tables_and_views),
    Migration(2, "dead_letters: source, raw_size, rejected_at (source 'stream' on older rows)",
              _dead_letter_provenance),
    Migration(3, "forecasts: anomaly_score, explanation, episode, episode_event (forecast/run.py "
                 "used to add them itself)",
              _add_columns("forecasts", "anomaly_score", "explanation", "episode",
                           "episode_event")),
    Migration(4, "posts keyed by (platform, id), interactions by (platform, post_id) with a "
                 "platform column (ids are unique per platform only)", _key_by_platform),
    Migration(5, "labels: the analysts' labels from the dashboard's Label page",
              _create_table("labels")),
    Migration(6, "posts: labelled_by, relabelled_at (which backend and head `polarwatch relabel` "
                 "labelled a stored post with, and when)",
              _add_columns("posts", "labelled_by", "relabelled_at")),
    Migration(7, "label_suggestions: the LLM's suggestions on the Label page (never an "
                 "analyst's label)", _create_table("label_suggestions")),
    Migration(8, "dead_letters: dead_letter_key (ingest's identity of a dead letter: one sent "
                 "again is stored once; NULL on older rows)",
              _add_columns("dead_letters", "dead_letter_key")),
    Migration(9, "posts: a parent_id that is empty or the post's own id is NULL (a root, as "
                 "polarwatch.validation.parent_of stores it now; it counted as an orphan reply)",
              _roots_without_parent),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(con: Any) -> int:
    """The file's schema version (0 when it has no `schema_version` table). Read-only."""
    exists = scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = "
                         "'schema_version' AND schema_name = current_schema()")
    return int(scalar(con, "SELECT coalesce(max(version), 0) FROM schema_version") or 0) \
        if exists else 0


def missing_columns(con: Any, table: str) -> list[str]:
    """Columns of `table`'s contract that the file lacks (all of them when the table is
    missing): what a reader of an un-migrated file needs to know. Read-only."""
    have = {name for name, _ in table_columns(con, table)}
    return [name for name, _ in SCHEMA[table][0] if name not in have]


def init_schema(path: str | Path) -> list[Migration]:
    """Bring the file to :data:`LATEST_VERSION` in place, creating it if missing: every
    pending migration, in order, in one transaction (all or nothing). Returns the migrations
    applied (none when the file is up to date: the run changes nothing)."""
    with transaction(path) as con:
        current = schema_version(con)
        if current > LATEST_VERSION:
            raise SchemaError(f"{path} has warehouse schema version {current}, newer than this "
                              f"polarwatch knows ({LATEST_VERSION}): upgrade polarwatch, or "
                              f"point [warehouse] path at another file")
        pending = [m for m in MIGRATIONS if m.version > current]
        existing = bool(pending) and bool(scalar(con, "SELECT count(*) FROM duckdb_tables()"))
        if pending:
            con.execute(TABLES["schema_version"])
        for migration in pending:
            migration.apply(con)
            con.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                        [migration.version, migration.description, datetime.now(UTC)])
    if pending and existing:  # say when a file in use was upgraded (not a new one)
        LOG.info(f"warehouse {path}: schema version {current} -> {LATEST_VERSION} ("
                 + "; ".join(f"{m.version}: {m.description}" for m in pending) + ")")
    return pending


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
    whose created_at is more than `keep_days` before the event clock (:func:`event_clock_sql`:
    event time, so a replayed archive is not wiped on arrival, and one post dated next year
    deletes nothing), and dead letters stored more than `keep_days`
    before `now` (but the newest of each topic partition). Returns the rows deleted per table. Runs on the caller's connection (inside
    its transaction)."""
    if keep_days <= 0:
        return {}
    span = timedelta(days=keep_days)
    newest = scalar(con, event_clock_sql())
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
