"""`forecast` on a topic whose windows span more than a model holds (an old archive, then live
data): it is fitted on its newest windows, and every other topic is still written."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.run import run_forecast
from forecast.series import MAX_SERIES_WINDOWS, newest_stretch
from polarwatch.warehouse import init_schema
from tests.forecast.test_forecast import cfg_for, forecasts, seed, window_rows

ARCHIVE = datetime(2005, 1, 1, tzinfo=UTC)
LIVE = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_topic_with_an_old_archive_is_fitted_on_its_live_stretch(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """60 windows in 2005 and 60 in 2026 made a 184,110-window grid: the Kalman filter asked
    for gigabytes and nothing was written for any topic."""
    rng = np.random.default_rng(3)
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("gun_control", 3 + rng.normal(0, 0.2, 30), start=ARCHIVE)
         + window_rows("gun_control", 3 + rng.normal(0, 0.2, 40), start=LIVE)
         + window_rows("climate", 3 + rng.normal(0, 0.2, 40), start=LIVE))
    caplog.set_level(logging.WARNING, logger="forecast")
    summary = run_forecast(cfg_for(path), events=[], alerts=False)
    assert summary.topics == 2 and summary.skipped == {}
    assert list(summary.trimmed) == ["gun_control"]
    note = summary.trimmed["gun_control"]
    assert note.startswith("kept its newest 40 window(s) from 2026-01-01 00:00:00+00:00 "
                           "only: from its first window, 2005-01-01 00:00:00+00:00, its 0 days "
                           "01:00:00 grid would span 184,")
    assert f"more than the {MAX_SERIES_WINDOWS:,} a model holds; the 30 older window(s)" in note
    assert any(note in m for m in caplog.messages)
    rows = forecasts(path)
    gun = rows[rows["topic"] == "gun_control"]
    assert gun["ts"].min() == pd.Timestamp(LIVE) and len(gun) == 40 + 12
    assert len(rows[rows["topic"] == "climate"]) == 40 + 12


def test_a_cut_topic_too_thin_to_fit_is_not_said_to_be_fitted(tmp_path: Path) -> None:
    """A topic cut to its newest windows and then skipped (too few points there) was "skip
    climate: 3 observed point(s), …; fitted on its newest 3 window(s) …": skipped and fitted
    in one line."""
    rng = np.random.default_rng(4)
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("climate", 3 + rng.normal(0, 0.2, 30), start=ARCHIVE)
         + window_rows("climate", 3 + rng.normal(0, 0.2, 3), start=LIVE))
    summary = run_forecast(cfg_for(path), events=[], alerts=False)
    reason = summary.skipped["climate"]
    assert reason.startswith("3 observed point(s), at least 10 are needed"), reason
    assert "; kept its newest 3 window(s) from 2026-01-01" in reason and "fitted" not in reason


def test_the_newest_stretch_is_cut_before_any_grid_is_built() -> None:
    freq = pd.Timedelta(seconds=1)
    ts = pd.Series(pd.to_datetime(["2001-01-01 00:00:00", "2001-01-01 00:00:01",
                                   "2025-01-01 00:00:00", "2025-01-01 00:00:02"], utc=True))
    group = pd.DataFrame({"ts": ts, "y": [1.0, 2.0, 3.0, 4.0]})
    kept, note = newest_stretch(group, freq, max_windows=5)
    assert kept["y"].tolist() == [3.0, 4.0] and note is not None and "2 older" in note
    live, none = newest_stretch(group.iloc[2:], freq, max_windows=5)
    assert none is None and len(live) == 2
    steady = pd.DataFrame({"ts": pd.date_range("2025-01-01", periods=10, freq="s", tz="UTC"),
                           "y": np.arange(10.0)})
    newest, note = newest_stretch(steady, freq, max_windows=5)  # no gap: the newest 5
    assert newest["y"].tolist() == [5.0, 6.0, 7.0, 8.0, 9.0] and "5 older" in (note or "")


def test_windows_dated_later_than_a_post_may_be_are_left_out(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A post forged to 2262-04-11 (stored before the ingest skew was capped) made a window
    whose end pandas cannot hold: `forecast` stopped with OutOfBoundsDatetime. Windows starting
    later than a post may be dated now are left out, and said to be."""
    rng = np.random.default_rng(4)
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    live = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - pd.Timedelta(days=3)
    seed(path, window_rows("climate", 3 + rng.normal(0, 0.2, 48), start=live)
         + window_rows("climate", np.array([9.0]), start=datetime(2262, 4, 11, 22, tzinfo=UTC)))
    caplog.set_level(logging.WARNING, logger="forecast")
    summary = run_forecast(cfg_for(path), events=[], alerts=False)
    assert summary.topics == 1 and summary.skipped == {}
    note = summary.trimmed["climate"]
    assert note.startswith("1 window(s) from 2262-04-11 22:00 UTC on left out: they start "
                           "after "), note
    assert note in caplog.text
    stored = forecasts(path)
    assert stored["ts"].max() < pd.Timestamp("2100-01-01", tz="UTC")


def test_a_topic_with_windows_of_two_lengths_is_skipped_and_says_how_to_fix_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stream restarted after [aggregate] window changed from 1h to 30m, without --reset:
    `forecast` stopped with a ValueError traceback for every topic. Now that topic is skipped
    in one line naming both lengths and the fix; the other topics are forecast."""
    rng = np.random.default_rng(5)
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    restart = LIVE + pd.Timedelta(hours=48, minutes=30)
    seed(path, window_rows("climate_change", 3 + rng.normal(0, 0.2, 48), start=LIVE)
         + window_rows("climate_change", 3 + rng.normal(0, 0.2, 20), start=restart,
                       step=pd.Timedelta(minutes=30))
         + window_rows("gun_control", 3 + rng.normal(0, 0.2, 48), start=LIVE))
    caplog.set_level(logging.WARNING, logger="forecast")
    summary = run_forecast(cfg_for(path), events=[], alerts=False)
    assert summary.topics == 1 and list(summary.skipped) == ["climate_change"]
    reason = summary.skipped["climate_change"]
    assert "windows of 2 lengths: 1h (48 windows) and 30min (20 windows)" in reason, reason
    assert "2026-01-03 00:30 UTC is not on the 1h grid" in reason, reason
    assert "polarwatch stream --reset" in reason
    assert [m for m in caplog.messages if "climate_change" in m] == [
        f"  skip climate_change: {reason}"]
    rows = forecasts(path)
    assert set(rows["topic"]) == {"gun_control"}
