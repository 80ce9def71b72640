"""Typing mistakes: every wrong invocation ends in one line naming the value and what is allowed,
exit code 2, and no traceback (each was a traceback or exit 0 before)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polarwatch.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory with the shipped config and a regular hourly series, no warehouse."""
    root = tmp_path_factory.mktemp("project")
    for name in ("polarwatch.toml", "topics.toml", "events.toml"):
        shutil.copy(REPO / name, root / name)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [f"{(start + timedelta(hours=i)).isoformat()},{5 + (i % 24) / 10 + (30 if i == 300 else 0)}"
            for i in range(400)]
    (root / "series.csv").write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(("args", "says"), [
    (["detect", "series.csv", "--threshold", "1.5"], "--threshold: 1.5 is outside (0, 1), both ends excluded"),
    (["detect", "series.csv", "--threshold", "0"], "--threshold: 0 is outside (0, 1), both ends excluded"),
    (["detect", "series.csv", "--threshold", "nan"], "is not a finite number"),
    (["detect", "series.csv", "--refractory", "-3"], "--refractory: expected a positive duration"),
    (["detect", "series.csv", "--refractory", "24"], "--refractory: expected a positive duration"),
    (["detect", "series.csv", "--crossing", "inf"], "--crossing: 'inf' is not a finite number"),
    (["detect", "series.csv", "--resample", "often"], "--resample: expected a positive duration"),
    (["detect", "series.csv", "--resample", "0"], "--resample: expected a positive duration"),
    (["detect", "series.csv", "--resample=-5min"], "--resample: expected a positive duration"),
    (["detect", "series.csv", "--resample", "0.0000001s"],
     "--resample: '0.0000001s' is shorter than 1 microsecond, the finest interval"),
    (["detect", "series.csv", "--snap", "--resample", "1h"],
     "argument --resample: not allowed with argument --snap"),
    (["detect", "series.csv", "--agg", "sum"],  # --agg alone did nothing, silently
     "--agg sum says how rows that share a grid point are combined, so it needs --snap or "
     "--resample FREQ"),
    (["detect", "series.csv", "--snap", "--agg", "median"], "--agg: invalid choice: 'median'"),
    (["detect", "series.csv", "--resample", "100w"], "--resample 100w is not shorter than the "
     "whole series (16 days 15:00:00 from"),
    (["broker", "prune", "--every", "fast"], "--every: expected a positive duration"),
    (["ingest", "jetstream", "--duration=-5s"], "--duration: expected a positive duration"),
    (["ingest", "jetstream", "--max-posts", "0"], "--max-posts: 0 is below 1"),
    (["ingest", "mastodon", "--instance", "https://x", "--confirm-interval", "0"],
     "--confirm-interval: expected a positive duration"),
    (["broker"], "the following arguments are required: ACTION"),
    (["broker", "restart"], "argument ACTION: invalid choice: 'restart'"),
    (["broker", "start", "--every", "5s"], "unrecognized arguments: --every 5s"),
    (["broker", "status", "--dry-run"], "unrecognized arguments: --dry-run"),
    (["label", "x.csv", "-q"], "-q: global, give before the command"),
    (["ingest", "synthetic", "--days", "0"], "--days: 0 is below 1"),
    (["ingest", "synthetic", "--rate", "-1"], "--rate: -1 is not above 0"),
    (["ingest", "file", "x.jsonl", "--confirm-every", "ten"], "--confirm-every: 'ten' is not a whole"),
    (["ingest", "file", "x.jsonl", "--format", "xml"], "--format: invalid choice: 'xml'"),
    (["label", "x.csv", "--cascade-threshold", "-1"], "--cascade-threshold: -1 is below 0"),
    (["label", "x.csv", "--batch-size", "0"], "--batch-size: 0 is below 1"),
    (["label", "x.csv", "--llm-budget", "-1"], "--llm-budget: -1 is below 1"),
    (["train", "--task", "mood", "x.csv", "-o", "h.npz"], "--task: invalid choice: 'mood'"),
    (["report", "--every", "hourly"], "--every: expected a positive duration"),
    (["report", "--every", "1h", "--count", "0"], "--count: 0 is below 1"),
    (["alerts", "test", "http://127.0.0.1:9/x", "--attempts", "0"], "--attempts: 0 is below 1"),
    (["alerts", "test", "http://127.0.0.1:9/x", "--format", "slack"], "--format: invalid choice"),
    (["events", "add", "x", "--topic", "t", "--start", "2024-01-01", "--kind", "maybe"],
     "--kind: invalid choice: 'maybe'"),
    (["demo", "--days", "-2"], "--days: -2 is below 1"),
    (["demo", "--port", "http"], "--port: 'http' is not a port number"),
    (["demo", "--forecast-every", "0"], "--forecast-every: expected a positive duration"),
    (["--config", "missing.toml", "forecast"], "missing.toml does not exist"),
    (["detect", "series.csv", "--season", "1"], "--season: '1' is not auto, none or a whole"),
    (["dashboard", "--port", "99999"], "--port: 99999 is not a port number (1-65535)"),
    (["dashboard", "--port", "-1"], "--port: -1 is not a port number (1-65535)"),
    (["stream", "--backend", "nosuch"], "--backend: invalid choice: 'nosuch'"),
    (["label", "x.csv", "--backend", "nosuch"], "--backend: invalid choice: 'nosuch'"),
    (["report"], "does not exist yet: start the stream"),
    (["detect", "series.csv", "-o", "/proc/nope/out.csv"],  # an OSError traceback before
     "-o /proc/nope/out.csv: directory /proc/nope does not exist; create it first"),
    (["detect", "."], "Is a directory: '.'"),
    (["label", ".", "--backend", "lexicon"], "input file . is a directory, not a file"),
    (["relabel", "--since", "2026-03-02", "--until", "2026-03-01"],  # relabelled nothing, rc 0
     "--since 2026-03-02 00:00:00 is not before --until 2026-03-01 00:00:00 (UTC)"),
])
def test_a_mistake_is_one_line_and_exit_2(project: Path, args: list[str], says: str) -> None:
    out = _run(args, project)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and says in errors[0], out.stderr


