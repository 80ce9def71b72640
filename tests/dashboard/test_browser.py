"""End to end: serve the dashboard on 127.0.0.1 and drive Debian's headless Chromium through
every page, clicking from the overview to a topic and on to a conversation thread. Screenshots
go to the test's temp dir; the assertions are on rendered content."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from dashboard.common import REFRESH_SECONDS
from dashboard.safety import TOKEN_ENV
from polarwatch.events import Event, save_events

from .conftest import START, add_window, seed_warehouse

REPO = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token"
APP = REPO / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's headless Chromium: apt-get install -y chromium")


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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app served on a free port over its own seeded warehouse and a one-event calendar."""
    seed = seed_warehouse(tmp_path / "live.duckdb")  # own copy: the test writes to it
    events = tmp_path / "events.toml"
    save_events(events, [Event("Senate vote", "gun_control", START + timedelta(hours=45),
                               "scheduled", START + timedelta(hours=46))])
    with serve_app(tmp_path, {"POLARWATCH_WAREHOUSE_PATH": str(seed.path),
                              "POLARWATCH_EVENTS_FILE": str(events),
                              "POLARWATCH_DASHBOARD_EDIT_EVENTS": "true"}) as url:
        yield url, seed.path


@contextlib.contextmanager
def serve_app(tmp_path: Path, settings: dict[str, str], address: str = "127.0.0.1",
              extra: tuple[str, ...] = ()) -> Iterator[str]:
    """`streamlit run` of the app on a free port of `address` with `settings` (and this run's
    token) in its environment, not the project's polarwatch.toml, and `extra` options; yields
    its URL once it is healthy."""
    port = _free_port()
    url = f"http://{address}:{port}"
    env = {**os.environ, **settings, TOKEN_ENV: TOKEN}
    env.pop("POLARWATCH_CONFIG", None)
    with (tmp_path / "streamlit.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
             "--server.address", address, "--server.port", str(port),
             "--browser.gatherUsageStats", "false", *extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_healthy(url, proc)
            yield url
        finally:
            stop(proc, 10)


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """Terminate `proc`; kill it when it has not ended within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _shot(page: Any, path: Path) -> Path:
    """Screenshot the whole page: Streamlit scrolls inside stMain, so grow the viewport first."""
    height = page.get_by_test_id("stMain").evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(800, int(height))})
    page.wait_for_timeout(400)
    page.get_by_test_id("stMainBlockContainer").screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    assert path.stat().st_size > 10_000
    return path


@contextlib.contextmanager
def watched_page() -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page and the host of every request it makes."""
    from playwright.sync_api import sync_playwright

    hosts: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: hosts.append(urlsplit(r.url).netloc or r.url[:5]))
            yield page, hosts
        finally:
            browser.close()


def _idle(page: Any) -> None:
    page.wait_for_selector(IDLE, timeout=30_000)


