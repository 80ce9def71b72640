"""cli.md: `--help` shows each option's help, the type of a typed value, its default and, where
it falls back to a config key, that key and its environment variable. `report --since /
--every / --count` showed neither type nor default, `events add --kind` and `events remove
--topic` had no help at all, `alerts test --format` named its key but not its variable."""

from __future__ import annotations

import argparse

import pytest

from polarwatch.cli import build_parser, main

FORECAST_COMMANDS = (("forecast",), ("detect",), ("alerts", "test"), ("events", "list"),
                     ("events", "add"), ("events", "remove"), ("report",))


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _parser(*command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = sub.choices[name]
    return parser


def test_every_option_of_the_forecast_commands_has_help() -> None:
    missing = [(" ".join(command), action.option_strings[-1])
               for command in FORECAST_COMMANDS for action in _parser(*command)._actions
               if action.option_strings and not action.help]
    assert missing == []


def test_report_time_options_show_type_and_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "report")
    assert "--since T|DURATION" in text
    assert "[a date, an ISO time or a duration; default: all]" in text
    assert "--every DURATION" in text and "[a duration: 30s, 10m, 1h, 7d; default: once]" in text
    assert "--count N" in text and "[a whole number >= 1; default: no limit]" in text
    assert "0 * * * * cd /path/to/polarwatch" in text  # the cron epilog is still there


def test_event_kind_and_topic_are_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert "scheduled: known in advance" in _help(capsys, "events", "add")
    assert "--topic TOPIC topic id of the event" in _help(capsys, "events", "remove")


def test_alerts_test_format_names_its_key_and_variable(
        capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, "alerts", "test")
    assert "(default: [alerts] format, standard) [env: POLARWATCH_ALERTS_FORMAT]" in text
