"""One set of CLI conventions (issue 24): broker subcommands with their own options, one -v/-q
and one progress switch (global), one duration grammar for time options, one help format, and
no library code in the stages' cli.py modules."""

from __future__ import annotations

import argparse
import ast
import logging
from pathlib import Path

import pytest

from polarwatch.console import setup_logging, show_progress
from tests.polarwatch.conftest import parse_error

REPO = Path(__file__).resolve().parents[2]
STAGES = ("ingest", "stream", "scoring", "forecast", "dashboard", "demo")




def _help(parser: argparse.ArgumentParser, argv: list[str],
          capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        parser.parse_args([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())  # one line: argparse wraps at any space


def test_broker_prune_takes_its_own_options(parser: argparse.ArgumentParser) -> None:
    args = parser.parse_args(["broker", "prune", "--dry-run", "--every", "90s"])
    assert (args.action, args.dry_run, args.every) == ("prune", True, 90.0)
    once = parser.parse_args(["broker", "prune"])
    assert (once.dry_run, once.every) == (False, None)
    for action in ("start", "stop", "status"):
        assert parser.parse_args(["broker", action]).action == action


@pytest.mark.parametrize("action", ["start", "stop", "status"])
@pytest.mark.parametrize("flag", [["--dry-run"], ["--every", "60s"]])
def test_a_prune_option_on_another_broker_action_is_an_error(
        parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str], action: str,
        flag: list[str]) -> None:
    assert f"unrecognized arguments: {flag[0]}" in parse_error(parser, ["broker", action, *flag],
                                                          capsys)


def test_a_missing_or_unknown_broker_action_is_named(
        parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str]) -> None:
    assert "required: ACTION" in parse_error(parser, ["broker"], capsys)
    err = parse_error(parser, ["broker", "restart"], capsys)
    assert "invalid choice: 'restart'" in err and "'prune'" in err


@pytest.mark.parametrize(("argv", "dest", "seconds"), [
    (["broker", "prune", "--every", "1 hour"], "every", 3600.0),
    (["ingest", "jetstream", "--duration", "1.5h"], "duration", 5400.0),
    (["ingest", "jetstream", "--confirm-interval", "500 seconds"], "confirm_interval", 500.0),
    (["ingest", "jetstream"], "confirm_interval", 2.0),  # the default, "2s"
    (["ingest", "mastodon", "--instance", "https://x", "--public", "--duration", "2m"],
         "duration", 120.0),
    (["demo", "--forecast-every", "5 minutes"], "forecast_every", 300.0),
    (["demo"], "forecast_every", 60.0),  # the default, "60s"
])
def test_time_options_use_the_duration_grammar(parser: argparse.ArgumentParser,
                                               argv: list[str], dest: str,
                                               seconds: float) -> None:
    assert getattr(parser.parse_args(argv), dest) == seconds


@pytest.mark.parametrize("argv", [
    ["broker", "prune", "--every", "0"],  # once is the default: no "0 = once"
    ["broker", "prune", "--every", "60"],  # a bare number has no unit
    ["ingest", "jetstream", "--confirm-interval", "2"],
    ["demo", "--forecast-every", "soon"],
])
def test_a_time_option_without_a_unit_or_zero_is_refused(
        parser: argparse.ArgumentParser, capsys: pytest.CaptureFixture[str],
        argv: list[str]) -> None:
    assert "expected a positive duration" in parse_error(parser, argv, capsys)


def test_verbosity_and_progress_are_global(parser: argparse.ArgumentParser,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert parser.parse_args(["-v", "stream"]).log_level == 1
    assert parser.parse_args(["-q", "stream"]).log_level == -1
    assert parser.parse_args(["stream"]).log_level == 0
    assert parser.parse_args(["--progress", "stream"]).progress is True
    assert parser.parse_args(["--no-progress", "stream"]).progress is False
    assert parser.parse_args(["stream"]).progress is None
    assert "not allowed with argument" in parse_error(parser, ["-v", "-q", "stream"], capsys)
    for argv in (["ingest", "file", "x.jsonl", "-v"], ["label", "x.csv", "-q"],
                 ["label", "x.csv", "--progress"], ["train", "--task", "affect", "d.csv", "-o",
                                                    "h.npz", "--progress"],
                 ["ingest", "file", "x.jsonl", "--progress"]):
        err = parse_error(parser, argv, capsys)
        assert f"{argv[-1]}: global, give before the command" in err, err


@pytest.mark.parametrize(("level", "progress", "tty", "shown"), [
    (0, None, False, False), (0, None, True, True),  # auto: a bar on a terminal only
    (0, True, False, True), (0, False, True, False),
    (-1, True, True, False), (-1, None, True, False),  # -q: never
    (1, None, True, True),
])
def test_one_progress_switch(monkeypatch: pytest.MonkeyPatch, level: int,
                             progress: bool | None, tty: bool, shown: bool) -> None:
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert show_progress(argparse.Namespace(log_level=level, progress=progress)) is shown


def test_global_verbose_logs_every_confirmation_of_ingest() -> None:
    """What `ingest … -v` did: ingest.sources.base's confirmations are DEBUG records."""
    setup_logging(1, ["ingest"])
    try:
        assert logging.getLogger("ingest.sources.base").isEnabledFor(logging.DEBUG)
        setup_logging(0, ["ingest"])
        assert not logging.getLogger("ingest.sources.base").isEnabledFor(logging.DEBUG)
    finally:
        setup_logging(0, ["ingest"])


def test_help_shows_types_defaults_and_environment(parser: argparse.ArgumentParser,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    prune = _help(parser, ["broker", "prune"], capsys)
    assert "--every DURATION run again this often until stopped [a duration: 30s, 10m, 1h, " \
           "7d; default: once]" in prune
    synthetic = _help(parser, ["ingest", "synthetic"], capsys)
    assert "--days N simulated days [a whole number >= 1; default: 14]" in synthetic
    label = _help(parser, ["label"], capsys)
    assert ("extractor backend [default: [extractor] backend; env: "
            "POLARWATCH_EXTRACTOR_BACKEND]") in label
    assert "--batch-size N posts per backend call [a whole number >= 1; default: 256]" in label
    assert "[a number > 0, or max; default: max: no waiting]" in _help(
        parser, ["ingest", "file"], capsys)
    assert "--port PORT port to serve on [1-65535; default: 8501]" in _help(
        parser, ["dashboard"], capsys)
    top = _help(parser, [], capsys)
    assert "--config FILE config file [default: ./polarwatch.toml; env: POLARWATCH_CONFIG]" in top
    for argv in (["ingest", "file"], ["ingest", "jetstream"], ["label"], ["train"], ["demo"],
                 ["stream"], ["broker", "prune"]):
        text = _help(parser, argv, capsys)
        assert "--verbose" not in text and "--quiet" not in text and "--progress" not in text


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_imports_a_stage_cli_module() -> None:
    """The demo and the benchmarks compose library modules; a cli.py only parses and prints."""
    cli_modules = {f"{stage}.cli" for stage in STAGES}
    offenders = {}
    for folder in (*STAGES, "benchmarks", "polarwatch"):
        for path in (REPO / folder).rglob("*.py"):
            if bad := _imports(path) & cli_modules:
                offenders[str(path.relative_to(REPO))] = sorted(bad)
    assert offenders == {}


@pytest.mark.parametrize("stage", ["ingest", "stream", "scoring", "dashboard", "demo"])
def test_the_cli_modules_stay_thin(stage: str) -> None:
    lines = (REPO / stage / "cli.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 155, f"{stage}/cli.py has {lines} lines: move library code out"
