"""The detector's model: a Holt-Winters filter, fitted by ML and run as a robust recursion.

:class:`RobustHoltWinters` is what the detector *learns*: statsmodels' Holt-Winters (additive
damped trend, additive season when the warm-up shows one) is fitted by ML on remembered rows
(:meth:`RobustHoltWinters.fit`), and each new value goes through the fitted model's
error-correction recursion (:meth:`RobustHoltWinters.learn_one`) made robust: innovations
beyond :data:`CLIP_SIGMAS` are clipped unless :data:`SHIFT_CONFIRM_POINTS` in a row exceed on
one side (the level then jumps: a shift is accepted). Measured: ``UnobservedComponents(...)
.append`` costs ~2.1 ms a point (34 s for 16k points); this recursion a few microseconds.

The initial residual scale comes from (seasonal) differences of the warm-up: the in-sample fit
overfits two cycles (measured sigma 0.009 in-sample against 0.12 true). With a season the scale
also follows the time of day (:class:`PhaseScale`): busy hours are noisier than the night.
The detector hands it values on the scale :mod:`forecast.power` chose from the warm-up (linear,
square root or log).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

# Season modelled when corr(x[t], x[t - P]) on the detrended warm-up is >= 0.3: > 2 standard
# errors of noise (0.04 for 2 days of 5-minute data, 0.14 hourly); a missed daily cycle makes
# every daily peak an alarm, a spurious one only costs P noisy indices.
MIN_SEASONAL_ACF = 0.3
# Innovations beyond 3 sigma (outside the 99.73 % band) are clipped (Huber-type robust filter).
CLIP_SIGMAS = 3.0
# A level shift is accepted after 3 consecutive same-side exceedances of CLIP_SIGMAS: for
# Gaussian noise that happens by chance with probability 0.00135^3 ~ 2.5e-9 per point.
SHIFT_CONFIRM_POINTS = 3
# E[min(Z^2, c^2)] for standard normal Z: divides the clipped-EWMA variance to stay unbiased.
_PHI = NormalDist()
CLIP_VARIANCE_FACTOR = (1 - 2 * CLIP_SIGMAS * _PHI.pdf(CLIP_SIGMAS)
                        - 2 * (1 - _PHI.cdf(CLIP_SIGMAS)) * (1 - CLIP_SIGMAS ** 2))
MAD_TO_SIGMA = 1.4826  # MAD -> standard deviation for Gaussian data
# Fit input cleaning: 5 robust sigmas (Gaussian probability 6e-7) marks a value as junk.
OUTLIER_SIGMAS = 5.0
RECUR_SLACK = 3  # points either side: a burst at about the same time of another cycle
# ML fit failed: simple exponential smoothing, alpha 0.2 (the usual 0.1-0.3 range, FPP3 8.1).
FALLBACK_ALPHA = 0.2
# Residual scale: EWMA of clipped squared residuals, span one warm-up but >= 200 points (the 3
# outlying points of one incident then raise sigma by < 7 %).
SCALE_MIN_SPAN = 200
# The smoothing parameters are re-fitted (ML, statsmodels) on the last 4 warm-ups of rows after
# 2 and 4 warm-ups of observed points, then every 4: two cycles are too few to learn a season.
REFIT_EVERY_WARMUPS = 4
SCALE_FLOOR = 1e-6  # scale floor, relative to max(1, |level|): constant series
# Time-of-day scale: the cycle's variance in 6 blocks (4 hours of a day; >= 4 points per block
# and cycle even for hourly data), each an EWMA over about a week of cycles, started from the
# warm-up's one-step errors shrunk towards 1 by 10 pseudo-points, kept within 0.1-10 x the mean.
# Measured (benchmarks/README.md, "Time-of-day scale"): 3 / 4 / 6 / 8 / 12 / 24 blocks.
PHASE_BLOCKS = 6
PHASE_SPAN_CYCLES = 7
PHASE_PRIOR_POINTS = 10
PHASE_FACTOR_RANGE = (0.1, 10.0)


def clip(z: float) -> float:
    return max(-CLIP_SIGMAS, min(CLIP_SIGMAS, z))


def seasonal_acf(x: np.ndarray, period: int) -> float:
    """corr(x[t], x[t - period]) of ``x`` (no NaN) minus a straight line. (A moving-average
    decomposition of two cycles keeps one, whose remainder is zero by construction.)"""
    if len(x) < 2 * period:
        return 0.0
    t = np.arange(len(x))
    resid = x - np.polyval(np.polyfit(t, x, 1), t)
    a, b = resid[period:], resid[:-period]
    if np.std(a) <= 0 or np.std(b) <= 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def fill(x: np.ndarray, period: int | None = None) -> np.ndarray:
    """Input for the season test and the ML fit only (the filter itself sees the raw values):
    NaN interpolated, and points more than OUTLIER_SIGMAS robust sigmas from their 5-point
    rolling median replaced by it, so one junk value cannot hide a daily cycle, nor be learnt
    into the season. On a quantized series most points equal their median and the MAD is 0:
    the scale is then the MAD of the points that differ from it, and with a `period` a jump
    that recurs at the same time of another cycle (within RECUR_SLACK points) is the cycle's
    own (a daily burst) and is kept. (Keeping recurring jumps on every series cost 3.7 NAB
    points: benchmarks/README.md, "One junk value in a quantized series".)"""
    ok = ~np.isnan(x)
    idx = np.arange(len(x))
    x = x if ok.all() else np.interp(idx, idx[ok], x[ok])
    med = pd.Series(x).rolling(5, center=True, min_periods=1).median().to_numpy()
    dev = np.abs(x - med)
    moved = dev[dev > 0]
    if not len(moved):
        return x
    quantized = not np.median(dev) > 0
    scale = MAD_TO_SIGMA * float(np.median(moved if quantized else dev))
    junk = dev > OUTLIER_SIGMAS * scale
    if quantized and period and junk.any():
        near = np.convolve(junk, np.ones(2 * RECUR_SLACK + 1), mode="same") > 0
        recurs = np.zeros_like(junk)
        for lag in range(period, len(x), period):
            recurs[lag:] |= near[:-lag]
            recurs[:-lag] |= near[lag:]
        junk &= ~recurs
    return np.where(junk, med, x)


@dataclass(frozen=True)
class HWParams:
    """Smoothing parameters (error-correction form) and initial states of a fitted model."""

    a: float
    b: float
    g: float
    phi: float
    l0: float
    b0: float
    s0: np.ndarray
    model: str  # holt-winters, damped-trend or ses-fallback


def ml_params(x: np.ndarray, period: int | None) -> HWParams:
    """Smoothing parameters and initial states of a Holt-Winters model fitted by statsmodels."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ExponentialSmoothing(
                x, trend="add", damped_trend=True, seasonal="add" if period else None,
                seasonal_periods=period, initialization_method="heuristic").fit(use_brute=False)
        p = res.params
        out = HWParams(
            a=float(p["smoothing_level"]), phi=float(p["damping_trend"]),
            b=float(p["smoothing_level"] * p["smoothing_trend"]),  # error-correction form
            g=float(p["smoothing_seasonal"]) if period else 0.0, l0=float(p["initial_level"]),
            b0=float(p["initial_trend"]), s0=np.asarray(p["initial_seasons"], dtype=float),
            model="holt-winters" if period else "damped-trend")
        if all(math.isfinite(v) for v in (out.a, out.b, out.g, out.phi, out.l0, out.b0)):
            return out
    except (ValueError, np.linalg.LinAlgError):
        pass
    return HWParams(a=FALLBACK_ALPHA, b=0.0, g=0.0, phi=0.0, l0=float(x[0]), b0=0.0,
                    s0=np.zeros(1), model="ses-fallback")


