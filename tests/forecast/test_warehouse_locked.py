"""A warehouse whose lock another process keeps: `forecast` and `report` stop in one line naming
the holder's PID and what to do (exit 2), and `report --every` logs the run and carries on.
The holder is a real process with a real DuckDB connection."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from forecast.reports import report_loop
from polarwatch import warehouse
from polarwatch.cli import main
from polarwatch.config import load_config
from polarwatch.warehouse import init_schema
from tests.forecast.test_forecast import seed, window_rows
from tests.lock_holder import holding

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    p = tmp_path / "pw.duckdb"
    init_schema(p)
    seed(p, window_rows("gun_control", 4 + np.random.default_rng(1).normal(0, 0.2, 30)))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(p))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 4)  # 0.1 s of retries, not 5 s
    return p


@pytest.fixture()
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    with holding(path) as proc:
        yield proc


@pytest.mark.parametrize("command", [["forecast"], ["report", "-o", "{tmp}/r.html"]])
def test_a_locked_warehouse_is_one_line_naming_the_holder(
        command: list[str], path: Path, holder: subprocess.Popen[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--config", str(REPO / "polarwatch.toml"),
            *[a.format(tmp=tmp_path) for a in command]]
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("polarwatch: error:")]
    assert rc == 2 and len(lines) == 1, err
    assert f"{path} is locked" in lines[0] and f"PID {holder.pid}" in lines[0]
    assert f"polarwatch {command[0]}" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_the_report_loop_logs_a_locked_run_and_carries_on(
        path: Path, holder: subprocess.Popen[str], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(REPO / "polarwatch.toml")
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the holder lets go between the two runs
        waits.append(seconds)
        holder.kill()
        holder.wait()

    with caplog.at_level(logging.WARNING):
        paths = report_loop(cfg, output=tmp_path / "r.html", every="1s", count=2,
                            sleep=sleep)
    assert paths == [tmp_path / "r.html"] and len(waits) == 1
    [line] = [r.getMessage() for r in caplog.records if "report run" in r.getMessage()]
    assert line.startswith("report run 1 of 2 not written: ") and f"PID {holder.pid}" in line
    assert line.endswith("the next run is in 1s")
