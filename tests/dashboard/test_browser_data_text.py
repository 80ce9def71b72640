"""In headless Chromium, on a served copy of the seed: a thread header holding a right-to-left
override or an Arabic author keeps its left-to-right order (measured from where each character
is drawn), a reply cycle shows its posts, a topic with one window draws its point, and charts of
constant values get sane ticks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from polarwatch.events import Event, save_events
from polarwatch.warehouse import connect

from .conftest import START, seed_warehouse
from .test_browser import CHROMIUM, _idle, _shot, serve_app, watched_page
from .test_data_text import ARABIC, bidi_statements, cycle_statements

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's headless Chromium: apt-get install -y chromium")

# Every drawn character of the thread header (<small>) that contains `needle`: [char, x].
GLYPHS = """needle => {
  const small = [...document.querySelectorAll('[data-testid="stHtml"] small')]
      .find(s => s.textContent.includes(needle));
  const out = [];
  const walk = document.createTreeWalker(small, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    for (let i = 0; i < node.length; i++) {
      const r = document.createRange();
      r.setStart(node, i);
      r.setEnd(node, i + 1);
      const box = r.getBoundingClientRect();
      if (box.width > 0) out.push([node.data[i], box.left]);
    }
  }
  return out;
}"""
# The labels Vega drew on the y axis of the n-th chart of the page.
Y_LABELS = """n => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')[n]
    .querySelectorAll('g.role-axis')]
  .filter(g => (g.getAttribute('aria-label') || '').startsWith('Y-axis'))
  .flatMap(g => [...g.querySelectorAll('.role-axis-label text')].map(t => t.textContent))"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """gun_control with one window and no forecast; every interaction scored 1 (a constant
    event study); conv-hot with the audit's bidi id and an Arabic author; cycle cyc3."""
    seed = seed_warehouse(tmp_path / "pw.duckdb")
    with connect(seed.path) as con:
        con.execute("DELETE FROM topic_windows WHERE topic = 'gun_control' AND window_start > ?",
                    [START])
        con.execute("DELETE FROM forecasts WHERE topic = 'gun_control'")
        for sql, params in [*bidi_statements(), *cycle_statements()]:
            con.execute(sql, params)
        con.execute("UPDATE interactions SET score = 1")
    events = tmp_path / "events.toml"
    save_events(events, [Event("Senate vote", "gun_control", START + timedelta(hours=45),
                               "scheduled", START + timedelta(hours=46))])
    with serve_app(tmp_path, {"POLARWATCH_WAREHOUSE_PATH": str(seed.path),
                              "POLARWATCH_EVENTS_FILE": str(events)}) as url:
        yield url


def _open(page: Any, url: str, wait_for: str) -> None:
    page.goto(url)
    page.get_by_text(wait_for, exact=False).first.wait_for(timeout=30_000)
    _idle(page)


def _x(glyphs: list[list[Any]], text: str, last: bool = False) -> list[float]:
    """Where each character of `text` is drawn (its first, or last, occurrence)."""
    chars = "".join(g[0] for g in glyphs)
    at = chars.rindex(text) if last else chars.index(text)
    return [float(g[1]) for g in glyphs[at:at + len(text)]]


def test_thread_headers_keep_their_order_and_a_cycle_shows(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with watched_page() as (page, _):
        _open(page, f"{served}/conversation?conversation=conv-hot", "Thread conv-hot")
        page.get_by_test_id("stHtml").get_by_text("reply h2").wait_for()
        spoofed = page.evaluate(GLYPHS, "h-rtl-id-")
        utc, start = _x(spoofed, "UTC", last=True), _x(spoofed, "h-rtl")
        assert start[0] < utc[0] < utc[1] < utc[2], spoofed  # read left to right, not "CTU"
        assert "".join(g[0] for g in spoofed).startswith("h-rtl-id-\\u202e · u4 · 2026-03-02")
        arabic = page.evaluate(GLYPHS, "h2 · ")
        name, date = _x(arabic, ARABIC), _x(arabic, "2026-03-02 21:10")
        assert _x(arabic, "h2")[0] < min(name) and max(name) < date[0] < date[-1], arabic
        _shot(page, tmp_path / "bidi_thread.png")

        _open(page, f"{served}/conversation?conversation=cyc3", "Thread cyc3")
        thread = page.get_by_test_id("stHtml")
        for text in ("cycle post a", "cycle post b", "cycle post c",
                     "in a reply cycle (replies to c)"):
            expect(thread.get_by_text(text, exact=False).first).to_be_visible()
        expect(page.get_by_text("This conversation has no opening post: its replies form a "
                                "cycle", exact=False)).to_be_visible()
        _shot(page, tmp_path / "cycle_thread.png")


def test_one_window_and_constant_values_chart_sanely(served: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with watched_page() as (page, _):
        _open(page, f"{served}/topic?topic=gun_control", "1 window of 1 hour")
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        expect(charts).to_have_count(3)  # the series, the event's two study charts
        page.wait_for_timeout(1000)
        # the observed line's one point: a drawn symbol (a line of one point draws nothing)
        points = charts.nth(0).locator(".mark-symbol.role-mark path")
        expect(points).to_have_count(1)
        labels = [page.evaluate(Y_LABELS, n) for n in range(3)]
        for n, chart in enumerate(labels):
            assert len(chart) >= 2, (n, chart)  # a few ticks, not one "1.000000"
            assert not [t for t in chart if re.search(r"\.\d{4,}", t)], (n, chart)
        assert "0%" in labels[2] and "100%" in labels[2]  # all shares 0: an axis from 0 to 100 %
        _shot(page, tmp_path / "one_window_topic.png")