def refit_due(n_obs: int, warmup: int) -> bool:
    """Refit after 2 and 4 warm-ups of observed points, then every REFIT_EVERY_WARMUPS."""
    k, rest = divmod(n_obs, warmup)
    return rest == 0 and (k in (2, 4) or (k > 4 and k % REFIT_EVERY_WARMUPS == 0))


class PhaseScale:
    """Multiplicative time-of-day factor of the residual variance: ``var * factor[block]``.

    The cycle's ``period`` points are cut into :data:`PHASE_BLOCKS` blocks. Without it a series
    whose days are noisy and nights quiet (NAB's ``art_daily_flatmiddle``, traffic, CPU) shrinks
    its one scale overnight and raises an alarm every morning. The factors have mean 1; the
    overall level stays in the filter's ``var``.
    """

    def __init__(self, period: int | None) -> None:
        self.period = period or 1
        self.blocks = min(PHASE_BLOCKS, period) if period else 0
        self.factor = np.ones(max(self.blocks, 1))
        points_per_cycle = self.period / max(self.blocks, 1)  # updates of one block per cycle
        self.lam = 2.0 / (PHASE_SPAN_CYCLES * points_per_cycle + 1)
        self.since = 0

    def block(self, index: int) -> int:
        return (index % self.period) * self.blocks // self.period if self.blocks else 0

    def at(self, index: int) -> float:
        return float(self.factor[self.block(index)])

    def start(self, errors: list[tuple[int, float]]) -> None:
        """Factors from the warm-up's ``(index, z)`` one-step errors (z under factor 1)."""
        if not self.blocks or not errors:
            return
        index, z = np.array(errors, dtype=float).T
        blocks = (index.astype(int) % self.period) * self.blocks // self.period
        sq = np.minimum(z * z, CLIP_SIGMAS ** 2) / CLIP_VARIANCE_FACTOR
        total = np.bincount(blocks, weights=sq, minlength=self.blocks)
        count = np.bincount(blocks, minlength=self.blocks)
        f = (total + PHASE_PRIOR_POINTS) / (count + PHASE_PRIOR_POINTS)
        f = np.clip(f / f.mean(), *PHASE_FACTOR_RANGE)
        self.factor = f / f.mean()

    def learn_one(self, zc: float, index: int) -> float:
        """Learn a clipped z of row ``index``; returns the factor by which the filter's
        variance must grow (once a cycle the factors are brought back to mean 1), else 1."""
        if not self.blocks:
            return 1.0
        b = self.block(index)
        f = self.factor[b]
        f += self.lam * (zc * zc * f / CLIP_VARIANCE_FACTOR - f)
        self.factor[b] = min(PHASE_FACTOR_RANGE[1], max(PHASE_FACTOR_RANGE[0], f))
        self.since += 1
        if self.since < self.period:
            return 1.0
        self.since = 0
        mean = float(self.factor.mean())
        self.factor /= mean
        return mean