def test_click_through_every_page(served: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, warehouse = served
    main = '[data-testid="stMain"]'
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/?token={TOKEN}")  # the link `polarwatch dashboard` prints
            _idle(page)
            body = page.locator(main)
            page.get_by_role("heading", name="Gun control").wait_for(timeout=15_000)
            _idle(page)
            # expect(...) retries until the page shows it: elements arrive one by one
            expect(body.get_by_text("Polarization ↑")).to_have_count(2)
            expect(body.get_by_text("Hostility share")).to_have_count(2)
            expect(body.get_by_text("dip · mean_score · 03-02 22:00")).to_have_count(1)
            page.get_by_text("13 posts, 10 interactions", exact=False).wait_for()
            _shot(page, tmp_path / "1_overview.png")

            # Overview card → topic page (the link carries ?topic=gun_control)
            body.get_by_text("Open Gun control").click()
            page.get_by_text("1 flag(s) on mean_score", exact=False).wait_for(timeout=15_000)
            _idle(page)
            expect(page).to_have_url(re.compile(r"topic=gun_control"))
            page.get_by_text("Senate vote", exact=True).wait_for()
            # series + the event's two before/during/after charts
            expect(page.locator('[data-testid="stVegaLiteChart"]')).to_have_count(3)
            page.get_by_text("before: 5.50, during: 5.50", exact=False).wait_for()
            _shot(page, tmp_path / "2_topic.png")

            # Topic page → the most polarized conversation's thread
            page.get_by_role("button", name="Open thread").click()
            page.get_by_text("Thread conv-hot on test", exact=False).wait_for(timeout=15_000)
            _idle(page)
            # a conversation is named by its platform and its id there: the link carries both
            expect(page).to_have_url(re.compile(r"conversation=conv-hot&platform=test"))
            thread = page.get_by_test_id("stHtml")  # not the table's hidden cells
            for text in ("Ban assault weapons now, no more excuses", "reply h3",
                         "why: reply disagrees and insults the parent",
                         "interaction score 10.00"):
                expect(thread.get_by_text(text).first).to_be_visible()
            _shot(page, tmp_path / "3_conversation.png")

            # Sidebar navigation → Alerts
            page.get_by_test_id("stSidebarNav").get_by_text("Alerts", exact=True).click()
            page.get_by_text("Active flags", exact=True).wait_for(timeout=15_000)
            _idle(page)
            page.get_by_text("no alert has been delivered yet", exact=False).wait_for()
            _shot(page, tmp_path / "4_alerts.png")

            # Events: the calendar lists the seeded event; add one through the form
            page.get_by_test_id("stSidebarNav").get_by_text("Events", exact=True).click()
            page.get_by_text("Calendar file:", exact=False).wait_for(timeout=15_000)
            _idle(page)
            page.get_by_label("Name").fill("Storm landfall")
            page.get_by_role("button", name="Save event").click()
            page.get_by_text("Saved “Storm landfall”", exact=False).wait_for(timeout=15_000)
            _shot(page, tmp_path / "5_events.png")

            # Live: a window written while the page is open shows up without a reload
            page.get_by_test_id("stSidebarNav").get_by_text("Overview", exact=True).click()
            page.get_by_role("heading", name="Gun control").wait_for(timeout=15_000)
            _idle(page)
            add_window(warehouse, "gun_control", mean_score=9.87)
            page.get_by_text("9.87", exact=True).wait_for(
                timeout=(REFRESH_SECONDS + 15) * 1000)
            assert not errors, errors
        finally:
            browser.close()
    assert "Storm landfall" in (tmp_path / "events.toml").read_text()


# Markdown, LaTeX, an image link (after a blank line, which ended the HTML block when threads
# went through Markdown) and raw HTML, with a host no request may reach.
HOSTILE = ("**not bold** $x^2$ <b>not html</b>\n\n![x](http://198.51.100.7/pixel.png)\n\n"
           "# not a heading <img src=http://198.51.100.7/a.png>")


def test_post_text_is_shown_as_text_and_fetches_nothing(served: tuple[str, Path],
                                                        tmp_path: Path) -> None:
    from playwright.sync_api import expect

    from polarwatch.warehouse import connect

    url, warehouse = served
    with connect(warehouse) as con:
        con.execute("UPDATE posts SET text = ? WHERE id = 'h3'", [HOSTILE])
    with watched_page() as (page, hosts):
        page.goto(f"{url}/conversation?conversation=conv-hot")
        page.get_by_text("Thread conv-hot", exact=False).wait_for(timeout=30_000)
        _idle(page)
        thread = page.get_by_test_id("stHtml")
        for literal in ("**not bold** $x^2$ <b>not html</b>",
                        "![x](http://198.51.100.7/pixel.png)", "# not a heading <img"):
            expect(thread.get_by_text(literal, exact=False).first).to_be_visible()
        expect(thread.locator("img")).to_have_count(0)
        expect(page.locator(".katex")).to_have_count(0)
        page.wait_for_timeout(1000)
        _shot(page, tmp_path / "hostile_thread.png")
    assert hosts and set(hosts) == {urlsplit(url).netloc}, sorted(set(hosts))


MARKUP = "**x** $y^2$ :red[z] ![i](http://198.51.100.7/q.png) <b>h</b> `c`"


def test_names_and_query_parameters_are_shown_as_text(served: tuple[str, Path],
                                                      tmp_path: Path) -> None:
    """A ?conversation= link and an event name holding Markdown, LaTeX, a directive, an image
    and HTML render literally (they went through Markdown) and fetch nothing."""
    from urllib.parse import quote

    from playwright.sync_api import expect

    save_events(tmp_path / "events.toml", [Event(MARKUP, "gun_control", START + timedelta(hours=45),
                                                 "scheduled")])
    url, _ = served
    with watched_page() as (page, hosts):
        main = page.locator('[data-testid="stMain"]')
        page.goto(f"{url}/conversation?conversation={quote(MARKUP)}")
        page.get_by_text("has no stored posts", exact=False).wait_for(timeout=30_000)
        _idle(page)
        expect(main.get_by_text(f"Conversation {MARKUP} has no stored posts")).to_be_visible()
        page.goto(f"{url}/topic?topic=gun_control")
        page.get_by_text("1 flag(s) on mean_score", exact=False).wait_for(timeout=30_000)
        _idle(page)
        expect(main.get_by_text(MARKUP, exact=False).first).to_be_visible()
        for tag in ("img", ".katex", "strong:text-is('x')", "b:text-is('h')"):
            expect(main.locator(tag)).to_have_count(0)
    assert hosts and set(hosts) == {urlsplit(url).netloc}, sorted(set(hosts))
