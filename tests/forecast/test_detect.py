"""Causal detector, alarm policy and `polarwatch detect` on CSVs with spikes, ramps and junk."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.alarms import AlarmPolicy, close_previous
from forecast.detect import DetectorConfig, StreamingDetector, warmup_points
from forecast.detect_csv import detect_values
from forecast.run import classify_series
from forecast.seasons import season_points
from polarwatch.cli import main

HOURS = 24 * 12  # 12 days hourly: warm-up 48, refits after 96 and 192 observed points


def hourly(seed: int = 5, n: int = HOURS) -> np.ndarray:
    """Counts around 200 with a daily cycle and lognormal overdispersion."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    mu = 200 * (1 + 0.4 * np.sin(2 * np.pi * t / 24)) * np.exp(rng.normal(0, 0.05, n))
    return rng.poisson(mu).astype(float)


def flags_at(out: dict, kinds: tuple[str, ...] = ("spike", "reactive", "anticipatory")) -> dict:
    return {i: f for i, f in enumerate(out["flag"]) if f in kinds}


def test_spike_level_shift_and_ramp_are_classified() -> None:
    y = hourly()
    y[150] *= 3.0  # a one-hour spike
    y[200:] *= 2.0  # a sudden level jump
    out = detect_values(y, 3600)
    flags = flags_at(out)
    assert flags.get(150) == "spike"
    assert flags.get(200) == "spike"  # the jump's alarm; its episode is then re-classified
    assert out["episode"][200] is not None and out["event"][200] == "open"
    assert all(out["episode"][i] == out["episode"][200] for i in (201, 202))
    assert_one_alarm_per_episode(out)
    assert len(flags) <= 5, flags  # few false alarms on 240 scored points
    assert out["info"]["period"] == 24 and out["info"]["scale"] == "log"

    z = hourly(seed=6)
    z[180:240] *= np.linspace(1.0, 4.0, 60)  # a sustained build-up over 2.5 days
    z[240:] *= 4.0
    ramp = flags_at(detect_values(z, 3600))
    first = min(i for i in ramp if i >= 180)
    assert ramp[first] == "anticipatory" and first < 240


def test_causal_outputs_do_not_change_when_rows_are_appended() -> None:
    y = hourly(seed=9)
    y[120] *= 3
    y[130:] *= 1.7
    full = detect_values(y, 3600)
    for k in (60, 97, 150):  # inside warm-up + first refit, right after it, later
        part = detect_values(y[:k], 3600)
        for col in ("forecast", "lower", "upper", "anomaly_score"):
            np.testing.assert_array_equal(part[col], full[col][:k])
        assert part["flag"] == full["flag"][:k]


def test_infinities_are_missing_points(recwarn: pytest.WarningsRecorder) -> None:
    y = hourly(seed=4)
    gaps = [10, 40, 41, 120, 250]  # warm-up, interim, seasonal model
    y_nan, y_inf = y.copy(), y.copy()
    y_nan[gaps] = np.nan
    y_inf[gaps] = [np.inf, -np.inf, np.inf, np.inf, -np.inf]
    a, b = detect_values(y_nan, 3600), detect_values(y_inf, 3600)
    for col in ("forecast", "lower", "upper", "anomaly_score"):
        np.testing.assert_array_equal(a[col], b[col])
    assert a["flag"] == b["flag"] and not recwarn.list


def test_outputs_during_warmup_missing_and_intervals() -> None:
    y = hourly(seed=2)
    y[100:103] = np.nan
    out = detect_values(y, 3600)
    assert np.isnan(out["forecast"][:30]).all() and set(out["flag"][:30]) == {"none"}
    assert np.isfinite(out["anomaly_score"][30:48]).all()  # the interim detector scores
    assert out["info"]["warmup"] == 30 and out["info"]["season_warmup"] == 48
    assert np.isnan(out["anomaly_score"][100:103]).all()
    assert np.isfinite(out["forecast"][100:103]).all()  # forecasts through the gap
    ok = np.isfinite(out["forecast"]) & np.isfinite(y)
    assert (out["lower"][ok] < out["forecast"][ok]).all()
    assert (out["forecast"][ok] < out["upper"][ok]).all()
    covered = ((y[ok] >= out["lower"][ok]) & (y[ok] <= out["upper"][ok])).mean()
    assert 0.85 < covered <= 1.0
    scores = out["anomaly_score"][np.isfinite(out["anomaly_score"])]
    assert ((scores >= 0) & (scores <= 1)).all()