class RobustHoltWinters:
    """The filter's state after a warm-up ``x`` (model scale, NaN = missing) of ``warmup``
    observed points; ``candidate`` is the season to test (None: no season)."""

    def __init__(self, x: np.ndarray, candidate: int | None, warmup: int) -> None:
        self.hist: deque[float] = deque(maxlen=REFIT_EVERY_WARMUPS * warmup)
        self.hist.extend(float(v) for v in x)
        filled = fill(x)
        self.acf = seasonal_acf(fill(x, candidate), candidate) if candidate else 0.0
        self.period = candidate if candidate and self.acf >= MIN_SEASONAL_ACF else None
        lag = self.period or 1
        diffs = (x[lag:] - x[:-lag])[~np.isnan(x[lag:] - x[:-lag])]
        mad = float(np.median(np.abs(diffs - np.median(diffs)))) if len(diffs) else 0.0
        scale = (MAD_TO_SIGMA * mad or float(np.std(diffs)) if len(diffs) else 0.0) / math.sqrt(2)
        self.var = max(scale, SCALE_FLOOR * max(1.0, float(np.abs(filled).mean()))) ** 2
        self.lam = 2.0 / (max(warmup, SCALE_MIN_SPAN) + 1)
        self.season = [0.0] * (self.period or 1)
        self.run = [0, 0]  # [sign, length] of the streak of same-side exceedances
        self.a = self.b = self.g = self.phi = self.level = self.trend = 0.0
        self.phase = PhaseScale(self.period)
        self.fits = 0

    def sigma_at(self, index: int) -> float:
        """The residual scale of row ``index`` (the time-of-day factor included)."""
        return math.sqrt(self.var * self.phase.at(index))

    def fit(self, t: int) -> HWParams:
        """ML-fit the smoothing parameters on the remembered rows (the last ends at row
        ``t - 1``) and replay them."""
        x = np.array(self.hist, dtype=float)
        start = t - len(x)  # absolute index of x[0]
        p = ml_params(fill(x, self.period), self.period)
        self.a, self.b, self.g, self.phi = p.a, p.b, p.g, p.phi
        self.level, self.trend = p.l0, p.b0
        if self.period and p.model != "ses-fallback":
            for j, s in enumerate(p.s0):
                self.season[(start + j) % self.period] = float(s)
        run = [0, 0]
        errors = [(start + i, self.learn_one(float(v), start + i, run)[0])
                  for i, v in enumerate(x)]
        if not self.fits:  # the first fit: the time-of-day factors from the warm-up
            self.phase.start([(i, z) for i, z in errors if z is not None])
        self.fits += 1
        return p

    def season_at(self, index: int) -> float:
        return self.season[index % self.period] if self.period else 0.0

    def predict(self, t: int, steps: int = 1) -> float:
        """Forecast for row ``t + steps - 1`` from the state after row ``t - 1``."""
        damp = sum(self.phi ** j for j in range(1, steps + 1))
        return self.level + damp * self.trend + self.season_at(t + steps - 1)

    def learn_one(self, x: float, index: int,
                  run: list[int] | None = None) -> tuple[float | None, bool]:
        """Filter one model-scale value of row ``index``: (z or None, shift accepted). ``run``
        is the exceedance streak to use (mutated; default the filter's own)."""
        run = self.run if run is None else run
        pred = self.level + self.phi * self.trend + self.season_at(index)
        if math.isnan(x):
            self.level, self.trend = self.level + self.phi * self.trend, self.phi * self.trend
            return None, False
        sigma = self.sigma_at(index)
        z = (x - pred) / sigma
        sign = int(z > CLIP_SIGMAS) - int(z < -CLIP_SIGMAS)
        if sign and sign == run[0]:
            run[1] += 1
        else:
            run[0], run[1] = sign, (1 if sign else 0)
        if run[1] >= SHIFT_CONFIRM_POINTS:  # accept the level shift: the level jumps to the data
            self.level, self.trend = x - self.season_at(index), 0.0
            run[0], run[1] = 0, 0
            return z, True
        ec = clip(z) * sigma
        self.level += self.phi * self.trend + self.a * ec
        self.trend = self.phi * self.trend + self.b * ec
        if self.period:
            self.season[index % self.period] += self.g * ec
        return z, False

    def learn_scale(self, zc: float, index: int) -> None:
        """Update the residual variance and the time-of-day factors with the clipped z of row
        ``index`` (EWMAs of clipped squares)."""
        self.var += self.lam * (zc * zc * self.var / CLIP_VARIANCE_FACTOR - self.var)
        self.var *= self.phase.learn_one(zc, index)
