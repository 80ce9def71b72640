"""The Label page while another process keeps the warehouse locked (a stream storing a long
batch, a duckdb shell): one message naming the holder's PID and that the click was not stored,
never a traceback; once the lock is gone the same click stores the label. Streamlit's AppTest on
a seeded warehouse; the holder is a real process with a real DuckDB connection."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.safety import TOKEN_ENV
from polarwatch import warehouse
from polarwatch.warehouse import connect
from tests.lock_holder import hold, release

from .conftest import seed_warehouse
from .test_app import run_app, texts


class Holder:
    """A process that opens the warehouse and keeps it open until released: read-write (no
    other process may open it), or read-only (others may read it, none may write)."""

    def __init__(self, path: Path) -> None:
        self.path: Path = path
        self.proc: subprocess.Popen[str] | None = None

    def take(self, read_only: bool = False) -> int:
        self.proc = hold(self.path, read_only)
        return self.proc.pid

    def release(self) -> None:
        if self.proc is not None:
            release(self.proc)
            self.proc = None


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
         ) -> Iterator[tuple[Any, Path, Holder]]:
    """The Label page with labelling on, a post shown; `request.param`: snapshot seconds."""
    seed = seed_warehouse(tmp_path / "polarwatch.duckdb")
    monkeypatch.setenv("POLARWATCH_DASHBOARD_ALLOW_LABELS", "true")
    monkeypatch.setenv("POLARWATCH_DASHBOARD_SNAPSHOT_S", request.param)
    monkeypatch.setenv(TOKEN_ENV, "run-token")
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 4)  # 0.1 s of retries, not 5 s
    at = run_app(monkeypatch, seed.path, tmp_path / "events.toml", "views/label.py",
                 topic="gun_control", token="run-token")
    assert not at.exception and "Stance towards the topic" in texts(at)
    holder = Holder(seed.path)
    yield at, seed.path, holder
    holder.release()


def _stored(path: Path) -> list[tuple[str, str]]:
    with connect(path, read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'"
                           ).fetchall()[0][0]:
            return []
        return con.execute("SELECT task, value FROM labels").fetchall()


def _click(at: Any, task: str, value: str) -> Any:
    button = next(b for b in at.button if str(b.key).startswith(f"lbl|{task}|{value}|"))
    return button.click().run()


# "0": every read on the live file; "3600": the pages read a snapshot made before the lock,
# the Label page's own reads and its write go to the live file
@pytest.mark.parametrize("page", ["0", "3600"], indirect=True)
def test_a_click_on_a_locked_warehouse_says_it_was_not_stored(
        page: tuple[Any, Path, Holder]) -> None:
    at, path, holder = page
    pid = holder.take()
    _click(at, "stance", "pro")
    assert not at.exception, at.exception[0].value if at.exception else ""
    errors = texts(at, "error")
    assert "is locked" in errors and f"PID {pid}" in errors, errors
    assert "Not stored" in errors and "stance: pro" in errors, errors
    assert "Traceback" not in texts(at)

    holder.release()  # the writer lets go: nothing was half-written, the same click stores it
    assert _stored(path) == []
    at.run()
    assert not at.exception
    _click(at, "stance", "pro")
    assert not at.exception and not texts(at, "error")
    assert _stored(path) == [("stance", "pro")]
    assert "— stored: pro" in texts(at, "markdown")


@pytest.mark.parametrize("page", ["0"], indirect=True)
def test_a_label_the_warehouse_refuses_to_store_says_so(page: tuple[Any, Path, Holder]
                                                         ) -> None:
    """Another reader (read-only) lets the page read but not write: the write fails."""
    at, path, holder = page
    pid = holder.take(read_only=True)
    _click(at, "stance", "anti")
    assert not at.exception, at.exception[0].value if at.exception else ""
    errors = texts(at, "error")
    assert "Not stored: your label stance: anti" in errors and f"PID {pid}" in errors, errors
    assert "— stored" not in texts(at, "markdown")
    holder.release()
    assert _stored(path) == []
    _click(at, "stance", "anti")
    assert not at.exception and _stored(path) == [("stance", "anti")]


@pytest.mark.parametrize("page", ["0"], indirect=True)
def test_retrain_on_a_locked_warehouse_is_one_message(page: tuple[Any, Path, Holder]) -> None:
    at, path, holder = page
    at.run()
    button = next(b for b in at.button if str(b.key).startswith("lbl_retrain|"))
    pid = holder.take()
    button.click().run()
    assert not at.exception, at.exception[0].value if at.exception else ""
    errors = texts(at, "error")
    assert "Not retrained" in errors or "is locked" in errors, errors
    assert f"PID {pid}" in errors, errors
