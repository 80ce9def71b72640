"""Dashboard tests: the queries, the app through Streamlit's AppTest, and a real headless browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import app as dashboard_app
from dashboard import queries

from .conftest import Seed, add_window, seed_warehouse

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def run_app(monkeypatch: pytest.MonkeyPatch, warehouse: Path) -> AppTest:
    monkeypatch.chdir(REPO)  # load_config() finds polarwatch.toml + topics.toml here
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(warehouse))
    at = AppTest.from_file(str(APP), default_timeout=30)
    return at.run()


def all_text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "error", "warning")
             for e in at.get(kind)]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------------------------
# queries


def test_queries_return_the_seed(seeded_warehouse: Seed) -> None:
    path = seeded_warehouse.path
    overview = queries.topics_overview(path).set_index("topic")
    for topic, latest in seeded_warehouse.latest.items():
        assert overview.loc[topic, "mean_score"] == pytest.approx(latest["mean_score"])
        assert overview.loc[topic, "volume"] == latest["volume"]
        assert len(overview.loc[topic, "recent_scores"]) == 24

    series = queries.topic_series(path, "gun_control")
    assert series["ts"].is_monotonic_increasing
    spikes = series[series["flag"] == "spike"]
    assert list(spikes["ts"]) == [seeded_warehouse.spike_ts]
    assert series["y"].isna().sum() == 12  # future forecast steps have no observation yet

    convs = queries.top_conversations(path, "gun_control")
    assert list(convs["conversation_id"]) == ["conv-hot", "conv-calm"]
    assert list(convs["mean_score"]) == [seeded_warehouse.conversations["conv-hot"],
                                         seeded_warehouse.conversations["conv-calm"]]
    assert convs["root_text"].iloc[0].startswith("Ban assault weapons")

    status = queries.stream_status(path).iloc[0]
    assert (status["n_posts"], status["n_interactions"], status["n_batches"]) == (10, 8, 1)


def test_queries_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make demo"):
        queries.topics_overview(tmp_path / "nope.duckdb")


def test_fmt_age() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert dashboard_app.fmt_age(now - timedelta(seconds=7), now) == "7 s ago"
    assert dashboard_app.fmt_age(now - timedelta(minutes=10), now) == "10 min ago"
    assert dashboard_app.fmt_age(now - timedelta(hours=5), now) == "5 h ago"


# --------------------------------------------------------------------------------------------
# AppTest


def test_app_renders_seeded_warehouse(monkeypatch: pytest.MonkeyPatch,
                                      seeded_warehouse: Seed) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path)
    assert not at.exception
    text = all_text(at)
    for name in seeded_warehouse.names.values():
        assert f"**{name}**" in text
    assert "10 posts, 8 interactions" in text and "last batch" in text

    metrics = [(m.label, m.value) for m in at.metric]
    for latest in seeded_warehouse.latest.values():
        assert ("Polarization score", f"{latest['mean_score']:.2f}") in metrics
        assert ("Extreme share", f"{latest['extreme_share']:.0%}") in metrics
        assert ("Volume", f"{latest['volume']:,}") in metrics

    assert at.selectbox(key="topic").value == "climate_change"  # first topic alphabetically
    assert len(at.get("vega_lite_chart")) == 1
    assert "No scored conversations for Climate change yet." in text

    at.selectbox(key="topic").set_value("gun_control").run()
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1
    assert "1 spike(s)" in all_text(at)
    table = at.dataframe[0].value
    assert list(table["conversation_id"]) == ["conv-hot", "conv-calm"]
    assert list(table["mean_score"]) == [9.0, 2.0]


def test_app_missing_warehouse_shows_empty_state(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    at = run_app(monkeypatch, tmp_path / "absent.duckdb")
    assert not at.exception
    assert [i.value for i in at.info] == [
        "No data yet — run `make demo` or `polarwatch stream`."]
    assert not at.metric and not at.get("vega_lite_chart")


def test_app_empty_warehouse_shows_waiting_state(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    from polarwatch.warehouse import init_schema

    path = tmp_path / "empty.duckdb"
    init_schema(path)
    at = run_app(monkeypatch, path)
    assert not at.exception
    text = all_text(at)
    assert "No scored windows yet" in text
    assert "no batch committed yet" in text


# --------------------------------------------------------------------------------------------
# A real browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="needs Debian's headless Chromium: apt-get install -y chromium")
def test_browser_renders_dashboard_and_refreshes_live(tmp_path: Path) -> None:
    """Serve the app for real, check it renders, then write a new window while it is open
    (the writer must get the lock) and see the live fragment pick it up."""
    from playwright.sync_api import sync_playwright

    seed = seed_warehouse(tmp_path / "live.duckdb")  # own copy: this test writes to it
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "POLARWATCH_WAREHOUSE_PATH": str(seed.path)}
    env.pop("POLARWATCH_CONFIG", None)
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port),
         "--browser.gatherUsageStats", "false"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(url)
                page.wait_for_selector(
                    '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=30_000)
                page.get_by_text("Gun control", exact=True).wait_for(timeout=15_000)
                chart = page.locator('[data-testid="stVegaLiteChart"]')
                chart.first.wait_for(timeout=15_000)
                assert chart.count() == 1
                assert page.get_by_text("Polarization score").count() == 2
                # Streamlit scrolls inside stMain: grow the viewport so the shot has everything.
                height = page.get_by_test_id("stMain").evaluate("e => e.scrollHeight")
                page.set_viewport_size({"width": 1400, "height": int(height)})
                page.wait_for_timeout(500)
                shot = tmp_path / "dashboard.png"
                page.get_by_test_id("stMainBlockContainer").screenshot(path=str(shot))
                assert shot.stat().st_size > 10_000

                add_window(seed.path, "gun_control", mean_score=9.87)
                page.get_by_text("9.87", exact=True).wait_for(
                    timeout=(dashboard_app.REFRESH_SECONDS + 15) * 1000)
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
