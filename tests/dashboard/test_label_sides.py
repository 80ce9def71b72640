"""The Label page says what pro and anti mean for the topic (topics.toml) and stores those
sides with each stance label (Streamlit's AppTest on a seeded DuckDB warehouse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.safety import TOKEN_ENV, md_text
from polarwatch.config import load_config
from polarwatch.warehouse import connect

from .conftest import seed_warehouse
from .test_app import REPO, run_app, texts


def test_the_label_page_shows_the_sides_and_stores_them_with_a_stance_label(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seed = seed_warehouse(tmp_path / "polarwatch.duckdb")
    monkeypatch.chdir(REPO)
    topic = next(t for t in load_config().load_topics() if t.id == "gun_control")
    monkeypatch.setenv("POLARWATCH_DASHBOARD_ALLOW_LABELS", "true")
    monkeypatch.setenv(TOKEN_ENV, "run-token")
    at = run_app(monkeypatch, seed.path, tmp_path / "events.toml", "views/label.py",
                 topic="gun_control", token="run-token")
    assert not at.exception
    assert f"**pro**: {md_text(topic.pro)} · **anti**: {md_text(topic.anti)}" in texts(
        at, "caption")
    stance = next(b for b in at.button if str(b.key).startswith("lbl|stance|anti|"))
    stance.click().run()
    assert not at.exception
    with connect(seed.path, read_only=True) as con:
        assert con.execute("SELECT task, value, pro_description, anti_description FROM labels"
                           ).fetchall() == [("stance", "anti", topic.pro, topic.anti)]
