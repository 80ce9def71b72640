"""events.toml is written by a TOML library: no event name can make the file unreadable."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polarwatch.events import Event, EventError, load_events, make_event, save_events

START = datetime(2026, 3, 4, 18, tzinfo=UTC)
HOSTILE_NAMES = ["a\x07b", "a\x7fb", "nul\x00here", "esc\x1b[31m", 'tri"""ple', "back\\slash",
                 "line\nbreak", "]]\n[[event]]\nname = 'x'", "emoji 🧭 ünï"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_any_name_round_trips_through_the_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / "events.toml"
    ev = make_event({"name": name, "topic": "gun_control", "start": START,
                     "kind": "scheduled"})
    save_events(path, [ev, Event("other", "gun_control", START, "sudden")])
    raw = tomllib.loads(path.read_text(encoding="utf-8"))  # what the forecaster reads
    assert sorted(e["name"] for e in raw["event"]) == sorted([name, "other"])
    assert sorted(e.name for e in load_events(path)) == sorted([name, "other"])
    assert load_events(path)[0].start == START


def test_a_lone_surrogate_in_a_name_is_refused_with_the_reason() -> None:
    with pytest.raises(EventError, match="lone UTF-16 surrogate"):
        make_event({"name": "bad \udc80", "topic": "gun_control", "start": START,
                    "kind": "scheduled"})
