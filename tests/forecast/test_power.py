"""The model scale chosen from the warm-up (Tukey's spread-versus-level ladder)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecast.detect import DetectError, DetectorConfig
from forecast.detect_csv import detect_values
from forecast.power import LINEAR, LOG, SQRT, choose_power, from_model, to_model

DAY = 288  # 5-minute points
WARMUP = 2 * DAY  # the detector's warm-up for 5-minute data


def daily_level(n: int) -> np.ndarray:
    """A busy day and a quiet night: 5 at night, 40 at the day's peak."""
    return 22.5 + 17.5 * np.sin(2 * np.pi * np.arange(n) / DAY)


@pytest.mark.parametrize(("noise", "power"), [
    ("additive", LINEAR),  # a percentage with steady noise: spread does not follow the level
    ("poisson", SQRT),  # counts: variance proportional to the level
    ("multiplicative", LOG),  # prices, volumes: spread proportional to the level
])
def test_the_ladder_reads_how_the_noise_grows_with_the_level(noise: str, power: float) -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        level = daily_level(WARMUP)
        y = {"additive": level + rng.normal(0.0, 1.0, WARMUP),
             "poisson": rng.poisson(10.0 * level).astype(float),
             "multiplicative": level * np.exp(rng.normal(0.0, 0.1, WARMUP))}[noise]
        assert choose_power(y) == power, (noise, seed)


def test_warmups_that_cannot_show_a_slope_keep_the_log_scale() -> None:
    rng = np.random.default_rng(0)
    assert choose_power(np.full(WARMUP, 7.0)) == LOG  # no spread at all
    assert choose_power(50.0 + rng.normal(0.0, 1.0, WARMUP)) == LOG  # one level: no slope
    hourly = daily_level(48) + rng.normal(0.0, 1.0, 48)  # 8 blocks of 6 points: too few
    assert choose_power(hourly) == LOG
    assert choose_power(np.full(WARMUP, np.nan)) == LINEAR  # nothing observed
    signed = rng.normal(0.0, 1.0, WARMUP)  # negative values: linear, as before
    assert choose_power(signed) == LINEAR


@pytest.mark.parametrize("power", [LOG, SQRT, LINEAR])
def test_transforms_invert_and_stay_finite(power: float) -> None:
    for x in (-1e6, -3.5, -1.0, 0.0, 1e-9, 0.5, 2.0, 1234.5, 1e12):
        assert from_model(to_model(x, power), power) == pytest.approx(x, rel=1e-9, abs=1e-9)
    for u in (1e300, -1e300, 1e6):  # far beyond anything mapped back: finite, sign kept
        back = from_model(u, power)
        assert math.isfinite(back) and math.copysign(1.0, back) == math.copysign(1.0, u)
    xs = np.linspace(-50.0, 50.0, 101)  # monotone: bands keep their order
    assert np.all(np.diff([to_model(float(x), power) for x in xs]) > 0)


def test_a_spike_on_a_busy_hour_of_an_additive_noise_series_is_caught() -> None:
    """On the log scale the day's noise shrinks and the night's swells: a 12-sigma spike at the
    day's peak scores below the threshold and the nights raise false alarms."""
    rng = np.random.default_rng(1)
    n = 6 * DAY
    y = daily_level(n) + rng.normal(0.0, 1.0, n)
    assert y.min() > 0  # non-negative: the log scale was the default for it
    peak = 4 * DAY + 72  # the day's peak, level 40
    y[peak] += 12.0
    out = detect_values(y, 300)
    assert out["info"]["scale"] == "linear"
    alarms = {i: f for i, f in enumerate(out["flag"]) if f != "none"}
    assert alarms == {peak: "spike"}
    forced_log = detect_values(y, 300, DetectorConfig(transform="log"))
    assert forced_log["info"]["scale"] == "log"
    wrong = {i: f for i, f in enumerate(forced_log["flag"]) if f != "none"}
    assert peak not in wrong and len(wrong) >= 2  # what the log scale did: missed, 2 false


def test_transform_setting_is_checked() -> None:
    y = np.abs(np.random.default_rng(1).normal(10.0, 1.0, 200))
    assert detect_values(y, 86400, DetectorConfig(transform="sqrt"))["info"]["scale"] == \
        "square-root"
    with pytest.raises(DetectError, match="transform must be one of auto, log, sqrt, none"):
        detect_values(y, 86400, DetectorConfig(transform="boxcox"))
