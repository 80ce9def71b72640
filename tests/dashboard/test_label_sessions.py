"""Two browser sessions on the Label page draw the same post (the random order is the same for
every session) and both keep the default name: the second click must not silently replace the
first session's label with its own (the table keeps one row per post, task and labeller), and
says what to do. Streamlit's AppTest, two sessions on one seeded warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashboard.safety import TOKEN_ENV
from polarwatch.warehouse import connect

from .conftest import seed_warehouse
from .test_app import run_app, texts


def _session(monkeypatch: pytest.MonkeyPatch, warehouse: Path, tmp_path: Path) -> Any:
    at = run_app(monkeypatch, warehouse, tmp_path / "events.toml", "views/label.py",
                 topic="gun_control", token="run-token")
    assert not at.exception
    return at


def _click(at: Any, task: str, value: str) -> str:
    button = next(b for b in at.button if str(b.key).startswith(f"lbl|{task}|{value}|"))
    post = str(button.key).split("|", 3)[3]
    button.click().run()
    assert not at.exception, at.exception[0].value if at.exception else ""
    return post


def _labels(path: Path) -> list[tuple[str, str, str, str]]:
    with connect(path, read_only=True) as con:
        return con.execute("SELECT post_id, task, value, labeller FROM labels ORDER BY ALL"
                           ).fetchall()


def test_a_second_session_with_the_same_name_does_not_overwrite_the_first(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seed = seed_warehouse(tmp_path / "polarwatch.duckdb")
    monkeypatch.setenv("POLARWATCH_DASHBOARD_ALLOW_LABELS", "true")
    monkeypatch.setenv(TOKEN_ENV, "run-token")
    first = _session(monkeypatch, seed.path, tmp_path)
    second = _session(monkeypatch, seed.path, tmp_path)
    post = _click(first, "stance", "pro")
    assert _click(second, "stance", "anti") == post  # the same post, drawn in both sessions
    assert _labels(seed.path) == [(post.split("|")[1], "stance", "pro", "analyst")]
    errors = texts(second, "error")
    assert "Not stored" in errors and "another session" in errors and "analyst" in errors
    assert "— stored: anti" not in texts(second, "markdown")

    first.run()  # a correction in the session that gave the label is still a correction
    _click(first, "stance", "unclear")
    assert _labels(seed.path) == [(post.split("|")[1], "stance", "unclear", "analyst")]

    second.text_input(key="pw_labeller").input("bea").run()  # under her own name it is stored
    _click(second, "stance", "anti")
    assert sorted(_labels(seed.path)) == [(post.split("|")[1], "stance", "anti", "bea"),
                                          (post.split("|")[1], "stance", "unclear", "analyst")]
