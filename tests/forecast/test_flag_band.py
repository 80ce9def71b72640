"""A flag is shown against the band that decided it, not the forecast model's band.

The forecast model's one-step band is fitted on the whole series, so a quiet week followed by a
noisy one gets a wide band everywhere, and a spike the causal detector flags in the quiet week
(its band is calibrated on the past only) lies inside it. The alarm row, the report and the
alert carry the detector's forecast and alarm band instead, and say which test decided."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from dashboard.queries import topic_series
from forecast.alarms import band_text
from forecast.alerts.delivery import send_flag_alerts
from forecast.reports.report import write_report
from forecast.run import run_forecast
from polarwatch.warehouse import connect, init_schema
from tests.forecast.test_alert_episodes import write_history
from tests.forecast.test_alerting import config
from tests.forecast.test_forecast import START, seed, window_rows
from tests.forecast.test_webhooks import Receiver

SPIKE_AT = 100  # hourly window of the spike, in the quiet part


def quiet_then_noisy() -> np.ndarray:
    """Five quiet days (noise 0.05), a +0.6 spike at SPIKE_AT, then noise 1.0 from day 5."""
    rng = np.random.default_rng(5)
    t = np.arange(8 * 24)
    y = 4 + 0.3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.05, len(t))
    y[120:] += rng.normal(0, 1.0, len(t) - 120)
    y[SPIKE_AT] += 0.6
    return y


def rising_slowly() -> np.ndarray:
    """A daily cycle whose level starts to climb on day 7: the rise test flags, no point is out."""
    rng = np.random.default_rng(3)
    t = np.arange(8 * 24)
    y = 4 + 0.3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, len(t))
    y[150:] += np.linspace(0, 1.5, len(t) - 150)
    return y


def rows(path: Path) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        df: pd.DataFrame = con.execute(
            "SELECT timezone('UTC', ts) AS ts, y, forecast, lower, upper, flag, model "
            "FROM forecasts WHERE flag <> 'forecast' ORDER BY ts").df()
    return df


def forecast_and_report(tmp_path: Path, y: np.ndarray, url: str) -> tuple[pd.DataFrame, str]:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("guns", y))
    cfg = config(path, url)
    run_forecast(cfg, events=[])
    out = tmp_path / "report.html"
    write_report(cfg, out)
    return rows(path), out.read_text()


def firing(receiver: Receiver, hour: int) -> dict[str, Any]:
    starts = f"{START + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ}"
    [data] = [r["body"]["data"] for r in receiver.requests
              if r["body"]["type"] == "alert.firing" and r["body"]["data"]["startsAt"] == starts]
    return data


def test_a_point_flag_inside_the_model_band_shows_the_detector_band(
        tmp_path: Path, receiver: Receiver) -> None:
    df, html = forecast_and_report(tmp_path, quiet_then_noisy(), receiver.url)
    at = df.index[df["ts"] == pd.Timestamp(START + timedelta(hours=SPIKE_AT)).tz_localize(None)]
    [i] = at
    alarm = df.loc[i]
    assert alarm["flag"] == "spike" and alarm["model"] == "detector: point test"
    # the case is real: the forecast model's band on both sides would have held the value ...
    for j in (i - 1, i + 1):
        assert df.loc[j, "model"].startswith("ets") or df.loc[j, "model"].startswith("ucm")
        assert df.loc[j, "lower"] < alarm["y"] < df.loc[j, "upper"], df.loc[i - 1:i + 1]
    # ... and the band stored for the flag is the one that decided it: the value is outside
    assert alarm["y"] > alarm["upper"] > alarm["forecast"] > alarm["lower"]
    said = (f"{alarm['y']:.4g} is above the detector's alarm band [{alarm['lower']:.4g}, "
            f"{alarm['upper']:.4g}] around {alarm['forecast']:.4g}: the point test")
    assert said.replace("'", "&#39;") in html  # the report's "against its band"
    annotations = firing(receiver, SPIKE_AT)["annotations"]
    assert annotations["band"].startswith(said) and annotations["test"] == "point test"
    assert float(annotations["upper"]) < float(annotations["value"])
    assert float(annotations["forecast"]) == pytest.approx(alarm["forecast"], rel=1e-3)
    # the dashboard's chart draws the model's band only: no kink at the alarm window
    series = topic_series(tmp_path / "pw.duckdb", "guns")
    at_alarm = series[series["flag"] == "spike"]
    assert len(at_alarm) == 1 and at_alarm[["forecast", "lower", "upper"]].isna().all(axis=None)
    assert series["lower"].notna().sum() > 0.8 * series["y"].notna().sum()


def test_a_flag_of_another_test_inside_its_band_names_that_test(
        tmp_path: Path, receiver: Receiver) -> None:
    df, html = forecast_and_report(tmp_path, rising_slowly(), receiver.url)
    [alarm] = [r for _, r in df.iterrows() if r["flag"] not in ("none", "forecast")]
    assert alarm["model"] == "detector: rise test"
    assert alarm["lower"] <= alarm["y"] <= alarm["upper"]  # no point is out: the rise is
    said = (f"{alarm['y']:.4g} is inside the detector's alarm band [{alarm['lower']:.4g}, "
            f"{alarm['upper']:.4g}] around {alarm['forecast']:.4g} (its point test's); the rise "
            f"test decided the flag")
    assert said.replace("'", "&#39;") in html
    hour = int((alarm["ts"] - pd.Timestamp(START).tz_localize(None)) / pd.Timedelta(hours=1))
    assert firing(receiver, hour)["annotations"]["band"].startswith(said)
    assert re.search(r"rise test: the level of mean_score rose", html)  # "why" gives numbers


def test_a_row_from_before_says_its_band_is_the_model_s(tmp_path: Path,
                                                        receiver: Receiver) -> None:
    """Rows written before alarm rows carried the detector's band: the alert says which band
    it shows and that the detector's test decided."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, None)])  # model "test", band [3, 5], value 8
    send_flag_alerts(config(path, receiver.url))
    band = firing(receiver, 100)["annotations"]["band"]
    assert band == ("8 is above the forecast model's one-step band [3, 5] around 4, which did "
                    "not decide the flag: the detector's own test did (see the explanation)")
    assert band_text(8.0, None, 3.0, 5.0, "x") == "no band stored for this window"
