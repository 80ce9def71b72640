"""One junk value must not be learnt into the season, and a burst that recurs every day must.

Shaped like NAB's ec2_cpu_utilization_24ae8d (5-minute CPU readings quantized to a few values):
most points equal their rolling median there, so the fit's outlier cleaning had no scale and
left a single junk value in; the ML fit then learnt it into the season, and the forecast at
that time of day stayed ~70x the level for days (a false dip the next day)."""

from __future__ import annotations

import numpy as np

from forecast.detect_csv import detect_values
from forecast.holt_winters import fill

DAY = 288  # 5-minute points


def test_one_junk_value_is_not_learnt_into_the_season() -> None:
    rng = np.random.default_rng(3)
    y = rng.choice([0.066, 0.132, 0.134, 0.134, 0.134, 0.2], size=12 * DAY)
    for d in range(12):  # a busy hour from 03:00 every day: the season
        y[d * DAY + 36:d * DAY + 48] = rng.choice([0.6, 0.666, 0.734], size=12)
    junk_at = 3 * DAY + 136  # 11:20 on day 4: in the rows of the fit after 4 days
    y[junk_at] = 1000.0
    out = detect_values(y, 300)
    assert out["info"]["period"] == DAY
    same_time_later = out["forecast"][junk_at + DAY::DAY]
    assert np.all(same_time_later < 0.5), same_time_later  # the level is ~0.13
    assert out["flag"][junk_at] not in (None, "none")
    assert [f for f in out["flag"][junk_at + 1:] if f not in (None, "none")] == []


def test_a_burst_that_recurs_each_day_is_kept_and_a_lone_one_is_not() -> None:
    rng = np.random.default_rng(5)
    x = rng.choice([0.0, 0.0, 0.0, 0.1, -0.1], size=4 * DAY)  # the MAD about the median is 0
    bursts = [d * DAY + 37 + int(rng.integers(-2, 3)) for d in range(4)]  # 03:05 +- 10 min
    x[bursts] = 3.0
    lone = 2 * DAY + 150
    x[lone] = 3.0
    cleaned = fill(x, DAY)
    assert abs(cleaned[lone]) <= 0.1  # replaced by its rolling median
    assert np.array_equal(cleaned[bursts], x[bursts])  # the cycle's own: kept
    assert np.abs(fill(x)[bursts]).max() <= 0.1  # without a period they are junk too
