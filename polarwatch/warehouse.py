"""The DuckDB warehouse: a file brought to today's schema (:func:`init_schema`, which creates the
tables of :mod:`polarwatch.ddl` and applies :mod:`polarwatch.migrations`), short-lived
connections (:func:`connect`, :func:`transaction`), the event clock and retention.

DuckDB lets one process hold the file read-write and then refuses every other process, readers
included (a "Could not set lock" error). So every writer and reader here opens a connection for
one unit of work and closes it, and both sides retry on the lock error: :func:`connect` does
that.
"""

from __future__ import annotations

import codecs
import errno
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from polarwatch.ddl import SCHEMA, TABLES, VIEWS
from polarwatch.errors import SchemaError, WarehouseLocked, WarehouseMissing, WarehouseUnreadable
from polarwatch.migrations import LATEST_VERSION, MIGRATIONS, Migration

LOG = logging.getLogger(__name__)

# Lock retry: 25 ms × up to 200 tries (5 s). When this was chosen, 25 ms × 40 tries on both
# sides gave 0 lock failures against a writer committing every 0.1 s; 200 leave headroom for
# slow batches.
LOCK_RETRY_SECONDS = 0.025
LOCK_RETRY_ATTEMPTS = 200
LISTED_TABLES = 5  # tables of a file that is not a warehouse named in the error


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
def lock_explained(path: str | Path, doing: str) -> Iterator[None]:
    """DuckDB's lock error, still there after :func:`connect`'s retries, as one
    :class:`WarehouseLocked` line: who holds ``path`` (the program and PID DuckDB names) and
    what to do. ``doing`` names the command (``polarwatch forecast``)."""
    import duckdb

    try:
        yield
    except duckdb.Error as exc:
        if not is_lock_error(exc):
            raise
        held = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
        who = f"another process (PID {held[2]}, {held[1]})" if held else "another process"
        raise WarehouseLocked(
            f"{path} is locked: {who} holds it open and kept it through "
            f"{LOCK_RETRY_SECONDS * LOCK_RETRY_ATTEMPTS:g} s of retries, so {doing} did not run. "
            f"The stream and the demo hold it for a moment per batch, so {doing} runs beside "
            f"them; a program that keeps the file open (a duckdb shell, a notebook, a stuck "
            f"process{f': ps -p {held[2]}' if held else ''}) must close it, then run {doing} "
            f"again") from exc


# DuckDB's words for a file it opened but cannot read on: cut short (a partial copy: the
# header and catalog read, a data block past the end) or a block whose checksum fails. It
# says so only at the first read of such a block, after connect succeeded.
DAMAGE_MARKERS = ("Could not read enough bytes", "Corrupt database file")


# the operating system's refusals DuckDB passes on in its own exceptions (`Could not write file
# "X": No space left on device`, `Cannot open file "X": Permission denied`): re-raised as the
# OSError they are, which the CLI says in one line with the file and the fix (polarwatch.cli)
REFUSALS = tuple((os.strerror(code), code) for code in (
    errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS))


def os_refusal(exc: BaseException) -> OSError | None:
    """DuckDB's error `exc` as the OSError the operating system gave it (a full disk, a file or
    directory that may not be written), naming the file; None for any other error."""
    text = str(exc)
    for strerror, code in REFUSALS:
        if strerror in text:
            named = re.search(r'file "([^"]+)"', text)
            return OSError(code, strerror, named[1] if named else None)
    return None


def _damaged(path: Path, exc: BaseException | str) -> WarehouseUnreadable:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return WarehouseUnreadable(
        f"{path} cannot be read as the DuckDB warehouse: it is cut short or damaged ({reason}); "
        f"restore it from a complete copy, or move it away so that a new warehouse is created")


@contextmanager
def connect(path: str | Path, read_only: bool = False) -> Iterator[Any]:
    """A short-lived DuckDB connection that retries while another process holds the lock.

    Read-only connections to a file that does not exist raise FileNotFoundError with a hint.
    """
    import duckdb

    path = Path(path)
    require_file_path(path)
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
        if any(marker in str(exc) for marker in DAMAGE_MARKERS):
            raise _damaged(path, exc) from exc
        if (refused := os_refusal(exc)) is not None:  # a read-only file: not another program's
            raise refused from exc
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
    except duckdb.Error as exc:
        if (refused := os_refusal(exc)) is not None:  # a full disk at a write or its COMMIT
            raise refused from exc
        if not any(marker in str(exc) for marker in DAMAGE_MARKERS):
            raise
        raise _damaged(path, exc) from exc
    finally:
        con.close()


def require_file_path(path: Path) -> None:
    """A path DuckDB can open as the warehouse file: a directory (``[warehouse] path = ""`` is
    the config's own directory) is refused in one line naming a file to use instead (DuckDB's
    "Is a directory" came with advice to move "this file" away: the project directory), and so
    is a name DuckDB cannot encode (:func:`_require_encodable`). The stream calls it before
    Spark starts."""
    _require_encodable(path)
    if path.is_dir():
        raise WarehouseUnreadable(
            f"{path} cannot be opened as the DuckDB warehouse: it is a directory; set [warehouse] "
            f"path (env POLARWATCH_WAREHOUSE_PATH) to a file, e.g. "
            f"{path / '.polarwatch' / 'polarwatch.duckdb'}")


def _require_encodable(path: Path) -> None:
    """DuckDB reads a path as UTF-8 and opens it in the locale's encoding: under a file-system
    encoding that is not UTF-8 (LC_ALL=C, a Latin-9 locale) a non-ASCII path names another
    file, or fails inside DuckDB with std::bad_cast. Refused in one line with the fix."""
    text = str(path.absolute())
    if text.isascii():
        return
    shown = text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates escaped
    if codecs.lookup(sys.getfilesystemencoding()).name == "utf-8":
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 in the name (a Latin-1 copy)
            raise WarehouseUnreadable(
                f"{shown}: DuckDB cannot open a path whose name is not UTF-8; rename the file or "
                f"its directory, or point [warehouse] path at another one") from None
        return
    raise WarehouseUnreadable(
        f"{shown}: DuckDB cannot open a path with non-ASCII characters under this locale's "
        f"file-system encoding ({sys.getfilesystemencoding()}); run polarwatch in UTF-8 mode "
        f"(PYTHONUTF8=1, or a UTF-8 locale such as LC_ALL=C.UTF-8), or use an ASCII path")


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
    # the newest dead letter of each topic partition (newest generation, highest offset)
    # stays: the sink's dead-letter drain resumes after it (stream/dead_letters.py)
    old_dead = """FROM dead_letters d WHERE seen_at < ? AND EXISTS (
                      SELECT 1 FROM dead_letters n
                      WHERE n.source_topic = d.source_topic
                        AND n.kafka_partition = d.kafka_partition
                        AND (n.topic_generation > d.topic_generation
                             OR (n.topic_generation = d.topic_generation
                                 AND n.kafka_offset > d.kafka_offset)))"""
    deleted["dead_letters"] = int(scalar(con, f"SELECT count(*) {old_dead}", [now - span]))
    if deleted["dead_letters"]:
        con.execute(f"DELETE {old_dead}", [now - span])
    return deleted
