"""`--config FILE` (a global option that takes a value) given after the command: one error line
that says it goes before the command, with the corrected command line, exit 2, for every
command. It was "unrecognized arguments: --config F.toml" with no hint, or, when a positional
of the command took the file name (`train`'s DATA, `alerts test`'s URL, `ingest file`'s paths),
"unrecognized arguments: --config"."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from polarwatch.cli import build_parser
from tests.polarwatch.conftest import parse_error

REPO = Path(__file__).resolve().parents[2]


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
              ) -> list[tuple[str, ...]]:
    """Every command the parser runs (`label`, `broker prune`, `alerts test`, ...)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [found for sub in subs for name, child in sub.choices.items()
            for found in _commands(child, (*path, name))]


COMMANDS = _commands(build_parser())


def _error(parser: argparse.ArgumentParser, argv: list[str],
           capsys: pytest.CaptureFixture[str]) -> str:
    errors = [line for line in parse_error(parser, argv, capsys).splitlines() if "error:" in line]
    assert len(errors) == 1, errors
    return errors[0]


def test_every_stage_command_is_covered() -> None:
    assert {c[0] for c in COMMANDS} >= {"demo", "broker", "ingest", "label", "train", "stream",
                                       "relabel", "forecast", "detect", "alerts", "events",
                                       "report", "dashboard", "schema"}
    assert ("alerts", "test") in COMMANDS and ("broker", "prune") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_config_after_any_command_names_the_corrected_command_line(
        parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str],
        command: tuple[str, ...]) -> None:
    line = _error(parser, [*command, "--config", "site.toml"], capsys)
    fixed = shlex.join(["polarwatch", "--config", "site.toml", *command])
    assert f"--config: global, give before the command: `{fixed}`" in line, line


@pytest.mark.parametrize(("argv", "fixed"), [
    # the report's case
    (["label", "x.jsonl", "--config", "F"], "polarwatch --config F label x.jsonl"),
    (["label", "x.jsonl", "--config=F"], "polarwatch --config=F label x.jsonl"),
    # a positional of the command took the file name: --config alone was "unrecognized"
    (["train", "--task", "agreement", "--config", "F"],
     "polarwatch --config F train --task agreement"),
    (["alerts", "test", "--config", "F"], "polarwatch --config F alerts test"),
    (["ingest", "file", "--config", "F", "a.jsonl", "b.jsonl"],
     "polarwatch --config F ingest file a.jsonl b.jsonl"),
    # several, with the globals already in place kept first; a file name with a space quoted
    (["-q", "label", "x.csv", "--config", "my site.toml", "--progress"],
     "polarwatch -q --config 'my site.toml' --progress label x.csv"),
    (["label", "x.jsonl", "--config"], "polarwatch --config FILE label x.jsonl"),
])
def test_the_hint_is_the_command_line_to_run(parser: argparse.ArgumentParser,
                                             capsys: pytest.CaptureFixture[str],
                                             argv: list[str], fixed: str) -> None:
    line = _error(parser, argv, capsys)
    assert line.endswith(f"global, give before the command: `{fixed}`"), line
    assert "unrecognized arguments" not in line, line  # nothing else was wrong


def test_the_corrected_command_line_parses(parser: argparse.ArgumentParser,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(parser, ["train", "--task", "agreement", "d.jsonl", "-o", "h.npz",
                           "--config", "site.toml", "-v"], capsys)
    fixed = shlex.split(line.rsplit("`", 2)[1])
    args = parser.parse_args(fixed[1:])
    assert (args.config, args.log_level, args.task, args.data, args.output) == (
        "site.toml", 1, "agreement", "d.jsonl", "h.npz")


def test_another_mistake_is_named_beside_the_hint(parser: argparse.ArgumentParser,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    line = _error(parser, ["label", "x.csv", "--config", "F", "--bogus"], capsys)
    assert "unrecognized arguments:" in line and "--bogus" in line
    assert "`polarwatch --config F label x.csv --bogus`" in line
    line = _error(parser, ["ingest", "mastodon", "--config", "F"], capsys)
    assert "required: --instance" in line and "`polarwatch --config F ingest mastodon`" in line


def test_the_command_exits_2_with_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text('{"id": "a", "text": "t", "topic": "gun_control"}\n')
    out = subprocess.run([sys.executable, "-m", "polarwatch.cli", "label", "x.jsonl",
                          "--config", str(REPO / "polarwatch.toml")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == "", out
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert errors == [f"polarwatch: error: --config: global, give before the command: "
                      f"`polarwatch --config {REPO / 'polarwatch.toml'} label x.jsonl`"], out.stderr
