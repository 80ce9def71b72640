"""The sequence memory of forecast/patterns.py and its place in the detector."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.detect import DetectorConfig, StreamingDetector, Trigger
from forecast.explain import describe
from forecast.patterns import (
    ACTIVE,
    BITS,
    NoveltyLikelihood,
    PatternDetector,
    TransitionMemory,
    ValueEncoder,
)
from forecast.run import classify_series

# A repeating shape: 12 points that climb and fall back (an hourly cycle of 5-minute data).
SHAPE_A = [0, 1, 2, 4, 6, 7, 7, 6, 4, 2, 1, 0]
SHAPE_B = [0, 7, 0, 7, 0, 7, 0, 7, 0, 7, 0, 7]  # the same range, another order


def _scores(values: Sequence[float] | np.ndarray) -> np.ndarray:
    det = PatternDetector()
    return np.array([det.learn_one(float(v)) for v in values])


def _novelty(mem: TransitionMemory, bits: Any) -> float:
    out = mem.learn_one(bits)
    assert out is not None  # only the first value has no novelty
    return out


def test_a_break_in_a_repeating_pattern_is_flagged() -> None:
    y = SHAPE_A * 200 + SHAPE_B + SHAPE_A * 20
    s = _scores(y)
    brk = 200 * len(SHAPE_A)
    assert np.nanmax(s[brk - 600:brk]) < 0.99  # the learnt pattern is normal
    assert np.nanmax(s[brk:brk + len(SHAPE_B)]) >= 0.9999  # the break is not


def test_a_pattern_repeating_many_times_stops_being_flagged() -> None:
    y = SHAPE_A * 200 + SHAPE_B * 300
    s = _scores(y)
    brk = 200 * len(SHAPE_A)
    assert np.nanmax(s[brk:brk + 24]) >= 0.9999
    assert np.nanmax(s[-600:]) < 0.99  # B is the new normal


def test_novelty_is_the_share_of_bits_not_predicted() -> None:
    enc = ValueEncoder(1.0)
    mem = TransitionMemory()
    out = [mem.learn_one(enc.bits(v)) for v in (0.0, 10.0, 0.0, 10.0, 0.0, 10.0)]
    assert out[0] is None
    assert out[1] == 1.0  # nothing ever followed 0's bits
    assert out[-1] == 0.0  # 10 always followed 0
    assert _novelty(mem, enc.bits(55.0)) >= 0.75  # never seen after 10 (bar chance overlaps)
    alt = TransitionMemory()  # after 0 comes 10 or 50, half the time each: both predicted
    out = [alt.learn_one(enc.bits(v)) for v in [0.0, 10.0, 0.0, 50.0] * 50]
    assert out[-1] == 0.0 and out[-3] == 0.0
    alt.learn_one(enc.bits(0.0))
    assert _novelty(alt, enc.bits(11.0)) <= 2 / ACTIVE  # one bucket from 10: one bit is new
    alt.learn_one(enc.bits(0.0))
    assert _novelty(alt, enc.bits(30.0)) >= 0.75  # between the two: new


def test_the_encoding_shares_bits_with_near_values_only() -> None:
    enc = ValueEncoder(0.5)
    a, b, far = enc.bits(10.0), enc.bits(10.6), enc.bits(40.0)
    assert len(a) >= ACTIVE - 3 and a.max() < BITS  # distinct bits (a hash may merge two)
    assert len(np.intersect1d(a, b)) >= len(a) - 2  # the next bucket: one bit changes
    assert len(np.intersect1d(a, far)) <= 3  # 60 buckets away: chance overlaps only
    assert np.array_equal(enc.bits(10.0), a)  # deterministic
    for x in (1e308, -1e308, 0.0, -3.2):  # every finite value has its bits
        bits = enc.bits(x)
        assert 0 < len(bits) <= ACTIVE and bits.min() >= 0 and bits.max() < BITS
    wide = ValueEncoder.from_warmup([-1e308, 1e308] * 20)  # a range beyond float
    assert np.isfinite(wide.resolution) and wide.resolution > 0
    flat = ValueEncoder.from_warmup([3.0] * 30)  # a flat warm-up: any change is new
    assert flat.resolution == pytest.approx(3e-9)


def test_one_small_novelty_after_none_is_not_an_alarm() -> None:
    """The spread floor: a series that never showed anything new (spread 0) must not alarm on
    the first context new at one order of six."""
    lk = NoveltyLikelihood()
    for _ in range(500):
        lk.learn_one(0.0)
    assert lk.learn_one(1 / 6) < 0.99


def test_the_score_at_t_does_not_depend_on_later_points() -> None:
    rng = np.random.default_rng(7)
    y = np.tile(SHAPE_A, 150) + rng.normal(0, 0.3, 1800)
    other = y.copy()
    other[1200:] = rng.normal(50, 20, 600)  # a different future
    a, b = _scores(y), _scores(other)
    np.testing.assert_array_equal(a[:1200], b[:1200])
    assert not np.array_equal(a[1200:], b[1200:], equal_nan=True)


def test_hostile_input_does_not_crash() -> None:
    y: list[float] = [math.nan, math.inf, -math.inf, 1e308, -1e308, 0.0, 5.0] * 100
    y += [3.0] * 500 + [1e300] * 3 + [3.0] * 100
    s = _scores(y)
    finite = s[np.isfinite(s)]
    assert ((finite >= 0) & (finite <= 1)).all()
    assert np.isnan(s[:2]).all()  # NaN and inf are missing, not scored
    flat = _scores([2.5] * 1000)  # a constant series never alarms
    assert np.nanmax(flat) < 0.5


def test_the_detector_names_the_pattern_test() -> None:
    """A series the Holt-Winters tests find unremarkable at the break (same range, same
    level), whose order the pattern memory knows: the alarm is the pattern test's."""
    y = np.array(SHAPE_A * 250 + SHAPE_B * 2 + SHAPE_A * 60, dtype=float)
    y += np.random.default_rng(3).normal(0, 0.05, len(y))
    brk = 250 * len(SHAPE_A)
    det = StreamingDetector(300.0, DetectorConfig(season="none", patterns=True))
    pts = [det.update(v) for v in y]
    tests = {p.trigger.test for p in pts[brk:brk + 24] if p.trigger is not None
             and p.anomaly_score >= det.policy.threshold}
    assert "pattern" in tests
    off = StreamingDetector(300.0, DetectorConfig(season="none", patterns=False))
    assert off.patterns is None
    assert all(p.trigger is None or p.trigger.test != "pattern"
               for p in (off.update(v) for v in y))


