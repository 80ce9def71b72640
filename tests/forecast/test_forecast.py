"""Forecast stage against a real temp DuckDB file: series -> local level model -> forecasts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.models import MAX_SEASON, MIN_POINTS, SeriesSkipped, fit_predict, flag_points
from forecast.run import run_forecast
from forecast.series import METRICS, infer_freq, read_series, validate_metric
from polarwatch.config import Config, WarehouseConfig, load_config
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect, init_schema

START = datetime(2024, 3, 1, tzinfo=UTC)
HOURS = 7 * 24
SPIKE_TOPIC, SPIKE_AT = "abortion", 120
DIP_TOPIC, DIP_AT = "guns", 90
GAPS = {"abortion": [30, 31, 77], "guns": [50]}


def window_rows(topic: str, values: np.ndarray, *, start: datetime = START,
                step: timedelta = timedelta(hours=1), skip: list[int] | None = None) -> list[dict]:
    skip = skip or []
    return [{
        "topic": topic, "window_start": start + i * step, "window_end": start + (i + 1) * step,
        "volume": 100 + i % 7, "n_interactions": 40, "mean_score": float(v),
        "n_conversations": 10, "extreme_share": 0.1, "hostility_share": 0.2,
        "pro_share": 0.4, "anti_share": 0.3, "updated_at": start,
    } for i, v in enumerate(values) if i not in skip]


def seed(path: Path, rows: list[dict]) -> None:
    df = pd.DataFrame(rows)
    with connect(path) as con:
        con.register("seed_rows", df)
        con.execute("INSERT INTO topic_windows BY NAME SELECT * FROM seed_rows")
        con.unregister("seed_rows")


def synthetic(rng: np.random.Generator, level: float) -> np.ndarray:
    """A week of hourly mean scores: level + a daily cycle + N(0, 0.3) noise."""
    t = np.arange(HOURS)
    return level + 0.4 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 0.3, HOURS)


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    rng = np.random.default_rng(7)
    a, b = synthetic(rng, 4.0), synthetic(rng, 2.5)
    a[SPIKE_AT] += 3.0  # 10 noise sigmas
    b[DIP_AT] -= 3.0
    seed(path, window_rows("abortion", a, skip=GAPS["abortion"])
         + window_rows("guns", b, skip=GAPS["guns"]))
    return path


def cfg_for(path: Path, **forecast: str) -> Config:
    env = {"POLARWATCH_WAREHOUSE_PATH": str(path)}
    env.update({f"POLARWATCH_FORECAST_{k.upper()}": v for k, v in forecast.items()})
    return load_config(path=None, env=env)


def forecasts(path: Path) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        df = con.execute("SELECT topic, metric, timezone('UTC', ts) AS ts, y, forecast, lower, "
                         "upper, flag, model FROM forecasts ORDER BY topic, ts").df()
    df["ts"] = pd.to_datetime(df["ts"]).dt.tz_localize("UTC")
    return df


def test_read_series_regularizes_and_keeps_gaps_as_nan(warehouse: Path) -> None:
    series, freq = read_series(warehouse, "mean_score")
    assert freq == pd.Timedelta(hours=1)
    assert list(series.columns) == ["series_id", "ts", "y", "n"]  # n: interactions behind y
    for topic, gaps in GAPS.items():
        s = series[series["series_id"] == topic]
        assert len(s) == HOURS
        assert (s["ts"].diff().dropna() == pd.Timedelta(hours=1)).all()
        assert s["ts"].iloc[0] == pd.Timestamp(START)
        assert sorted(np.flatnonzero(s["y"].isna())) == gaps


def test_infer_freq_from_window_length() -> None:
    start = pd.Timestamp(START)
    windows = pd.DataFrame({"series_id": ["a", "a"],
                            "window_start": [start, start + pd.Timedelta("1h")],
                            "window_end": [start + pd.Timedelta("15min"),
                                           start + pd.Timedelta("1h15min")]})
    assert infer_freq(windows) == pd.Timedelta(minutes=15)
    assert infer_freq(windows.drop(columns="window_end")) == pd.Timedelta(hours=1)


def test_spike_flagged_normal_points_mostly_not(warehouse: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="forecast")
    summary = run_forecast(cfg_for(warehouse))
    assert summary.topics == 2 and summary.skipped == {}
    df = forecasts(warehouse)
    observed = df[df["flag"] != "forecast"]
    assert summary.points == len(observed) == 2 * HOURS - 4  # 4 gap windows get no row
    assert set(observed["metric"]) == {"mean_score"}
    spike_ts = pd.Timestamp(START) + pd.Timedelta(hours=SPIKE_AT)
    spike = observed[(observed["topic"] == SPIKE_TOPIC) & (observed["ts"] == spike_ts)]
    assert spike["flag"].tolist() == ["spike"]
    dip_ts = pd.Timestamp(START) + pd.Timedelta(hours=DIP_AT)
    dip = observed[(observed["topic"] == DIP_TOPIC) & (observed["ts"] == dip_ts)]
    assert dip["flag"].tolist() == ["dip"]
    normal = observed.drop(spike.index).drop(dip.index)
    false_rate = (normal["flag"] != "none").mean()
    assert false_rate < 0.10, normal[normal["flag"] != "none"]
    assert summary.flags == int((observed["flag"] != "none").sum())
    fitted = df[~df["model"].str.startswith("detector: ")]  # alarm rows: the detector's band
    assert set(fitted["model"]) == {"ets-damped-seasonal24"}  # the fixture has a daily cycle
    # One-step-ahead intervals exist after burn-in and contain the forecast.
    scored = observed.dropna(subset=["forecast"])
    assert len(scored) > 0.9 * len(observed)
    assert ((scored["lower"] < scored["forecast"]) & (scored["forecast"] < scored["upper"])).all()
    assert any("spike" in line for line in caplog.messages)


def test_forecast_rows_for_horizon_after_last_point(warehouse: Path) -> None:
    cfg = cfg_for(warehouse)
    horizon = cfg.forecast.horizon
    summary = run_forecast(cfg)
    df = forecasts(warehouse)
    assert summary.forecast_points == 2 * horizon
    last = pd.Timestamp(START) + pd.Timedelta(hours=HOURS - 1)
    for topic in GAPS:
        fut = df[(df["topic"] == topic) & (df["flag"] == "forecast")]
        expected = [last + pd.Timedelta(hours=h) for h in range(1, horizon + 1)]
        assert fut["ts"].tolist() == expected
        assert fut["y"].isna().all()
        assert ((fut["lower"] < fut["forecast"]) & (fut["forecast"] < fut["upper"])).all()
        # Intervals widen with the horizon for a random-walk level.
        width = (fut["upper"] - fut["lower"]).to_numpy()
        assert width[-1] > width[0]
        # The forecast is near the topic's level, not somewhere absurd.
        level = 4.0 if topic == "abortion" else 2.5
        assert abs(fut["forecast"].iloc[0] - level) < 1.0


def test_rerun_is_idempotent_and_drops_stale_future_rows(warehouse: Path) -> None:
    run_forecast(cfg_for(warehouse))
    first = forecasts(warehouse)
    run_forecast(cfg_for(warehouse))
    second = forecasts(warehouse)
    assert len(second) == len(first)
    pd.testing.assert_frame_equal(first, second)
    run_forecast(cfg_for(warehouse, horizon="3"))
    third = forecasts(warehouse)
    assert (third["flag"] == "forecast").sum() == 2 * 3
    assert len(third) == len(first) - 2 * (12 - 3)


def test_short_and_constant_series(warehouse: Path, caplog: pytest.LogCaptureFixture) -> None:
    seed(warehouse, window_rows("tiny", np.arange(MIN_POINTS - 1, dtype=float))
         + window_rows("flat", np.full(40, 3.0)))
    caplog.set_level(logging.INFO, logger="forecast")
    summary = run_forecast(cfg_for(warehouse))
    assert list(summary.skipped) == ["tiny"]
    assert f"at least {MIN_POINTS}" in summary.skipped["tiny"]
    assert any(line.strip().startswith("skip tiny:") and f"{MIN_POINTS - 1} observed" in line
               for line in caplog.messages)
    df = forecasts(warehouse)
    assert "tiny" not in set(df["topic"])
    flat = df[df["topic"] == "flat"]
    assert set(flat["model"]) == {"constant"}
    assert (flat.loc[flat["flag"] != "forecast", "flag"] == "none").all()
    assert np.allclose(flat["forecast"], 3.0)
    assert summary.topics == 3


def test_bad_metric_lists_valid_ones(warehouse: Path) -> None:
    with pytest.raises(ConfigError, match=r"'nope'.*valid metrics are .*mean_score"):
        run_forecast(cfg_for(warehouse), metric="nope")
    with pytest.raises(ConfigError, match=r"\$POLARWATCH_FORECAST_METRIC: expected one of "
                                          r"'volume'.*got 'score; DROP TABLE x'"):
        cfg_for(warehouse, metric="score; DROP TABLE x")  # refused when the config loads
    assert validate_metric("volume") == "volume"
    assert "updated_at" not in METRICS and "topic" not in METRICS


def test_other_metric_and_constructed_config(warehouse: Path) -> None:
    cfg = Config(warehouse=WarehouseConfig(path=str(warehouse)))
    summary = run_forecast(cfg, metric="volume")
    assert summary.metric == "volume" and summary.topics == 2
    df = forecasts(warehouse)
    assert set(df["metric"]) == {"volume"}
    # volume cycles 100..106 (i % 7): the forecast stays inside the observed range.
    fut = df[df["flag"] == "forecast"]
    assert fut["forecast"].between(99, 107).all()


def test_empty_warehouse_and_missing_file(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "empty.duckdb"
    init_schema(path)
    caplog.set_level(logging.INFO, logger="forecast")
    summary = run_forecast(cfg_for(path))
    assert summary.topics == 0 and summary.points == 0
    assert any("no rows in topic_windows" in line for line in caplog.messages)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_forecast(cfg_for(tmp_path / "missing.duckdb"))


def test_fit_predict_arrays() -> None:
    with pytest.raises(SeriesSkipped, match=r"3 observed point\(s\), at least 10.*2 missing"):
        fit_predict(np.array([1.0, np.nan, 2.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match="alpha"):
        fit_predict(np.ones(20), alpha=1.5)
    rng = np.random.default_rng(3)
    y = rng.normal(1000.0, 50.0, 100)  # large scale, like volume counts
    y[[10, 11, 12]] = np.nan
    out = fit_predict(y, alpha=0.05, horizon=4)
    assert len(out.forecast) == len(out.flag) == 100
    assert len(out.future_forecast) == 4
    assert np.isnan(out.forecast[:3]).all()  # burn-in
    assert np.isfinite(out.forecast[3:]).all()  # incl. through the gap
    assert out.flag[:3] == ["none"] * 3
    assert abs(out.future_forecast[0] - 1000.0) < 50.0


def test_flag_points_policy() -> None:
    y = np.array([5.0, -5.0, 0.0, np.nan, 2.0])
    lo = np.array([-1.0, -1.0, -1.0, -1.0, np.nan])
    up = np.array([1.0, 1.0, 1.0, 1.0, np.nan])
    assert flag_points(y, lo, up) == ["spike", "dip", "none", "none", "none"]


def test_selection_seasonal_vs_random_walk() -> None:
    from forecast.seasons import season_points

    assert season_points(3600, MAX_SEASON) == 24 and season_points(86400, MAX_SEASON) == 7
    # 96 windows a day (672 a week): too long a season for the ETS candidate
    assert season_points(900, MAX_SEASON) is None
    rng = np.random.default_rng(11)
    t = np.arange(340)
    seasonal = 5.0 + 0.6 * np.sin(2 * np.pi * t / 24) + rng.normal(0.0, 0.3, 340)
    seasonal[[40, 41, 200]] = np.nan
    out = fit_predict(seasonal, horizon=6, season=24)
    sel = out.selection
    assert out.model == sel.model == "ets-damped-seasonal24", sel
    assert sel.coverage is not None and sel.mae is not None
    assert sel.n_eval == 48 and 0.0 <= sel.coverage <= 1.0 and sel.mae > 0
    assert sel.mae == min(sel.scores.values())
    assert np.isfinite(out.future_forecast).all()
    # 48 scored points are a noisy score: a random walk picks the seasonal ETS now and then
    # (one seed in 6 tried here), so this asserts the majority over five walks.
    level_like = 0
    for seed in range(5):
        walk = np.cumsum(np.random.default_rng(seed).normal(0.0, 1.0, 340))
        out = fit_predict(walk, horizon=6, season=24)
        assert out.selection.coverage is not None and 0.0 <= out.selection.coverage <= 1.0
        level_like += out.model in {"ucm-local-level", "ucm-local-trend"}
    assert level_like >= 4


def test_selection_fallbacks() -> None:
    rng = np.random.default_rng(5)
    short = rng.normal(0.0, 1.0, 30)  # < MIN_SELECT_POINTS: local level, unscored
    out = fit_predict(short, season=24)
    assert out.model == "ucm-local-level" and out.selection.coverage is None
    few_days = rng.normal(0.0, 1.0, 60)  # < 3 seasons: no seasonal candidate
    assert "ets-damped-seasonal24" not in fit_predict(few_days, season=24).selection.scores
    assert fit_predict(np.full(60, 2.0), season=24).model == "constant"


def test_run_forecast_logs_choice(warehouse: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="forecast")
    run_forecast(cfg_for(warehouse))
    lines = [line for line in caplog.messages if line.strip().startswith(("abortion:", "guns:"))]
    assert len(lines) == 2
    assert all("rolling 1-step MAE" in line and "95% coverage" in line for line in lines)


@pytest.mark.parametrize(("domain", "make"), [
    ("score", lambda rng, n: np.clip(8.5 + np.cumsum(rng.normal(0, 0.4, n)) * 0.3
                                     + rng.normal(0, 1.2, n), 0, 10)),
    ("share", lambda rng, n: np.clip(0.04 + rng.normal(0, 0.05, n), 0, 1)),
    ("count", lambda rng, n: rng.poisson(1.5, n).astype(float)),
])
def test_bands_stay_in_the_metric_domain(domain: str, make: Any) -> None:
    """Scores near 10, shares near 0 and counts with zeros: a Gaussian band on the raw scale
    leaves the range; the transformed, calibrated one may not."""
    from forecast.domains import Domain

    y = make(np.random.default_rng(11), 240)
    fit = fit_predict(y, horizon=24, season=24, domain=domain)
    dom = Domain(domain)
    for key in ("forecast", "lower", "upper", "future_forecast", "future_lower", "future_upper"):
        band = getattr(fit, key)
        assert dom.contains(band), (key, np.nanmin(band), np.nanmax(band))
    ok = np.isfinite(fit.lower)
    assert ok.sum() > 200 and (fit.lower[ok] <= fit.upper[ok]).all()
    covered = ((y[ok] >= fit.lower[ok]) & (y[ok] <= fit.upper[ok])).mean()
    assert covered >= 0.9, covered  # calibrated on these one-step errors
    raw = fit_predict(y, horizon=24, season=24, domain="real")  # what the old band did
    assert not all(dom.contains(getattr(raw, k)) for k in ("lower", "upper", "future_lower",
                                                  "future_upper"))


def test_thin_windows_neither_raise_nor_resolve_flags(tmp_path: Path) -> None:
    """A 9-sigma spike in a window of 3 interactions raises nothing; the same spike with 40
    interactions does; thin windows after an alarm do not resolve its episode."""
    rng = np.random.default_rng(8)
    y = synthetic(rng, 4.0)
    y[120] += 9 * 0.3
    flags = {}
    for thin_n in (3, 40):
        path = tmp_path / f"thin{thin_n}.duckdb"
        init_schema(path)
        rows = window_rows("guns", y)
        rows[120]["n_interactions"] = thin_n
        for r in rows[121:150]:
            r["n_interactions"] = 2  # a quiet night of thin windows after the spike
        seed(path, rows)
        cfg = load_config(path=None, env={"POLARWATCH_WAREHOUSE_PATH": str(path),
                                          "POLARWATCH_FORECAST_MIN_VOLUME": "10"})
        run_forecast(cfg, events=[])
        with connect(path, read_only=True) as con:
            flags[thin_n] = con.execute(
                "SELECT ts, flag, episode, episode_event FROM forecasts WHERE flag <> 'forecast' "
                "ORDER BY ts").df()
    assert flags[3].loc[120, "flag"] == "none" and pd.isna(flags[3].loc[120, "episode"])
    strong = flags[40]
    assert strong.loc[120, "flag"] in ("spike", "anticipatory")
    episode = strong.loc[120, "episode"]
    # thin windows 121-149 keep the episode open: it resolves only on observed, thick windows
    assert (strong.loc[121:149, "episode"] == episode).all()
    assert strong.loc[121:149, "episode_event"].isna().all()


def test_run_notes_stored_window_differs_from_config(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "daily.duckdb"
    init_schema(path)
    rng = np.random.default_rng(2)
    seed(path, window_rows("guns", 5 + rng.normal(0, 0.3, 40), step=timedelta(days=1)))
    cfg = load_config(path=None, env={"POLARWATCH_WAREHOUSE_PATH": str(path),
                                      "POLARWATCH_AGGREGATE_WINDOW": "1 hour"})
    caplog.set_level(logging.INFO, logger="forecast")
    run_forecast(cfg, events=[], alerts=False)
    assert any("stored windows are 1 days 00:00:00 long but [aggregate] window is "
               "0 days 01:00:00" in line for line in caplog.messages), caplog.messages
    caplog.clear()
    cfg = load_config(path=None, env={"POLARWATCH_WAREHOUSE_PATH": str(path),
                                      "POLARWATCH_AGGREGATE_WINDOW": "1 day"})
    run_forecast(cfg, events=[], alerts=False)
    assert not any("stored windows" in line for line in caplog.messages)


def test_episode_keeps_its_class_jump_raised_as_spike_resolves_reactive() -> None:
    from forecast.run import classify_series

    rng = np.random.default_rng(5)
    t = np.arange(300)
    y = 200 * (1 + 0.4 * np.sin(2 * np.pi * t / 24)) * np.exp(rng.normal(0, 0.05, 300))
    y[200:] *= 2  # a lasting jump: one alarm, then the episode is re-classified
    ts = pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC")
    out = classify_series(ts, y, 3600, [])
    alarms = [i for i, f in enumerate(out["flag"]) if f != "none"]
    assert alarms == [200] and out["flag"][200] == "spike"
    resolved = [i for i, e in enumerate(out["episode_event"]) if e == "resolve"]
    assert len(resolved) == 1 and out["episode"][resolved[0]] == out["episode"][200]
    assert "raised as spike, classified reactive" in out["explanation"][resolved[0]]
