"""Time-of-week bias (forecast/weekly.py): a weekly habit stops alarming, a spike still does."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.detect import DetectorConfig
from forecast.detect_csv import detect_values
from forecast.weekly import HOUR_SECONDS, WEEK_SECONDS, WeeklyBias
from polarwatch.cli import main

QUARTER = 900.0  # seconds per row of the detector series below
ROWS_PER_DAY = 96
SATURDAY = 5  # day index of the week in the synthetic series (row 0 is day 0)
SPIKE_ROW = int(3.5 * 7 * ROWS_PER_DAY) + 40  # a Wednesday evening in the fourth week


def test_the_bias_is_the_median_of_earlier_weeks_from_the_second_week_on() -> None:
    bias = WeeklyBias(QUARTER)
    at = 10 * HOUR_SECONDS  # the same hour of the week, four rows per hour, four weeks
    seen = [[bias.step(z, week * WEEK_SECONDS + at + k * QUARTER) for k in range(4)]
            for week, z in enumerate((1.0, 3.0, -1.0, 0.0))]
    assert seen[0] == seen[1] == [0.0] * 4  # one earlier week is not enough
    assert seen[2] == [2.0] * 4  # the median of 1 and 3
    assert seen[3] == [1.0] * 4  # the median of 1, 3, -1
    # another hour of the week has its own (unknown) bias
    assert bias.step(0.0, 3 * WEEK_SECONDS + at + HOUR_SECONDS) == 0.0


def test_missing_rows_teach_nothing_and_hourly_series_have_no_bias() -> None:
    bias = WeeklyBias(QUARTER)
    for week in range(3):  # the hour is missing in week 1: its week 0 mean is not counted twice
        z = math.nan if week == 1 else 2.0
        assert bias.step(z, week * WEEK_SECONDS) == 0.0
    assert bias.step(0.0, 3 * WEEK_SECONDS) == 2.0
    hourly = WeeklyBias(3600.0)  # one row per hour and week is noise (module docstring)
    assert not hourly.active
    assert all(hourly.step(2.0, w * WEEK_SECONDS) == 0.0 for w in range(4))
    assert not WeeklyBias(QUARTER, on=False).active


def saturday_market(seed: int) -> np.ndarray:
    """Five weeks of 15-minute data with a daily cycle, busier Saturday mornings (+2 noise sds
    from 08:00 to 12:00 every week) and one spike on a Wednesday evening."""
    rng = np.random.default_rng(seed)
    t = np.arange(5 * 7 * ROWS_PER_DAY) * QUARTER
    y = 10.0 + 3.0 * np.sin(2 * np.pi * t / 86400.0) + rng.normal(0.0, 0.3, len(t))
    day, hour = (t // 86400.0) % 7, (t % 86400.0) / 3600.0
    y[(day == SATURDAY) & (hour >= 8) & (hour < 12)] += 0.6
    y[SPIKE_ROW] += 4.0
    return y


@pytest.mark.parametrize("seed", [1, 2, 3, 6])
def test_a_weekly_habit_stops_alarming_from_the_third_week(seed: int) -> None:
    """Without the bias every one of these series alarms on a later Saturday morning."""
    later_saturdays = {}
    for weekly in (False, True):
        out = detect_values(saturday_market(seed), QUARTER, DetectorConfig(weekly=weekly))
        alarms = [i for i, flag in enumerate(out["flag"]) if flag != "none"]
        assert any(SPIKE_ROW <= i <= SPIKE_ROW + 1 for i in alarms), "the spike must alarm"
        later_saturdays[weekly] = [i for i in alarms if i >= 2 * 7 * ROWS_PER_DAY
                                   and (i // ROWS_PER_DAY) % 7 == SATURDAY]
    assert later_saturdays[False], "the daily season alone alarms on the weekly habit"
    assert later_saturdays[True] == []


@pytest.mark.parametrize("weekly", ["true", "false"])
def test_polarwatch_detect_follows_the_forecast_weekly_setting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], weekly: str) -> None:
    y = saturday_market(seed=1)
    ts = pd.date_range("2024-03-01", periods=len(y), freq="15min")
    src = tmp_path / "market.csv"
    pd.DataFrame({"timestamp": ts, "value": y}).to_csv(src, index=False)
    (tmp_path / "polarwatch.toml").write_text(f"[forecast]\nweekly = {weekly}\n")
    out = tmp_path / "out.csv"
    assert main(["--config", str(tmp_path / "polarwatch.toml"), "detect", str(src),
                 "-o", str(out)]) == 0
    rows = np.flatnonzero(pd.read_csv(out)["flag"].to_numpy() != "none")
    later = [i for i in rows if i >= 2 * 7 * ROWS_PER_DAY and (i // ROWS_PER_DAY) % 7 == SATURDAY]
    assert bool(later) == (weekly == "false")
    said = "the error usual at each hour of the week subtracted" in capsys.readouterr().err
    assert said == (weekly == "true")
