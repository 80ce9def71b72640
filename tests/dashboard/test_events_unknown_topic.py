"""The Events page for a calendar holding an event on a topic no longer in topics.toml: it said
"cannot be edited until it is fixed by hand", though `polarwatch events remove` removes such an
event. Now it names each such event with that command and, where the page may write, a button
removing it through the same function under the calendar's lock. Streamlit's AppTest on the
seeded warehouse, the real calendar file and the real CLI."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dashboard.safety import TOKEN_ENV
from polarwatch.cli import main
from polarwatch.events import Event, load_events, save_events

from .conftest import Seed
from .test_app import elements, run_app, texts

PAGE = "views/event_calendar.py"
GONE = Event("-Article 50 vote",  # a leading dash: not an option (a review)
              "brexit", datetime(2026, 3, 2, 12, tzinfo=UTC), "scheduled")
KEPT = Event("Senate vote", "gun_control", datetime(2026, 3, 3, 12, tzinfo=UTC), "scheduled")


def _commands(at: object) -> list[str]:
    return [str(e.value) for e in elements(at, "code")]  # type: ignore[arg-type]


def test_an_event_on_a_removed_topic_is_named_with_the_command_that_removes_it(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    events_file = tmp_path / "events.toml"
    save_events(events_file, [GONE, KEPT])  # saved while brexit was a topic
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, PAGE)
    assert not at.exception
    shown = texts(at)
    assert "fixed by hand" not in shown
    assert "cannot be edited until 1 event(s) on a topic not in topics.toml" in shown
    assert "“\\-Article 50 vote” on topic brexit, 2026-03-02 12:00 UTC (scheduled)" in shown  # markdown source
    assert "Senate vote" not in shown  # only the events in the way are listed
    command = (f"polarwatch events --file={shlex.quote(str(events_file))} remove --topic="
               f"brexit -- '-Article 50 vote'")
    assert _commands(at) == [command]
    assert not at.button  # editing is off: the command only
    assert main(shlex.split(command)[1:]) == 0, capsys.readouterr().err  # it works as shown
    assert load_events(events_file) == [KEPT]
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, PAGE)
    assert "cannot be edited" not in texts(at) and list(at.dataframe[0].value["name"]) == [
        "Senate vote"]


def test_where_the_page_may_write_a_button_removes_the_event(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
        tmp_path: Path) -> None:
    monkeypatch.setenv("POLARWATCH_DASHBOARD_EDIT_EVENTS", "true")
    monkeypatch.setenv(TOKEN_ENV, "run-token")
    events_file = tmp_path / "events.toml"
    save_events(events_file, [GONE, KEPT])
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, PAGE, token="run-token")
    assert not at.exception and "its command below or its button" in texts(at)
    assert [b.label for b in at.button] == ["Remove “\\-Article 50 vote”"]
    at.button[0].click().run()
    assert not at.exception
    assert load_events(events_file) == [KEPT]
    assert "Removed “\\-Article 50 vote” (topic brexit)." in texts(at)
    assert list(at.dataframe[0].value["name"]) == ["Senate vote"]  # the calendar is editable


def test_other_faults_keep_the_fix_by_hand_message(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
        tmp_path: Path) -> None:
    """An unknown topic and a bad kind: removing the event would not be enough."""
    events_file = tmp_path / "events.toml"
    events_file.write_text('[[event]]\nname = "Old"\ntopic = "brexit"\n'
                           'start = 2026-03-02T12:00:00Z\nkind = "planned"\n')
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, PAGE)
    assert not at.exception
    assert "The calendar cannot be edited until it is fixed by hand:" in texts(at)
    assert not _commands(at)