def test_a_spike_on_the_second_day_is_flagged_before_the_season_is_learnt() -> None:
    # 5-minute data: the daily season needs a 576-point (2-day) warm-up; the interim detector
    # without a season scores the second day, so a new series is blind for one day, not two
    rng = np.random.default_rng(4)
    t = np.arange(900)
    y = 100 + 20 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 2, len(t))
    y[400] += 60  # a spike 33 hours in
    out = detect_values(y, 300)
    flags = flags_at(out)
    assert flags.get(400) == "spike", flags
    assert len(flags) <= 3, flags
    info = out["info"]
    assert info["period"] == 288 and info["warmup"] == 288 and info["season_warmup"] == 576
    assert np.isfinite(out["forecast"][576:]).all()  # the seasonal model took over


@pytest.mark.parametrize(("interval", "period"), [(300, 288), (900, 96)])
def test_the_interim_detector_does_not_alarm_on_the_cycle_it_cannot_model(
        interval: int, period: int) -> None:
    # Clean counts with a daily cycle: the interim detector (no season) lags the cycle, and with
    # its rise, CUSUM and change tests it calls most second days a build-up or a change
    t = np.arange(2 * period)
    for seed in range(10):
        rng = np.random.default_rng(seed)
        mu = 200 * (1 + 0.4 * np.sin(2 * np.pi * t / period + seed))
        y = rng.poisson(mu * np.exp(rng.normal(0, 0.05, len(t)))).astype(float)
        out = detect_values(y, interval)
        assert out["info"]["season_warmup"] == 2 * period
        assert flags_at(out) == {}, (seed, flags_at(out))
    # A quiet night, then a noisy day at another level: the second morning is still a jump the
    # interim detector cannot foresee, past its point test's limit but not twice past it
    assert flags_at(detect_values(busy_days(days=2), 300)) == {}


def test_constant_and_negative_series() -> None:
    flat = detect_values(np.full(80, 5.0), 3600, None)
    assert set(flat["flag"]) == {"none"}
    rng = np.random.default_rng(1)
    signed = rng.normal(0.0, 1.0, 200)  # negative values: no log scale
    signed[150] = 12.0
    out = detect_values(signed, 86400)
    assert out["info"]["scale"] == "linear" and out["flag"][150] == "spike"


def test_season_and_warmup_from_interval() -> None:
    assert season_points(3600) == 24 and season_points(300) == 288
    assert season_points(86400) == 7 and season_points(7 * 86400) is None
    assert season_points(7) is None  # no whole number of points per day
    assert season_points(7 * 3600) == 24  # 7-hour windows: no whole day, a whole week (the
    assert season_points(12 * 3600) == 2  # daily cycle repeats in it); two points per day
    assert season_points(300, max_points=48) is None  # a model's capacity caps it
    assert warmup_points(24) == 48 and warmup_points(None) == 30 and warmup_points(7) == 30
    assert StreamingDetector(300).warmup == 576


def assert_one_alarm_per_episode(out: dict) -> None:
    """Every episode has exactly one alarm row, its first row, and its rows are contiguous
    (apart from missing points); rows outside episodes raise no alarm."""
    by_episode: dict[int, list[int]] = {}
    for i, (flag, ep) in enumerate(zip(out["flag"], out["episode"], strict=True)):
        if ep is None:
            assert flag == "none", (i, flag)
            continue
        by_episode.setdefault(ep, []).append(i)
    for ep, rows in by_episode.items():
        alarms = [i for i in rows if out["flag"][i] != "none"]
        assert alarms == [rows[0]], (ep, alarms, rows[:5])
        assert rows == list(range(rows[0], rows[-1] + 1)), ep
        resolves = [i for i in rows if out["event"][i] == "resolve"]
        assert resolves in ([], [rows[-1]]), (ep, resolves)
    assert sorted(by_episode) == list(range(1, len(by_episode) + 1))


