"""The detector's four scores, each 0..1 and one minus a tail probability under the model, so
one alarm threshold means one false-alarm rate (river's ``learn_one`` / ``score_one`` split):

- :func:`point_score`: ``2 Phi(|z| / tail) - 1`` of the one-step residual (``tail`` from
  :class:`forecast.calibration.RollingCalibration`: heavy tails raise the bar);
- :class:`Cusum`: ``1 - exp(-2 k S)`` of the upward CUSUM ``S`` (a sustained rise);
- :class:`RiseTest`: the OLS rise over a window against what noise plus the model's own level
  wander explain;
- :class:`ChangeTest`: the mean ``|z|`` of the last points against the recent errors (a change
  of behaviour no single point shows).
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist

_PHI = NormalDist()
# CUSUM reference k = 0.5 sigma, the textbook choice for a 1-sigma shift (Montgomery, Statistical
# Quality Control); for Gaussian increments P(S > s) <= exp(-2 k s) (Lundberg bound).
CUSUM_K = 0.5
# A sustained rise is tested over one season (or 24 points without one): the OLS rise over the
# window against what noise plus the model's own level wander (alpha * sigma per step) explain.
TREND_WINDOW_NO_SEASON = 24
# Change test: the mean |z| (clipped at the filter's clip) of the last 24 points (2 hours of
# 5-minute data) against the recent errors' mean and sd (sd floored at 0.3, half the Gaussian
# 0.60, so a near-perfect fit of a flat series does not turn rounding into alarms). 24 beat 12
# on the NAB grid (benchmarks/nab_real.py, README).
CHANGE_POINTS = 24
CHANGE_SD_FLOOR = 0.3


def point_score(absz: float, tail: float) -> float:
    """Two-sided normal tail of the one-step ``|z|``, rescaled by the heavy-tail factor."""
    return math.erf(absz / tail / math.sqrt(2.0))


def cusum_score(s: float) -> float:
    return 1.0 - math.exp(-2.0 * CUSUM_K * s)


def point_limit(threshold: float, tail: float) -> float:
    """|z| at which :func:`point_score` reaches ``threshold``."""
    return tail * _PHI.inv_cdf(0.5 + min(threshold, 1 - 1e-12) / 2)


def cusum_limit(threshold: float) -> float:
    """CUSUM sum S at which :func:`cusum_score` reaches ``threshold``."""
    return -math.log(max(1.0 - threshold, 1e-300)) / (2.0 * CUSUM_K)


class Cusum:
    """Upward CUSUM of clipped one-step z: ``S = max(0, S + z - k)``."""

    def __init__(self) -> None:
        self.s = 0.0

    def learn_one(self, zc: float) -> None:
        self.s = max(0.0, self.s + zc - CUSUM_K)

    def reset(self) -> None:
        self.s = 0.0

    def score_one(self) -> float:
        return cusum_score(self.s)


class RiseTest:
    """One-sided normal probability that the OLS rise over the last ``length`` points is not
    noise plus the model's level wander."""

    def __init__(self, length: int) -> None:
        self.length = length
        self.window: deque[tuple[float, float]] = deque()
        self.sums = [0.0, 0.0, 0.0, 0.0]  # sum i, sum i^2, sum u, sum i*u over the window
        self.base = 0.0
        self.rise = 0.0  # the last score's OLS rise over the window (model scale) ...
        self.ratio = 0.0  # ... and that rise over its noise standard deviation

    def reset(self) -> None:
        self.window.clear()  # the rise test starts afresh after a jump
        self.sums = [0.0, 0.0, 0.0, 0.0]

    def learn_one(self, i: float, u: float) -> None:
        if not self.window:
            self.base = i  # indices relative to the window's start keep the sums small
        i -= self.base
        self.window.append((i, u))
        self.sums = [a + b for a, b in zip(self.sums, (i, i * i, u, i * u), strict=True)]
        if len(self.window) > self.length:
            j, w = self.window.popleft()
            self.sums = [a - b for a, b in zip(self.sums, (j, j * j, w, j * w), strict=True)]

    def score_one(self, sigma: float, alpha: float) -> float:
        """``sigma``: the one-step scale; ``alpha``: the level's smoothing parameter."""
        n = len(self.window)
        if n < self.length:
            return 0.0
        si, sii, su, siu = self.sums
        sxx = sii - si * si / n
        rise = (siu - si * su / n) / sxx * (n - 1)
        var = sigma * sigma * ((n - 1) ** 2 / sxx + (n - 1) * alpha * alpha)
        self.rise, self.ratio = rise, rise / math.sqrt(var)
        return _PHI.cdf(self.ratio) if rise > 0 else 0.0


class ChangeTest:
    """Is the mean |z| of the last CHANGE_POINTS points unusual for the recent errors?
    (Numenta's "anomaly likelihood" idea on the model's own errors: a change in behaviour
    (variance, pattern) that no single point shows.) One-sided normal tail of that mean."""

    def __init__(self) -> None:
        self.short: deque[float] = deque(maxlen=CHANGE_POINTS)
        self.signed: deque[float] = deque(maxlen=CHANGE_POINTS)  # the clipped z themselves
        self.mean = 0.0  # the last score's mean |z| ...
        self.spread = 0.0  # ... and its reference's standard error

    def learn_one(self, absz: float, zc: float = 0.0) -> None:
        self.short.append(absz)
        self.signed.append(zc)

    @property
    def direction(self) -> int:
        """+1 when the window's residuals lie mostly above the forecast, else -1."""
        return 1 if sum(self.signed) > 0 else -1

    def score_one(self, err_mean: float, err_sd: float) -> float:
        if len(self.short) < CHANGE_POINTS or err_sd <= 0:
            return 0.0
        self.mean = mean = sum(self.short) / CHANGE_POINTS
        self.spread = max(err_sd, CHANGE_SD_FLOOR) / math.sqrt(CHANGE_POINTS)
        return _PHI.cdf((mean - err_mean) / self.spread)