def test_the_demo_checks_its_webhooks_before_it_starts_anything(project: Path) -> None:
    """A bad [alerts] webhooks entry stopped the demo's forecast only after the broker, Spark and
    the stream had run; now it is the first thing the demo says."""
    out = subprocess.run([sys.executable, "-m", "polarwatch.cli", "demo", "--no-dashboard"],
                         cwd=project, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "POLARWATCH_ALERTS_WEBHOOKS": "ftp://x/T0K3N",
                              "POLARWATCH_BROKER_STATE_DIR": str(project / "no-broker")})
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "[alerts] webhooks entry 1 of 1: webhook URL must start with http" in out.stderr
    assert "java" not in out.stderr and not (project / "no-broker").exists()


def test_a_threshold_below_the_rearm_default_runs(project: Path) -> None:
    """--threshold 0.9 is valid; it raised "rearm (0.99) must be between 0 and the threshold"."""
    out = _run(["detect", "series.csv", "--threshold", "0.9", "-o", "out.csv"], project)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (project / "out.csv").read_text().startswith("timestamp,")


def test_a_warehouse_path_that_is_not_duckdb_is_one_line(project: Path) -> None:
    (project / "junk.duckdb").write_text("not a database\n")
    for target in ("junk.duckdb", "."):
        out = subprocess.run([sys.executable, "-m", "polarwatch.cli", "report"], cwd=project,
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "POLARWATCH_WAREHOUSE_PATH": target})
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
        assert "cannot be opened as the DuckDB warehouse" in out.stderr


def test_detect_on_bytes_that_are_not_utf8_is_one_line(project: Path) -> None:
    """Binary on stdin was a UnicodeEncodeError traceback (stdin escapes the bytes, pandas
    re-encodes them); a file with such bytes was "not a readable CSV" with codec internals."""
    (project / "bad.csv").write_bytes(b"timestamp,value\n2024-01-01,\xff\n")
    for args, stdin in ((["detect", "-"], b"\xff\xfe\x00garbage\n"), (["detect", "bad.csv"], b"")):
        out = subprocess.run([sys.executable, "-m", "polarwatch.cli", *args], cwd=project,
                             input=stdin, capture_output=True, timeout=120)
        err = out.stderr.decode()
        assert out.returncode == 2 and "Traceback" not in err, err[-2000:]
        assert "not UTF-8 text (" in err and "save it as UTF-8" in err