def test_alarm_policy_episodes_open_once_and_resolve_once() -> None:
    p = AlarmPolicy(threshold=0.99, min_points=2, suppress=3, rearm=0.9, quiet=2)
    steps: list[tuple[Any, ...]] = [(1.0, "spike"), (0.1, None), (1.0, "spike"),  # 3rd: min_points reached -> opens
             (1.0, "spike"), (0.5, None), (1.0, "reactive"),  # upgrade: no second alarm
             (0.95, None), (0.5, None), (0.5, None),  # quiet twice after the refractory
             (1.0, "spike"), (math.nan, None), (0.5, None), (0.1, None, True), (0.5, None),
             (1.0, "anticipatory")]
    got = [p.step(*st[:2], thin=len(st) > 2) for st in steps]
    assert [g.flag for g in got] == ["none", "none", "spike", *["none"] * 6, "spike",
                                     *["none"] * 4, "anticipatory"]
    assert [g.episode for g in got] == [None, None, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3]
    assert [g.event for g in got].count("open") == 3
    assert got[8].event == "resolve" and got[8].kind == "reactive"  # upgraded class
    # episode 2: the missing point and the thin one neither count as quiet nor resolve it;
    # the second *observed* quiet point (13) does
    assert [g.event for g in got[10:14]] == [None, None, None, "resolve"]
    with pytest.raises(ValueError, match="rearm"):
        AlarmPolicy(threshold=0.9, rearm=0.95)


def test_a_stronger_wave_in_a_quiet_episode_opens_its_own() -> None:
    p = AlarmPolicy(threshold=0.99, suppress=20, rearm=0.9, quiet=2, escalate=1.5)
    steps = [(1.0, 2.0), (0.5, 0.1),  # opens at severity 2, one quiet point
             (1.0, 9.0),  # far stronger, but the episode has not gone quiet: no alarm
             (0.5, 0.1), (0.5, 0.1), (1.0, 9.5),  # quiet now, but 9.5 < 1.5 x 9: no alarm
             (0.5, 0.1), (0.5, 0.1), (1.0, 15.0)]  # quiet, and 15 > 1.5 x 9.5: a new one
    got = [p.step(sc, "spike", severity=sev) for sc, sev in steps]
    assert [g.flag for g in got] == ["spike", *["none"] * 7, "spike"]
    assert [g.episode for g in got] == [1] * 8 + [2]
    assert got[-1].closes == 1 and got[-1].closed_kind == "spike"
    assert [g.closes for g in got[:-1]] == [None] * 8
    events, episodes = [g.event for g in got[:-1]], [g.episode for g in got[:-1]]
    kept = [True] * 7 + [False]  # the last point of episode 1 is missing: not written
    assert close_previous(events, episodes, got[-1].closes, kept) == 6
    assert events == ["open", *[None] * 5, "resolve", None]
    # an unknown opening severity is never out-waved; escalate 0 turns the rule off
    for policy, first in ((AlarmPolicy(threshold=0.99, suppress=20, quiet=1), math.nan),
                          (AlarmPolicy(threshold=0.99, suppress=20, quiet=1, escalate=0), 1.0)):
        flags = [policy.decide(sc, "spike", severity=sev)
                 for sc, sev in ((1.0, first), (0.1, 0.0), (1.0, 50.0))]
        assert flags == ["spike", "none", "none"]
    with pytest.raises(ValueError, match="escalate"):
        AlarmPolicy(escalate=0.5)


def test_a_second_stronger_spike_within_a_day_is_an_alarm() -> None:
    y = hourly(seed=5)
    y[150] *= 1.8  # an incident...
    y[158] *= 6.0  # ...and 8 hours later a far larger one, inside the 24 h refractory
    out = detect_values(y, 3600)
    assert flags_at(out) == {150: "spike", 158: "spike"}
    assert_one_alarm_per_episode(out)
    assert out["episode"][157] == 1 and out["event"][157] == "resolve"
    assert out["episode"][158] == 2 and out["event"][158] == "open"
    idx = pd.date_range("2024-03-01", periods=len(y), freq="h", tz="UTC")
    why = classify_series(idx, y, 3600, [])
    assert why["episode_event"][157] == "resolve" and why["flag"][158] == "spike"
    assert "before a stronger wave" in why["explanation"][157]
    assert "a second, stronger wave" in why["explanation"][158]
    assert "which it ends" in why["explanation"][158]


