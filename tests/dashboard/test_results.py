"""Query results shared by the sessions of one dashboard server (dashboard/results.py): on a
snapshot, a query opens DuckDB once per snapshot copy for the whole process; a refreshed copy is
read again; a session holding a connection to the old copy does not pin the others to it; the
live file is never stored. Real DuckDB files; DuckDB opens are counted, not faked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from dashboard import queries, results
from dashboard.results import reading
from dashboard.snapshot import SNAPSHOT_ENV
from tests.dashboard.conftest import N_WINDOWS, START, Seed, add_window, seed_warehouse

NEW_SCORE = 9.25  # the mean score of the window the "writer" adds after the seed
NEW_WINDOW = pd.Timestamp(START) + pd.Timedelta(hours=N_WINDOWS)


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    results._snapshot_query.clear()
    yield
    results._snapshot_query.clear()


@pytest.fixture()
def seed(tmp_path: Path) -> Seed:
    return seed_warehouse(tmp_path / "pw.duckdb")


def _count_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every DuckDB database this process opens from now on (an observation: the real
    duckdb.connect does the work)."""
    opened = [0]
    real: Callable[..., Any] = duckdb.connect

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counting)
    return opened


def _gun_control(df: pd.DataFrame) -> pd.Series:
    return df.set_index("topic").loc["gun_control"]


def test_on_a_snapshot_a_query_opens_duckdb_once_per_copy(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    opened = _count_opens(monkeypatch)
    first = queries.topics_overview(seed.path)
    assert opened[0] == 2  # the snapshot copy (under a read-only lock of the live file), the query
    first["mean_score"] = -1.0  # a session changing its frame does not change the others'
    second = queries.topics_overview(seed.path)
    assert opened[0] == 2, "the second session's query opened DuckDB again"
    assert _gun_control(second)["mean_score"] == seed.latest["gun_control"]["mean_score"]
    queries.topic_series(seed.path, "gun_control")
    queries.topic_series(seed.path, "climate_change")
    queries.topic_series(seed.path, "gun_control")
    assert opened[0] == 4  # one per distinct query and parameters


def test_new_rows_are_seen_once_the_snapshot_is_refreshed(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    before = _gun_control(queries.topics_overview(seed.path))
    add_window(seed.path, "gun_control", NEW_SCORE)  # the stream writes the live file
    assert _gun_control(queries.topics_overview(seed.path))["window_start"] == \
        before["window_start"]  # the copy is at most 60 s old: stale by design

    monkeypatch.setenv(SNAPSHOT_ENV, "0.05")
    time.sleep(0.1)  # the copy is now older than the setting: the next reader refreshes it
    after = _gun_control(queries.topics_overview(seed.path))
    assert after["window_start"] == NEW_WINDOW
    assert after["mean_score"] == NEW_SCORE


def test_a_session_on_the_old_copy_does_not_pin_the_others_to_it(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    with reading(seed.path) as other:  # another session, in the middle of a query
        assert other.execute("SELECT count(*) FROM topic_windows").fetchall() == [
            (2 * N_WINDOWS,)]
        add_window(seed.path, "gun_control", NEW_SCORE)
        monkeypatch.setenv(SNAPSHOT_ENV, "0.05")
        time.sleep(0.1)
        after = _gun_control(queries.topics_overview(seed.path))
        assert after["mean_score"] == NEW_SCORE, "read the copy another session had open"
    assert _gun_control(queries.topics_overview(seed.path))["mean_score"] == NEW_SCORE


def test_sessions_asking_at_once_run_the_query_once(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    queries.stream_status(seed.path)  # the copy exists: the sessions below only query
    opened = _count_opens(monkeypatch)
    sessions = 8
    start = threading.Barrier(sessions)
    frames: list[pd.DataFrame] = []

    def session() -> None:
        start.wait()
        frames.append(queries.thread(seed.path, "test", "conv-hot"))

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(frames) == sessions
    assert all(f["id"].tolist() == frames[0]["id"].tolist() for f in frames)
    # a thread is two queries (its posts' ids and parents, then the posts it shows): each once
    assert opened[0] == 2, f"{sessions} sessions opened DuckDB {opened[0]} times for two queries"


def test_the_live_file_is_read_every_time(seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SNAPSHOT_ENV, raising=False)
    opened = _count_opens(monkeypatch)
    queries.topics_overview(seed.path)
    add_window(seed.path, "gun_control", NEW_SCORE)
    assert _gun_control(queries.topics_overview(seed.path))["mean_score"] == NEW_SCORE
    assert opened[0] == 3  # two reads and the write


def test_the_pages_other_reads_use_the_snapshot_too(
        seed: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SNAPSHOT_ENV, "60")
    assert queries.latest_conversation_start(seed.path) is not None
    assert queries.alert_deliveries(seed.path).empty
    assert seed.path.with_name(f".{seed.path.name}.snapshot").exists()
