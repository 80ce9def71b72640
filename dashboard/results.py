"""Reading the warehouse for the dashboard: one process, many sessions (issue 13).

Streamlit runs every session of a server as a thread of one process. When the readers work on a
snapshot (:func:`dashboard.snapshot.readable`), a query's result depends only on the snapshot
file and the query, so :func:`read_frame` runs each query once per snapshot generation (the
file's ``st_mtime_ns`` and ``st_size``) and hands every session a copy of the stored DataFrame.
Reads of the live file are never stored: the stream changes it under every batch.

A snapshot is opened in a private in-memory DuckDB instance (``ATTACH ... (READ_ONLY)``), not
with ``duckdb.connect(path)``: DuckDB keeps one database instance per path in a process, so
while any session holds a connection to the snapshot, a new ``connect`` to that path gets the
instance opened on the generation that was on disk back then, even after the file was replaced;
a result read that way and stored under the new generation would be served stale for a whole
period (tests/dashboard/test_results.py).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from cachetools import LRUCache

from dashboard.snapshot import readable
from polarwatch.warehouse import connect

log = logging.getLogger(__name__)

# Bytes of DataFrames kept (pandas' deep memory usage): a dashboard page's queries for a few
# topics take a few MB per generation; older generations fall out of the LRU end.
CACHE_BYTES = 64 * 2**20


def _frame_bytes(df: pd.DataFrame) -> int:
    return int(df.memory_usage(deep=True).sum())


class ResultCache:
    """A thread-safe LRU of DataFrames, bounded in bytes. :meth:`get_or_run` runs a missing
    key's query once: sessions asking for the same key meanwhile wait for that result."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._lru: LRUCache[Hashable, pd.DataFrame] = LRUCache(max_bytes, getsizeof=_frame_bytes)
        self._lock = threading.Lock()
        self._running: dict[Hashable, threading.Lock] = {}

    def get_or_run(self, key: Hashable, run: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """A copy of the stored result for ``key``, running ``run()`` first when there is none
        (callers may change what they get: the stored frame stays as read)."""
        with self._lock:
            hit = self._lru.get(key)
            gate = self._running.setdefault(key, threading.Lock()) if hit is None else None
        if gate is not None:
            with gate:
                with self._lock:
                    hit = self._lru.get(key)
                if hit is None:
                    try:
                        hit = run()
                        self._store(key, hit)
                    finally:
                        with self._lock:
                            if self._running.get(key) is gate:
                                del self._running[key]
        assert hit is not None
        return hit.copy()

    def _store(self, key: Hashable, df: pd.DataFrame) -> None:
        with self._lock:
            try:
                self._lru[key] = df
            except ValueError:  # larger than the whole cache: served, not kept
                log.warning("a %d-byte query result is larger than the dashboard's result "
                            "cache (%d bytes): not kept", _frame_bytes(df), self._lru.maxsize)

    def clear(self) -> None:
        with self._lock:
            self._lru.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._lru)


RESULTS = ResultCache()  # one per process: every Streamlit session of the server shares it


def generation(snapshot: Path) -> tuple[int, int]:
    """What tells one snapshot copy from the next: (st_mtime_ns, st_size). The snapshot is
    replaced (``os.replace``) by a freshly written copy, never written in place."""
    st = os.stat(snapshot)
    return st.st_mtime_ns, st.st_size


@contextmanager
def _open_snapshot(snapshot: Path) -> Iterator[Any]:
    import duckdb

    con = duckdb.connect()  # a private in-memory instance: sees the file as it is now
    try:
        quoted = str(snapshot).replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS pw_snapshot (READ_ONLY)")
        con.execute("USE pw_snapshot")
        yield con
    finally:
        con.close()


@contextmanager
def _open(source: Path, live: bool) -> Iterator[Any]:
    """A read-only connection to `source` (the live file, or a snapshot in a private
    instance), timestamps in UTC."""
    with connect(source, read_only=True) if live else _open_snapshot(source) as con:
        con.execute("SET TimeZone = 'UTC'")
        yield con


@contextmanager
def reading(path: str | Path) -> Iterator[Any]:
    """A short read-only connection to what readers open (:func:`readable`: the live file, or
    its snapshot), timestamps in UTC."""
    source = readable(path)
    with _open(source, source == Path(path)) as con:
        yield con


def read_frame(path: str | Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """``sql`` with ``params`` on what readers open, as a DataFrame; on a snapshot, once per
    snapshot generation for the whole process (a copy of the stored result)."""
    source = readable(path)
    live = source == Path(path)

    def run() -> pd.DataFrame:
        with _open(source, live) as con:
            df: pd.DataFrame = con.execute(sql, params or []).df()
        return df

    if live:  # the live file: never stored
        return run()
    try:  # stat before opening: what is read is this generation or a newer one
        key: Hashable = (str(source), *generation(source), sql, tuple(params or ()))
        hash(key)
    except TypeError:  # an unhashable parameter: read, do not store
        return run()
    return RESULTS.get_or_run(key, run)
