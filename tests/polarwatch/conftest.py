"""Shared by the CLI tests: the whole `polarwatch` parser, and what a refused command line says."""

from __future__ import annotations

import argparse

import pytest

from polarwatch.cli import build_parser


@pytest.fixture(scope="module")
def parser() -> argparse.ArgumentParser:
    return build_parser()


def parse_error(parser: argparse.ArgumentParser, argv: list[str],
                capsys: pytest.CaptureFixture[str]) -> str:
    """What `argv` writes to stderr; it must be refused with exit status 2."""
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err
