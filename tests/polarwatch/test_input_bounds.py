"""Input past what the parsers can hold is refused in one line: a `--since/--until` time UTC
cannot hold or a duration back past 0001-01-01 (exit 2, like `report`), and a TOML file nested
too deeply for tomllib (polarwatch.toml, topics.toml, events.toml) instead of a traceback."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polarwatch import argtypes
from polarwatch.cli import main
from polarwatch.config import load_config
from polarwatch.errors import ConfigError
from polarwatch.events import EventError, load_events
from polarwatch.topics import load_topics

DEEP = "x = " + "[" * 500 + "]" * 500 + "\n"  # RecursionError in tomllib
TOPIC = ('[[topic]]\nid = "gun_control"\nname = "Gun control"\npro = "For stricter laws."\n'
         'anti = "Against them."\n')


@pytest.mark.parametrize(("text", "says"), [
    ("99999999d", "99999999d reaches back 99,999,999 days from now, before 0001-01-01"),
    ("9999999999999d", "9999999999999d reaches back before 0001-01-01"),
    ("9999-12-31T23:59:59-05:00", "is outside the times UTC can hold (0001-01-01 to 9999-12-31"),
    ("0001-01-01T00:00:00+05:00", "is outside the times UTC can hold (0001-01-01 to 9999-12-31"),
    ("0d", "0d is 0: a duration back must be above 0"),
])
def test_a_time_out_of_range_is_refused_by_the_option_type(text: str, says: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        argtypes.moment(text)
    assert says in str(caught.value) and "\n" not in str(caught.value)


def test_times_at_the_edges_of_the_range_are_kept() -> None:
    assert argtypes.moment("0001-01-01") == datetime(1, 1, 1, tzinfo=UTC)
    assert argtypes.moment("9999-12-31T23:59:59") == datetime(9999, 12, 31, 23, 59, 59,
                                                              tzinfo=UTC)
    assert argtypes.moment("7d") == timedelta(days=7)
    assert argtypes.moment("2026-03-01T05:00:00+05:00") == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["99999999d", "9999-12-31T23:59:59-05:00",
                                  "0001-01-01T00:00:00+05:00"])
def test_relabel_refuses_them_in_one_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> None:
    (tmp_path / "polarwatch.toml").write_text('[warehouse]\npath = "w.duckdb"\n')
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(tmp_path / "polarwatch.toml"), "relabel", "--dry-run",
              "--since", text])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "OverflowError" not in err
    assert err.strip().splitlines()[-1].startswith("polarwatch relabel: error: argument --since:")


def test_back_from_a_reference_past_year_1_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"--since 700000d reaches back 700,000 days from "
                                          r"1700-01-01, before 0001-01-01"):
        argtypes.back_from(datetime(1700, 1, 1, tzinfo=UTC), timedelta(days=700_000),
                           "--since 700000d")


def test_a_too_deeply_nested_polarwatch_toml_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "polarwatch.toml"
    path.write_text(DEEP)
    with pytest.raises(ConfigError, match=f"{path}: invalid TOML: arrays or inline tables "
                                          f"nested too deeply to read"):
        load_config(path, env={})


def test_a_too_deeply_nested_topics_toml_is_one_config_error(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(DEEP + TOPIC)
    with pytest.raises(ConfigError, match=f"{path}: invalid TOML: arrays or inline tables "
                                          f"nested too deeply"):
        load_topics(path)


def test_a_too_deeply_nested_events_toml_is_one_event_error(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    path.write_text(DEEP)
    with pytest.raises(EventError, match=f"{path}: invalid TOML: arrays or inline tables "
                                         f"nested too deeply"):
        load_events(path)


def test_the_cli_says_so_in_one_line_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "polarwatch.toml").write_text(DEEP)
    assert main(["--config", str(tmp_path / "polarwatch.toml"), "relabel", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "RecursionError" not in err and "Traceback" not in err
    assert "nested too deeply to read" in err and len(err.strip().splitlines()) == 1


def test_a_config_or_topics_path_that_is_no_regular_file_is_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--config` naming a FIFO hung for good (the read waits for a writer), `/dev/zero` read
    until memory ran out, `/dev/null` was taken for an empty file (the defaults, silently), and
    a directory was "Is a directory: '.'"; a topics_file of "" the same, naming no key."""
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO (named pipe)"), (Path("/dev/null"), "a character device"),
                       (tmp_path, "a directory")):
        assert main(["--config", str(path), "schema"]) == 2
        err = capsys.readouterr().err
        assert err == (f"polarwatch: error: {path} is {kind}, not a regular file; name the "
                       f"config file (--config or $POLARWATCH_CONFIG)\n")
    (tmp_path / "polarwatch.toml").write_text('[extractor]\ntopics_file = ""\n')
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "polarwatch.toml", env={}).load_topics()
    assert str(caught.value) == (f"{tmp_path} is a directory, not a regular file; set "
                                 f"[extractor] topics_file (POLARWATCH_EXTRACTOR_TOPICS_FILE) "
                                 f"to the topics file")


def test_a_symbolic_link_to_nothing_is_named_as_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config path that is a symlink loop or points at nothing said "config file loop does
    not exist", and `events --file loop list` said "0 event(s)": a link the user made, read
    as a file not made yet. A link to a calendar not made yet stays empty (`add` makes it)."""
    loop, dangling = tmp_path / "loop", tmp_path / "dangling"
    loop.symlink_to(loop)
    dangling.symlink_to(tmp_path / "nothere.toml")
    for path, what in ((loop, "a symbolic link in a loop (it leads back to itself)"),
                       (dangling, f"a symbolic link to '{tmp_path / 'nothere.toml'}', which "
                                  f"does not exist")):
        assert main(["--config", str(path), "schema"]) == 2
        assert capsys.readouterr().err == (f"polarwatch: error: {path} is {what}; name the "
                                           f"config file (--config or $POLARWATCH_CONFIG)\n")
    with pytest.raises(EventError, match=r"loop is a symbolic link in a loop \(it leads back"):
        load_events(loop)
    assert load_events(dangling) == []