def test_pattern_explanation_gives_statistic_usual_and_limit() -> None:
    trig = Trigger("pattern", 0.62, 0.41, 1, 10, 5.0, 1.0, 9.0, 5.0, 5.0, usual=0.18)
    text = describe(trig, 7.5, "mean_score", 0.9999, (0.0, 10.0))
    assert text.startswith("pattern test: over the last 10 windows mean_score")
    assert "mean novelty 0.62" in text and "usual 0.18" in text and "limit 0.41" in text
    assert "alarm at score 0.9999" in text


def test_old_habits_fade() -> None:
    enc = ValueEncoder(1.0)
    mem, keep = TransitionMemory(memory=10), TransitionMemory(memory=10**6)
    for v in [0.0, 10.0] * 5:  # 10 points: then every count is halved
        mem.learn_one(enc.bits(v))
        keep.learn_one(enc.bits(v))
    assert keep.totals.max() >= 5.0
    np.testing.assert_array_equal(mem.totals, keep.totals / 2)
    np.testing.assert_array_equal(mem.counts, keep.counts / 2)


def test_the_resolution_comes_from_the_first_points_and_they_are_learnt() -> None:
    det = PatternDetector(range_points=40)
    first = [det.learn_one(v) for v in np.tile([0.0, 13.0], 20)]
    assert all(math.isnan(v) for v in first[:39]) and first[39] == 0.0  # learning
    assert det.encoder is not None and det.encoder.resolution == 0.1  # 13 / 130
    assert det.memory.t == 40  # the buffered points were learnt in order


def test_the_product_path_explains_a_pattern_alarm() -> None:
    """``[forecast] patterns`` reaches the detector of ``polarwatch forecast`` and the stored
    explanation names the pattern test."""
    # a 7-point cycle (the daily season of 5-minute data cannot hold it), then 3 cycles of
    # another order of the same range
    y = np.array([1, 2, 4, 6, 7, 5, 3] * 400 + [1, 7] * 10 + [1, 2, 4, 6, 7, 5, 3] * 100,
                 dtype=float)
    y += np.random.default_rng(3).normal(0, 0.05, len(y))
    ts = pd.date_range("2026-01-01", periods=len(y), freq="5min", tz="UTC")
    on = classify_series(ts, y, 300.0, [], patterns=True, metric="mean_score")
    texts = [t for i, t in enumerate(on["explanation"]) if t and "pattern test" in t
             and 2800 <= i < 2830]
    assert texts and "mean novelty" in texts[0] and "limit" in texts[0]
    off = classify_series(ts, y, 300.0, [], metric="mean_score")
    assert not any(t and "pattern test" in t for t in off["explanation"])


def test_novelty_as_high_as_a_month_ago_is_not_news() -> None:
    """The usual level of novelty covers LONG_POINTS rows (HTM's month of 5-minute rows): a
    stretch of novelty like four seen in the last month does not reach the alarm threshold,
    though the last 2,300 rows were quiet (a week's history would call it unheard of)."""
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    for _ in range(4):
        parts += [rng.uniform(0, 0.1, 1200), rng.uniform(0.4, 0.6, 300)]
    parts += [rng.uniform(0, 0.1, 2300), rng.uniform(0.4, 0.6, 300)]
    novelty = np.concatenate(parts)
    month, week = NoveltyLikelihood(), NoveltyLikelihood(long=2016)
    s_month = [month.learn_one(float(v)) for v in novelty]
    s_week = [week.learn_one(float(v)) for v in novelty]
    assert max(s_month[-300:]) < 0.999
    assert max(s_week[-300:]) > 0.99999


def test_a_history_too_short_to_estimate_is_refused() -> None:
    with pytest.raises(ValueError, match="history must be >= 288"):
        PatternDetector(history=100)