def test_an_excursion_raises_one_alarm_however_long() -> None:
    y = hourly(seed=3)
    y[100:180] *= np.where(np.arange(80) % 2, 3.0, 0.4)  # 80 hours of wild alternation
    out = detect_values(y, 3600)
    assert_one_alarm_per_episode(out)
    assert sum(f != "none" for f in out["flag"][100:180]) == 1


def write_csv(path: Path, ts: pd.DatetimeIndex, values: list[str]) -> Path:
    rows = [f"{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(ts, values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    return path


def test_cli_detect_reports_gaps_duplicates_and_junk(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    y = hourly(seed=3, n=200)
    y[150] *= 3
    ts = pd.date_range("2024-03-01", periods=200, freq="h")
    values = [f"{v:g}" for v in y]
    values[60], values[61] = "n/a", ""
    keep = [i for i in range(200) if i not in (90, 91, 92, 93)]  # a 4-hour gap
    ts_k, val_k = ts[keep], [values[i] for i in keep]
    ts_k = ts_k.append(ts[[10]])  # a duplicate of 01:10 at the end: the last row wins
    val_k.append("7")
    src = write_csv(tmp_path / "s.csv", ts_k, val_k)
    assert main(["detect", str(src), "-o", str(tmp_path / "out.csv")]) == 0
    err = capsys.readouterr().err
    assert "1 non-numeric value(s) on line(s) 62 ('n/a')" in err
    assert "1 empty value(s) on line(s) 63" in err
    assert "1 duplicate timestamp(s), kept the last row of each: 2024-03-01 10:00:00 " \
           "(line 12 < 198)" in err
    assert "4 missing timestamp(s) in 1 gap(s)" in err
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["timestamp", "value", "forecast", "lower", "upper",
                                 "anomaly_score", "flag", "episode"]
    assert len(out) == 200 and out["value"].isna().sum() == 6
    assert out.loc[10, "value"] == 7 and out.loc[150, "flag"] == "spike"
    episode = out.loc[150, "episode"]  # the alarm row opens an episode; the next rows are in it
    assert episode >= 1 and (out.loc[150:153, "episode"] == episode).all()
    assert (out.loc[151:153, "flag"] == "none").all()
    assert out.groupby("episode")["flag"].apply(lambda f: (f != "none").sum()).eq(1).all()
    assert out.loc[0, "timestamp"] == "2024-03-01 00:00:00"

    assert main(["detect", str(src), "--duplicates", "error"]) == 2
    assert "1 duplicate timestamp(s)" in capsys.readouterr().err


def test_cli_detect_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ts = pd.date_range("2024-03-01", periods=40, freq="h")
    few = write_csv(tmp_path / "few.csv", ts, ["1"] * 40)
    assert main(["detect", str(few)]) == 2
    assert "too few rows: 40 observed value(s), the detector needs at least 49" in \
        capsys.readouterr().err
    assert main(["detect", str(few), "--season", "none"]) == 0  # 31 are enough then
    assert capsys.readouterr().out.startswith("timestamp,value,forecast")

    irregular = ts.append(pd.DatetimeIndex([ts[-1] + pd.Timedelta(minutes=90)]))
    bad = write_csv(tmp_path / "irr.csv", irregular, ["1"] * 41)
    assert main(["detect", str(bad)]) == 2
    assert "irregular intervals: the most common step is 0 days 01:00:00, but 1 " \
           "timestamp(s) are off that grid" in capsys.readouterr().err

    (tmp_path / "ts.csv").write_text("timestamp,value\nyesterday,1\n2024-03-01,2\n")
    assert main(["detect", str(tmp_path / "ts.csv")]) == 2
    assert "1 unparseable timestamp(s) on line(s) 2" in capsys.readouterr().err
    (tmp_path / "far.csv").write_text("timestamp,value\n2024-03-01,1\n9999-12-31 23:59:59,2\n"
                                      "0001-01-01T00:00:00Z,3\n")
    assert main(["detect", str(tmp_path / "far.csv")]) == 2
    assert "2 timestamp(s) on line(s) 3, 4 are valid dates outside the range a series can " \
           "hold, 1677-09-21 to 2262-04-11 (e.g. '9999-12-31 23:59:59')" in capsys.readouterr().err
    huge = write_csv(tmp_path / "huge.csv", ts, ["1e308", "-1e308"] * 20)
    assert main(["detect", str(huge), "--season", "none"]) == 2
    assert "the values are too large to model (median magnitude 1e+308" in \
        capsys.readouterr().err
    (tmp_path / "cols.csv").write_text("time,count\n2024-03-01,2\n")
    assert main(["detect", str(tmp_path / "cols.csv")]) == 2
    assert "missing column(s) timestamp, value; found time, count" in capsys.readouterr().err


def test_switching_between_known_levels_is_the_new_normal() -> None:
    """An AWS-CPU-like series idling at ~0.1 % with 5-point busy bursts at ~85 % several times a
    day: the first switch is an episode, returning to a level seen within the week is not."""
    rng = np.random.default_rng(11)
    n = 4032  # 14 days of 5-minute points
    y = 0.1 + rng.normal(0, 0.003, n)
    for start in range(900, n, 317):  # a burst every ~26 h, after the 2-day warm-up
        y[start:start + 5] = 85 + rng.normal(0, 3, 5)
    det = StreamingDetector(300.0)
    pts = [det.update(v) for v in y]
    alarms = [(i, p.flag, p.trigger.test) for i, p in enumerate(pts)
              if p.flag != "none" and p.trigger is not None]
    assert alarms and alarms[0][0] == 900, alarms
    # the return to idle and every later burst go back to levels of the last week: no further
    # level-shift alarm ("reactive"); before, each burst after the refractory day raised one
    assert not [a for a in alarms[1:] if a[1] == "reactive" or a[2] == "shift"], alarms


def busy_days(days: int = 12, seed: int = 3) -> np.ndarray:
    """5-minute values: a noisy day at 80 (sd 3) and a quiet night at -20 (sd 0.3)."""
    rng = np.random.default_rng(seed)
    hour = (np.arange(days * 288) % 288) / 12
    day = (hour >= 8) & (hour < 20)
    return np.where(day, 80 + rng.normal(0, 3, day.size), -20 + rng.normal(0, 0.3, day.size))


@pytest.mark.parametrize(("config", "more"), [
    (None, 2),  # the shipped threshold and refractory
    (DetectorConfig(threshold=0.9999, suppress_seconds=86400.0), 4),  # laxer, one a day
])
def test_a_noisy_day_after_a_quiet_night_is_not_an_alarm(
        monkeypatch: pytest.MonkeyPatch, config: DetectorConfig | None, more: int) -> None:
    y = busy_days()  # 10 scored days, no incident
    # without the routine memory, which would also silence a daily morning alarm from day 3
    config = replace(config or DetectorConfig(), routine=False)
    alarms = len(flags_at(detect_values(y, 300, config)))
    assert alarms <= 3
    # the same series with one scale for the whole day: most mornings look like an incident
    monkeypatch.setattr("forecast.holt_winters.PHASE_BLOCKS", 0)
    assert len(flags_at(detect_values(y, 300, config))) >= alarms + more


def test_time_of_day_factors_learn_each_block_variance() -> None:
    from forecast.holt_winters import CLIP_SIGMAS, PhaseScale

    rng = np.random.default_rng(1)
    phase = PhaseScale(24)  # hourly data: 6 blocks of 4 hours
    assert phase.blocks == 6 and phase.block(3) == 0 and phase.block(23) == 5
    var = 1.0  # the filter's overall variance: grows when the factors are renormalised
    for t in range(24 * 400):
        sd = 3.0 if phase.block(t) == 5 else 1.0  # the evening block is 9 x as variable
        z = rng.normal(0, sd) / math.sqrt(var * phase.at(t))
        var *= phase.learn_one(max(-CLIP_SIGMAS, min(CLIP_SIGMAS, z)), t)
    assert phase.factor.mean() == pytest.approx(1.0, abs=0.2)
    assert var * phase.factor[:5].mean() == pytest.approx(1.0, rel=0.3)
    ratio = phase.factor[5] / phase.factor[:5].mean()
    assert 6.0 < ratio < 12.0, phase.factor
    assert PhaseScale(None).at(7) == 1.0 and PhaseScale(3).blocks == 3
