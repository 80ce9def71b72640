"""Readers on a snapshot while another process keeps the live file locked (the stream storing a
long batch: 34 s for the demo's first one here): the pages read the copy they have, waiting for
the lock at most once per period, instead of every query waiting out its retries and the page
hanging as long as the lock (113 s for a 120 s lock, measured in Chromium). The holder is a real
process with a real DuckDB connection."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard import queries, snapshot
from dashboard.snapshot import SNAPSHOT_ENV, readable
from polarwatch import warehouse
from polarwatch.warehouse import connect
from tests.lock_holder import holding

from .conftest import seed_warehouse
from .test_app import run_app, sidebar_text, texts


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "pw.duckdb"
    with connect(path) as con:
        con.execute("CREATE TABLE t AS SELECT range AS i FROM range(3)")
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 20)  # 0.5 s of retries, not 5 s
    monkeypatch.setattr(snapshot, "_locked_until", {}, raising=False)
    return path


@pytest.fixture
def holder(live: Path) -> Iterator[subprocess.Popen[str]]:
    with holding(live, sql="INSERT INTO t VALUES (99)") as proc:
        yield proc


def _count(live: Path) -> int:
    return int(queries._df(live, "SELECT count(*) AS n FROM t")["n"].iloc[0])


def test_a_locked_live_file_is_read_through_the_copy_there_is(
        live: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "0.3")
    snap = readable(live)
    assert _count(live) == 3
    request.getfixturevalue("holder")  # a writer takes the file and keeps it
    time.sleep(0.4)  # the copy is older than its period now
    started = time.monotonic()
    assert readable(live) == snap  # waited once for the lock, then took the copy
    waited = time.monotonic() - started
    assert 0.4 < waited < 3, waited
    started = time.monotonic()
    assert [_count(live) for _ in range(8)] == [3] * 8  # the other queries do not wait again
    assert time.monotonic() - started < 1.5
    age = snapshot.locked_out(live)
    assert age is not None and age >= 0.4


def test_without_a_copy_yet_the_lock_is_the_reader_s_error(
        live: Path, monkeypatch: pytest.MonkeyPatch, holder: subprocess.Popen[str]) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "0.3")
    with pytest.raises(Exception, match="lock"):
        readable(live)
    assert snapshot.locked_out(live) is None


def test_the_sidebar_says_the_pages_show_an_older_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seed = seed_warehouse(tmp_path / "polarwatch.duckdb")
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 20)
    monkeypatch.setattr(snapshot, "_locked_until", {}, raising=False)
    monkeypatch.setenv(SNAPSHOT_ENV, "0.3")
    at = run_app(monkeypatch, seed.path, tmp_path / "events.toml")
    assert not at.exception and "Showing the warehouse as it was" not in sidebar_text(at)
    with holding(seed.path):
        time.sleep(0.4)
        at.run()
        assert not at.exception
        assert "13 posts, 10 interactions" in sidebar_text(at)  # the copy's figures
        assert "Showing the warehouse as it was" in sidebar_text(at), sidebar_text(at)
        assert "is locked" not in texts(at, "error")
