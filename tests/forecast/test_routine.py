"""Routine exceedances (forecast/routine.py): a burst at the same time every day stops alarming."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.alarms import DEFAULT_REARM
from forecast.detect import DetectorConfig
from forecast.detect_csv import detect_values
from forecast.routine import MEMORY_SCORE, ROUTINE_SCORE, RoutineMemory
from forecast.run import classify_series, run_forecast
from polarwatch.cli import main

DAY = 24  # rows per day of hourly data


def replay(memory: RoutineMemory, hits: set[int], rows: int, start: int = 0) -> list[int]:
    """The rows ``memory`` calls routine when ``hits`` exceed and every other row is quiet (row
    ``i`` at time ``(start + i)`` intervals)."""
    return [i for i in range(rows)
            if memory.step(1.0 if i in hits else 0.5, (start + i) * memory.interval_seconds)]


def test_the_third_day_at_the_same_hour_is_routine_and_another_hour_is_not() -> None:
    hits = {5, DAY + 5, 2 * DAY + 6, 2 * DAY + 12}  # day 3 at 06:00 (within the hour) and noon
    assert replay(RoutineMemory(3600.0), hits, 3 * DAY) == [2 * DAY + 6]


def test_a_routine_that_stopped_for_two_days_is_news_again() -> None:
    hits = {5, DAY + 5, 2 * DAY + 5, 5 * DAY + 5, 6 * DAY + 5}
    assert replay(RoutineMemory(3600.0), hits, 7 * DAY) == [2 * DAY + 5]


def test_unscored_rows_keep_the_clock_and_coarse_series_have_no_time_of_day() -> None:
    memory = RoutineMemory(3600.0)
    assert not any(memory.step(math.nan, i * 3600.0) for i in range(DAY))  # a day of warm-up
    assert replay(memory, {5, DAY + 5, 2 * DAY + 5}, 3 * DAY, start=DAY) == [2 * DAY + 5]
    daily = RoutineMemory(86400.0)
    assert not any(daily.step(1.0, i * 86400.0) for i in range(30))
    off = RoutineMemory(300.0, on=False)
    assert not any(off.step(1.0, i * 300.0) for i in range(600))
    assert MEMORY_SCORE > ROUTINE_SCORE and ROUTINE_SCORE < DEFAULT_REARM


def test_an_excursion_longer_than_a_day_is_not_its_own_routine() -> None:
    assert replay(RoutineMemory(3600.0), set(range(10, 10 + 3 * DAY)), 5 * DAY) == []


def test_irregular_rows_keep_the_time_of_day_from_their_timestamps() -> None:
    """Rows every 5 minutes on day 0, every 20 minutes on day 1, every 5 again on day 2; a burst
    at 02:00 each day. By timestamps the third is routine; by row counts it is not."""
    times = [*range(0, 86400, 300), *range(86400, 2 * 86400, 1200), *range(2 * 86400, 3 * 86400, 300)]
    burst = {7200, 86400 + 7200, 2 * 86400 + 7200}
    by_time, by_row = RoutineMemory(300.0), RoutineMemory(300.0)
    routine_at = [t for t in times if by_time.step(1.0 if t in burst else 0.5, float(t))]
    assert routine_at == [2 * 86400 + 7200]
    assert not any(by_row.step(1.0 if t in burst else 0.5, row * 300.0)
                   for row, t in enumerate(times))


def nightly(days: int = 10, seed: int = 3) -> np.ndarray:
    """5-minute counts around 20 with a burst to ~220 at 02:00 every day from day 2, and one
    burst at 15:00 on day 9."""
    rng = np.random.default_rng(seed)
    y = rng.poisson(20, days * 288).astype(float)
    for d in range(2, days):
        y[d * 288 + 24] += 200
    y[9 * 288 + 180] += 200
    return y


@pytest.mark.parametrize("routine", [True, False])
def test_a_nightly_burst_alarms_twice_then_is_routine_but_a_new_hour_still_alarms(
        routine: bool) -> None:
    out = detect_values(nightly(), 300.0, DetectorConfig(routine=routine))
    alarms = [i for i, f in enumerate(out["flag"]) if f != "none"]
    bursts = [d * 288 + 24 for d in range(2, 10)]
    if routine:
        assert alarms == [bursts[0], bursts[1], 9 * 288 + 180]
        assert all(out["anomaly_score"][i] <= ROUTINE_SCORE for i in bursts[2:])
    else:  # without the memory every night alarms
        assert alarms == sorted([*bursts, 9 * 288 + 180])


@pytest.mark.parametrize(("routine", "alarms"), [("true", 3), ("false", 9)])
def test_polarwatch_detect_follows_the_forecast_routine_setting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], routine: str, alarms: int) -> None:
    ts = pd.date_range("2024-03-01", periods=10 * 288, freq="5min")
    src = tmp_path / "nightly.csv"
    pd.DataFrame({"timestamp": ts, "value": nightly()}).to_csv(src, index=False)
    (tmp_path / "polarwatch.toml").write_text(f"[forecast]\nroutine = {routine}\n")
    out = tmp_path / "out.csv"
    assert main(["--config", str(tmp_path / "polarwatch.toml"), "detect", str(src),
                 "-o", str(out)]) == 0
    assert (pd.read_csv(out)["flag"] != "none").sum() == alarms
    said = "6 routine burst(s) not alarmed" in capsys.readouterr().err  # the 3rd to 8th bursts
    assert said == (routine == "true")


@pytest.mark.parametrize("routine", [True, False])
def test_a_routine_burst_says_why_it_raised_no_flag(routine: bool) -> None:
    y = nightly()
    ts = pd.date_range("2024-03-01", periods=len(y), freq="5min")
    out = classify_series(ts, y, 300.0, [], metric="volume", routine=routine)
    marked = [i for i, e in enumerate(out["episode_event"]) if e == "routine"]
    if not routine:
        assert marked == []
        return
    assert marked == [d * 288 + 24 for d in range(4, 10)]  # the 3rd to 8th bursts, not 15:00
    for i in marked:
        assert out["flag"][i] == "none"
        why = out["explanation"][i]
        assert why.startswith("routine, not flagged: volume was as far out within an hour of "
                              "this time of day on 2 of the 3 days before"), why
        assert "point test: volume" in why


def test_the_forecast_stage_stores_a_routine_burst_with_its_reason(tmp_path: Path) -> None:
    from polarwatch.warehouse import connect, init_schema
    from tests.forecast.test_forecast import cfg_for, seed, window_rows

    path = tmp_path / "pw.duckdb"
    init_schema(path)
    rng = np.random.default_rng(5)
    y = 4.0 + 0.3 * np.sin(2 * np.pi * np.arange(DAY * 10) / DAY) + rng.normal(0, 0.1, DAY * 10)
    y[[d * DAY + 2 for d in range(2, 10)]] += 4.0  # 02:00 every night from day 3
    seed(path, window_rows("abortion", y))
    run_forecast(cfg_for(path))
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT flag, episode_event, explanation, hour(timezone('UTC', ts)) "
                           "FROM forecasts WHERE episode_event = 'routine'").fetchall()
    assert rows, "the nightly bursts after the first two are routine"
    for flag, _, why, hour in rows:
        assert flag == "none" and hour == 2
        assert why.startswith("routine, not flagged: mean_score was as far out"), why
