"""Readers on a snapshot (dashboard/snapshot.py): while a reader holds its connection, the
stream's sink can still open the live file read-write; the snapshot is refreshed once it is
older than $POLARWATCH_DASHBOARD_SNAPSHOT_S; with the setting off, readers hold the live file."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from dashboard import queries
from dashboard.snapshot import SNAPSHOT_ENV, readable
from polarwatch.warehouse import connect, is_lock_error


def _table(path: Path, rows: int) -> None:
    with connect(path) as con:
        con.execute("CREATE OR REPLACE TABLE t AS SELECT range AS i FROM range(?)", [rows])


def _writer_can_open(path: Path) -> bool:
    """What the sink does at the start of a batch: open the live file read-write."""
    try:
        con = duckdb.connect(str(path))
    except (duckdb.IOException, duckdb.ConnectionException) as exc:
        assert is_lock_error(exc), exc
        return False
    con.execute("INSERT INTO t VALUES (100)")
    con.close()
    return True


def test_a_reader_on_the_snapshot_does_not_lock_the_writer_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "pw.duckdb"
    _table(live, 3)
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    snap = readable(live)
    with connect(snap, read_only=True) as reader:  # a dashboard query in progress
        assert _writer_can_open(live)
        assert reader.execute("SELECT count(*) FROM t").fetchall() == [(3,)]
    assert snap != live and snap.exists()
    assert readable(live) == snap  # fresh enough: not copied again
    assert queries._df(live, "SELECT count(*) AS n FROM t")["n"].iloc[0] == 3  # stale by design

    monkeypatch.setenv(SNAPSHOT_ENV, "0.05")
    time.sleep(0.1)
    assert queries._df(live, "SELECT count(*) AS n FROM t")["n"].iloc[0] == 4  # refreshed


def test_without_the_snapshot_a_reader_locks_the_writer_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "pw.duckdb"
    _table(live, 3)
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    assert readable(live) == live
    with connect(readable(live), read_only=True):
        assert not _writer_can_open(live)
