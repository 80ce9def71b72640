"""A shared link opened first on a freshly started server runs through app.py like a click:
the bind refusal, the page titles, the live toggle and the stream status (audit defect 2:
Streamlit ran a file of a ``pages/`` folder on its own until some session had opened ``/``).
Each test starts its own server, so the link is the first request it serves."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from polarwatch.events import Event, save_events

from .conftest import START, seed_warehouse
from .test_browser import CHROMIUM, _idle, serve_app, watched_page

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's headless Chromium: apt-get install -y chromium")

# A second loopback address: an interface polarwatch.toml does not name ([dashboard] address =
# "127.0.0.1"), as a server started with --server.address 0.0.0.0 or a LAN address would be.
OTHER_INTERFACE = "127.0.0.2"


def _settings(tmp_path: Path) -> dict[str, str]:
    seed = seed_warehouse(tmp_path / "links.duckdb")
    events = tmp_path / "events.toml"
    save_events(events, [Event("Senate vote", "gun_control", START + timedelta(hours=45),
                               "scheduled")])
    return {"POLARWATCH_WAREHOUSE_PATH": str(seed.path), "POLARWATCH_EVENTS_FILE": str(events)}


def test_a_first_deep_link_gets_the_navigation_sidebar_and_live_refresh(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with serve_app(tmp_path, _settings(tmp_path)) as url, watched_page() as (page, _):
        page.goto(f"{url}/dead_letters")
        page.get_by_role("heading", name="Dead letters").wait_for(timeout=30_000)
        _idle(page)
        nav = page.get_by_test_id("stSidebarNav")
        expect(nav.get_by_text("Dead letters", exact=True)).to_be_visible()  # app.py's titles
        expect(nav.get_by_text("Conversations", exact=True)).to_be_visible()
        expect(nav.get_by_text("app", exact=True)).to_have_count(0)  # not the file names
        sidebar = page.get_by_test_id("stSidebar")
        expect(sidebar.get_by_text("Live refresh", exact=False)).to_be_visible()
        expect(sidebar.get_by_text("13 posts, 10 interactions", exact=False)).to_be_visible()


def test_a_first_deep_link_on_a_refused_interface_shows_no_data(tmp_path: Path) -> None:
    from playwright.sync_api import expect

    with serve_app(tmp_path, _settings(tmp_path), address=OTHER_INTERFACE,
                   extra=("--server.allowedHosts", OTHER_INTERFACE)) as url, \
            watched_page() as (page, _):
        for link in ("/dead_letters", "/conversation?conversation=conv-hot", "/"):
            page.goto(f"{url}{link}")
            page.get_by_text("This dashboard is being served on address 127.0.0.2",
                             exact=False).wait_for(timeout=30_000)
            _idle(page)
            main = page.get_by_test_id("stMain")
            for data in ("Rejected at ingest", "Thread conv-hot", "Ban assault weapons",
                         "Gun control"):
                expect(main.get_by_text(data, exact=False)).to_have_count(0)
