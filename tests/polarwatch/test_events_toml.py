"""events.toml is written by a TOML library: no event name can make the file unreadable."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from polarwatch.events import Event, EventError, load_events, make_event, save_events

START = datetime(2026, 3, 4, 18, tzinfo=UTC)
HOSTILE_NAMES = ['tri"""ple', "back\\slash", "]] [[event]] name = 'x'", "emoji 🧭 ünï",
                 "quote ' and \" both"]
# A control character would break the one-line listings (`events list`, chart labels, alerts)
CONTROL_NAMES = ["a\x07b", "a\x7fb", "nul\x00here", "esc\x1b[31m", "line\nbreak",
                 "]]\n[[event]]\nname = 'x'", "tab\there", "para\u2029graph"]


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


@pytest.mark.parametrize("name", CONTROL_NAMES)
def test_a_name_with_a_control_character_is_refused(tmp_path: Path, name: str) -> None:
    import tomli_w

    with pytest.raises(EventError, match=r"name contains \d control character\(s\) \(first"):
        make_event({"name": name, "topic": "gun_control", "start": START, "kind": "scheduled"})
    path = tmp_path / "events.toml"  # in the file too, written by hand or by an older version
    path.write_text(tomli_w.dumps({"event": [{"name": name, "topic": "gun_control",
                                              "start": START, "kind": "sudden"}]}))
    with pytest.raises(EventError, match=r"event #1 .*control character"):
        load_events(path)


def test_a_lone_surrogate_in_a_name_is_refused_with_the_reason() -> None:
    with pytest.raises(EventError, match="lone UTF-16 surrogate"):
        make_event({"name": "bad \udc80", "topic": "gun_control", "start": START,
                    "kind": "scheduled"})


@pytest.mark.parametrize(("data", "says"), [
    (b"\xff", "events.toml: byte 0xff at offset 0 (line 1, column 1) is not UTF-8; save the "
               "file as UTF-8"),
    (b'[[event]]\nname = "caf\xe9"\n', "events.toml: byte 0xe9 at offset 21 (line 2, column 12)"),
])
def test_an_events_file_that_is_not_utf8_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        data: bytes, says: str) -> None:
    """`printf '\\xff' > events.toml; polarwatch forecast` raised UnicodeDecodeError."""
    from polarwatch.cli import main

    (tmp_path / "events.toml").write_bytes(data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLARWATCH_EVENTS_FILE", raising=False)
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    for argv in (["forecast"], ["events", "list"]):
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith(f"polarwatch: error: {tmp_path}/{says}"), err
        assert err.endswith("is not UTF-8; save the file as UTF-8\n") and err.count("\n") == 1


def test_an_events_file_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    save_events(path, [Event("Senate vote", "gun_control", START, "scheduled")])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [e.name for e in load_events(path)] == ["Senate vote"]
