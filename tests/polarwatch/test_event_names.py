"""Event names that look alike are one name: "café" typed with a composed or a decomposed accent
is one event (NFC), and a new name may not hold the invisible bidi and zero-width characters
that reorder or hide what `events list`, a chart label and an alert show; one already stored
is listed with them escaped."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w

from forecast.event_calendar import add_event, list_events
from polarwatch.cli import main
from polarwatch.events import INVISIBLE, EventError, load_events, make_event, remove_event

START = datetime(2026, 3, 4, 18, tzinfo=UTC)
COMPOSED = "caf\u00e9"  # é as one code point
DECOMPOSED = "cafe\u0301"  # e + COMBINING ACUTE ACCENT: looks the same


def fields(name: str, topic: str = "gun_control") -> dict[str, object]:
    return {"name": name, "topic": topic, "start": START, "end": None, "kind": "sudden"}


def write(path: Path, *names: str) -> Path:
    """A calendar file as a hand edit or an older version may have left it."""
    path.write_text(tomli_w.dumps({"event": [
        {"name": n, "topic": "gun_control", "start": START, "kind": "sudden"} for n in names]}),
        encoding="utf-8")
    return path


@pytest.fixture()
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`polarwatch events` run in an empty directory (no topics file: topics not checked)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLARWATCH_EVENTS_FILE", raising=False)
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    return tmp_path / "events.toml"


def test_composed_and_decomposed_spellings_are_one_event(tmp_path: Path) -> None:
    assert COMPOSED != DECOMPOSED and unicodedata.normalize("NFC", DECOMPOSED) == COMPOSED
    path = tmp_path / "events.toml"
    add_event(path, fields(DECOMPOSED), None)
    assert [e.name for e in load_events(path)] == [COMPOSED]  # stored in NFC
    with pytest.raises(Exception, match="already has 'café' on 'gun_control'; use --replace"):
        add_event(path, fields(COMPOSED), None)
    assert [e.topic for e in list_events(path, "gun_control", None)] == ["gun_control"]
    remove_event(path, "gun_control", DECOMPOSED)  # the other spelling finds it
    assert load_events(path) == []


def test_a_decomposed_name_in_the_file_is_found_by_the_composed_one(tmp_path: Path) -> None:
    path = write(tmp_path / "events.toml", DECOMPOSED)
    assert [e.name for e in load_events(path)] == [COMPOSED]
    remove_event(path, "gun_control", COMPOSED)
    assert load_events(path) == []


def test_a_file_with_both_spellings_is_one_line_that_says_so(tmp_path: Path) -> None:
    path = write(tmp_path / "events.toml", COMPOSED, DECOMPOSED)
    with pytest.raises(EventError) as info:
        load_events(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: two events named 'café' on topic 'gun_control'")
    assert "two Unicode forms" in msg and "\n" not in msg


def test_a_file_naming_one_event_twice_says_which_file_and_what_to_do(tmp_path: Path) -> None:
    """A hand-edited calendar with the same event twice said only "two events named 'a' on
    topic 'gun_control'": not which file, nor what to do."""
    path = write(tmp_path / "events.toml", "a", "a")
    with pytest.raises(EventError) as info:
        load_events(path)
    assert str(info.value) == (f"{path}: two events named 'a' on topic 'gun_control'; delete "
                               f"or rename one in the file")


@pytest.mark.parametrize("name", ["\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # Persian ZWNJ
                                  "Pride \U0001f3f3\ufe0f\u200d\U0001f308 march"])  # emoji ZWJ
def test_joiners_that_spelling_and_emoji_need_are_kept(name: str) -> None:
    """A review: ZWNJ (Persian) and ZWJ (emoji sequences) were refused as invisible."""
    assert make_event(fields(name)).name == name


@pytest.mark.parametrize("ch", sorted(INVISIBLE))
def test_a_new_name_with_an_invisible_character_is_refused(ch: str) -> None:
    code = re.escape(f"U+{ord(ch):04X} {unicodedata.name(ch)}")
    with pytest.raises(EventError, match=f"name contains 1 invisible bidi or zero-width "
                                         f"character\\(s\\) \\(first {code} at character 5 "
                                         f"of 12;"):
        make_event(fields(f"evil{ch}gnp.exe"))
    with pytest.raises(EventError, match=f"topic contains .* {code} at character 4 of"):
        make_event(fields("vote", f"gun{ch}control"))


def test_events_add_refuses_a_bidi_override_in_one_line(
        cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["events", "add", "evil\u202egnp.exe", "--topic", "gun_control", "--start",
               "2026-03-04", "--kind", "sudden"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "\u202e" not in err, err
    assert "U+202E RIGHT-TO-LEFT OVERRIDE at character 5 of 12" in err
    assert not cli.exists()


def test_a_stored_name_is_listed_with_its_invisible_characters_escaped(
        cli: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(cli, "evil\u202egnp.exe", "zero\u200bwidth", "joined\ufeff")
    assert main(["events", "list"]) == 0
    out = capsys.readouterr().out
    assert not set(out) & INVISIBLE, out
    assert out.splitlines()[0].endswith("  evil\\u202egnp.exe")
    assert "zero\\u200bwidth" in out and "joined\\ufeff" in out
    # and it can still be removed by its name, as stored
    assert main(["events", "remove", "evil\u202egnp.exe", "--topic", "gun_control"]) == 0
    assert [e.name for e in load_events(cli)] == ["joined\ufeff", "zero\u200bwidth"]
