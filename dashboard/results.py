"""Reading the warehouse for the dashboard: one process, many sessions.

Streamlit runs every session of a server as a thread of one process. When the readers work on a
snapshot (:func:`dashboard.snapshot.readable`), a query's result depends only on the snapshot
file and the query, so :func:`read_frame` runs each query once per snapshot generation (the
file's ``st_mtime_ns`` and ``st_size``) through ``st.cache_data``, which hands every session its
own copy and makes sessions asking for the same key at once wait for one run. Reads of the live
file are never stored: the stream changes it under every batch.

A snapshot is opened in a private in-memory DuckDB instance (``ATTACH ... (READ_ONLY)``), not
with ``duckdb.connect(path)``: DuckDB keeps one database instance per path in a process, so
while any session holds a connection to the snapshot, a new ``connect`` to that path gets the
instance opened on the generation that was on disk back then, even after the file was replaced;
a result read that way and stored under the new generation would be served stale for a whole
period (tests/dashboard/test_results.py).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.snapshot import readable
from polarwatch.warehouse import connect

# Pickled bytes of DataFrames kept: a dashboard page's queries for a few topics take a few MB
# per generation.
CACHE_BYTES = 64 * 2**20


def generation(snapshot: Path) -> tuple[int, int]:
    """What tells one snapshot copy from the next: (st_mtime_ns, st_size). The snapshot is
    replaced (``os.replace``) by a freshly written copy, never written in place."""
    st_ = os.stat(snapshot)
    return st_.st_mtime_ns, st_.st_size


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


def _query(source: Path, live: bool, sql: str, params: list[Any]) -> pd.DataFrame:
    with _open(source, live) as con:
        df: pd.DataFrame = con.execute(sql, params).df()
    return df


@st.cache_data(max_size=CACHE_BYTES, show_spinner=False)
def _snapshot_query(snapshot: str, generation: tuple[int, int], sql: str,
                    params: list[Any]) -> pd.DataFrame:
    """One query on one snapshot generation (``generation`` is only the cache key)."""
    return _query(Path(snapshot), False, sql, params)


_newest: dict[str, tuple[int, int]] = {}  # the newest generation seen, per snapshot file
_newest_lock = threading.Lock()


def _forget_older(snapshot: str, gen: tuple[int, int]) -> None:
    """Drop the results of older generations once a newer one is seen: they are never asked
    for again, and st.cache_data keeps a lock per key until it is cleared."""
    with _newest_lock:
        if _newest.get(snapshot, gen) < gen:
            _snapshot_query.clear()
        _newest[snapshot] = max(gen, _newest.get(snapshot, gen))


def read_frame(path: str | Path, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """``sql`` with ``params`` on what readers open, as a DataFrame; on a snapshot, once per
    snapshot generation for the whole process (each caller gets its own copy)."""
    source = readable(path)
    if source == Path(path):  # the live file: never stored
        return _query(source, True, sql, params or [])
    gen = generation(source)  # stat before opening: what is read is this generation or newer
    _forget_older(str(source), gen)
    return _snapshot_query(str(source), gen, sql, params or [])
