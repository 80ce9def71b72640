"""The scale the detector models a series on: linear, square root or log (Tukey's ladder).

A model with one noise scale is right only where the noise does not grow with the level. Counts
and prices often have noise proportional to the level (log scale), Poisson-like counts noise
growing with its square root (square-root scale), and percentages, speeds, temperatures or
latencies with a steady baseline additive noise (linear scale). Modelling an additive-noise
series on the log scale shrinks its busy hours' noise and swells its quiet hours' (a jump of 30
on a level of 10 becomes a small step next to the night's log-noise), and the reverse holds for
proportional noise.

:func:`choose_power` reads it from the warm-up with Tukey's **spread-versus-level** rule
(Tukey 1977, *Exploratory Data Analysis*, ch. 3; Hoaglin, Mosteller & Tukey 1983): cut the
warm-up into short blocks, take each block's median (level) and the median absolute change
between its neighbouring points (spread), and fit ``log spread = a + b log level``. The
variance-stabilising power is ``1 - b``, rounded to the nearest rung of the ladder
``{0 (log), 1/2 (square root), 1 (linear)}``. Series with negative values stay linear; a warm-up
whose levels do not vary enough to read a slope keeps the log scale (the choice before this
rule, ``benchmarks/README.md``, "Spread versus level").

The transforms are Box-Cox with a shift of 1, odd-symmetric so that every real value maps:
``sign(x) ((1 + |x|)^p - 1) / p``, and ``sign(x) log1p|x|`` at ``p = 0``.
"""

from __future__ import annotations

import math

import numpy as np

LOG, SQRT, LINEAR = 0.0, 0.5, 1.0
POWERS = (LOG, SQRT, LINEAR)
POWER_NAMES = {LOG: "log", SQRT: "square-root", LINEAR: "linear"}
# Blocks of 1/24 of the warm-up (2 hours of two days of 5-minute data; one per hour of a day for
# two days of hourly data), at least 6 points so that a block's spread has 5 differences.
BLOCKS_PER_WARMUP = 24
MIN_BLOCK_POINTS = 6
# A slope needs >= 12 blocks with a positive level and spread (a block's median of 5-23 changes
# is a rough spread, and a slope through a handful of them is noise: two days of hourly data give
# 8 blocks and keep the log scale), whose levels span >= 1.5 x.
MIN_BLOCKS = 12
MIN_LEVEL_RATIO = 1.5
# Largest |u| on the model scale mapped back (the log scale's expm1 overflows beyond ~709).
MAX_MODEL_VALUE = 700.0


def to_model(x: float, power: float) -> float:
    """``x`` on the model scale of ``power`` (one of :data:`POWERS`)."""
    if power == LINEAR:
        return x
    if power == LOG:
        return math.copysign(math.log1p(abs(x)), x)
    return math.copysign(((1.0 + abs(x)) ** power - 1.0) / power, x)


def from_model(u: float, power: float) -> float:
    """The inverse of :func:`to_model` (model-scale values beyond ~700 are capped)."""
    if power == LINEAR:
        return u
    if power == LOG:
        return math.copysign(math.expm1(min(abs(u), MAX_MODEL_VALUE)), u)
    top = math.exp(MAX_MODEL_VALUE) ** power  # the cap matching the log scale's
    return math.copysign((1.0 + power * min(abs(u), top)) ** (1.0 / power) - 1.0, u)


def spread_level_slope(x: np.ndarray) -> float | None:
    """The slope of log spread on log level over blocks of ``x`` (finite values), or None when
    the blocks do not show it (too few blocks with a positive level and spread, or levels
    spanning less than :data:`MIN_LEVEL_RATIO`)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    size = max(MIN_BLOCK_POINTS, len(x) // BLOCKS_PER_WARMUP)
    levels, spreads = [], []
    for start in range(0, len(x) - size + 1, size):
        block = x[start:start + size]
        levels.append(float(np.median(block)))
        spreads.append(float(np.median(np.abs(np.diff(block)))))
    lv, sp = np.array(levels), np.array(spreads)
    ok = (lv > 0) & (sp > 0)
    if ok.sum() < MIN_BLOCKS:
        return None
    log_level, log_spread = np.log(lv[ok]), np.log(sp[ok])
    if log_level.max() - log_level.min() < math.log(MIN_LEVEL_RATIO):
        return None
    return float(np.polyfit(log_level, log_spread, 1)[0])


def choose_power(warmup: np.ndarray) -> float:
    """The ladder's power for a series whose warm-up is ``warmup`` (NaN = missing)."""
    x = np.asarray(warmup, dtype=float)
    x = x[np.isfinite(x)]
    if not len(x) or x.min() < 0:
        return LINEAR
    slope = spread_level_slope(x)
    if slope is None:
        return LOG
    return min(POWERS, key=lambda p: abs((1.0 - slope) - p))
