"""`report` leaves out the windows `forecast` leaves out: those starting later than a post may be
dated now (the clock plus [ingest] max_future_skew_hours), and says so. gun_control windows dated
2200 made the report's `--since 7d` count back from 2200 and hide every real window."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecast.reports import write_report
from forecast.run import run_forecast
from polarwatch.config import load_config
from polarwatch.warehouse import init_schema
from tests.forecast.test_forecast import seed, window_rows

REPO = Path(__file__).resolve().parents[2]
FUTURE = datetime(2200, 1, 1, tzinfo=UTC)


def test_the_report_leaves_out_the_windows_the_forecast_leaves_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    live = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    rng = np.random.default_rng(6)
    seed(path, window_rows("gun_control", 4 + rng.normal(0, 0.2, 40), start=live)
         + window_rows("gun_control", np.full(20, 9.0), start=FUTURE))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    cfg = load_config(REPO / "polarwatch.toml")
    summary = run_forecast(cfg, events=[], alerts=False)
    note = summary.trimmed["gun_control"]
    assert note.startswith("20 window(s) from 2200-01-01 00:00 UTC on left out")
    with caplog.at_level(logging.WARNING, logger="forecast"):
        text = write_report(cfg, tmp_path / "r.html", since="7d").read_text()
    newest = live + timedelta(hours=39)
    assert f"newest window {newest:%Y-%m-%d %H:%M} UTC" in text
    assert "2199" not in text and "2200-01-01 19:00" not in text
    assert f"gun_control: {note}" in text  # the same words as the forecast's
    assert f"gun_control: {note}" in caplog.text
