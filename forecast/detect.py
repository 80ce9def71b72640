"""Causal streaming anomaly detector: each point's output uses only the points up to it.

1. **Warm-up** (no output): ``warmup`` observed points; then statsmodels Holt-Winters (additive
   damped trend, additive daily/weekly season when the warm-up shows one) is fitted by ML on it,
   and re-fitted on recent *past* rows at fixed counts of observed points. The initial residual
   scale comes from (seasonal) differences of the warm-up: the in-sample fit overfits two cycles
   (measured sigma 0.009 in-sample against 0.12 true).
2. **Online filter**: the fitted model's error-correction recursion (statsmodels'
   ``ExponentialSmoothing`` filter) made robust: innovations beyond ``CLIP_SIGMAS`` are clipped
   unless ``SHIFT_CONFIRM_POINTS`` in a row exceed on one side (the level then jumps: a shift
   is accepted). Measured: ``UnobservedComponents(...).append`` costs ~2.1 ms a point (34 s for
   16k points); this recursion a few microseconds.
3. **Score** (0..1): the max of ``2 Phi(|z|) - 1`` (one-step residual), ``1 - exp(-2 k S)``
   (upward CUSUM) and the rise test: each is one minus a tail probability under the model, so
   one threshold means one false-alarm rate.
   Plus the **change test** (the mean |z| of the last points against the recent errors: a change
   of behaviour no single point shows) and a conformal recalibration of the point test on the
   recent one-step errors (heavy tails raise the bar); the band's half-width is the empirical
   ``1 - alpha`` quantile of those errors (conformal), not the Gaussian one.
4. **Kind**: ``spike`` (point exceedance), ``reactive`` (confirmed level jump, no build-up
   before), ``anticipatory`` (sustained rise: CUSUM or rise test; an exceedance after a
   build-up; or the forecast crossing ``crossing`` within ``horizon``).
5. :class:`forecast.alarms.AlarmPolicy` turns scores into episodes with one alarm each.

Non-negative warm-ups (counts) are modelled on a ``sign(x) log1p|x|`` scale.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from forecast.alarms import (
    DEFAULT_REARM,
    FLAG_ANTICIPATORY,
    FLAG_NONE,
    FLAG_REACTIVE,
    FLAG_SPIKE,
    AlarmPolicy,
    suppress_points,
)

DAY_SECONDS, WEEK_SECONDS = 86400.0, 7 * 86400.0
# Warm-up: ~30 points, the usual rule of thumb for an ML fit of a few smoothing parameters; with
# a season two full cycles (one cannot separate level from season).
WARMUP_MIN_POINTS = 30
SEASON_CYCLES = 2
# Seasons from 4 points (6-hourly data) to one day of 1-minute data (1,440: 2,880-point warm-up).
MIN_SEASON_POINTS, MAX_SEASON_POINTS = 4, 1440
# Season modelled when corr(x[t], x[t - P]) on the detrended warm-up is >= 0.3: > 2 standard
# errors of noise (0.04 for 2 days of 5-minute data, 0.14 hourly); a missed daily cycle makes
# every daily peak an alarm, a spurious one only costs P noisy indices.
MIN_SEASONAL_ACF = 0.3
# Innovations beyond 3 sigma (outside the 99.73 % band) are clipped (Huber-type robust filter).
CLIP_SIGMAS = 3.0
# A level shift is accepted after 3 consecutive same-side exceedances of CLIP_SIGMAS: for
# Gaussian noise that happens by chance with probability 0.00135^3 ~ 2.5e-9 per point.
SHIFT_CONFIRM_POINTS = 3
# CUSUM reference k = 0.5 sigma, the textbook choice for a 1-sigma shift (Montgomery, Statistical
# Quality Control); for Gaussian increments P(S > s) <= exp(-2 k s) (Lundberg bound).
CUSUM_K = 0.5
BUILDUP_SCORE = 0.99  # a build-up: the CUSUM before the point had reached tail prob. 1 %
# E[min(Z^2, c^2)] for standard normal Z: divides the clipped-EWMA variance to stay unbiased.
_PHI = NormalDist()
CLIP_VARIANCE_FACTOR = (1 - 2 * CLIP_SIGMAS * _PHI.pdf(CLIP_SIGMAS)
                        - 2 * (1 - _PHI.cdf(CLIP_SIGMAS)) * (1 - CLIP_SIGMAS ** 2))
MAD_TO_SIGMA = 1.4826  # MAD -> standard deviation for Gaussian data
# Fit input cleaning: 5 robust sigmas (Gaussian probability 6e-7) marks a value as junk.
OUTLIER_SIGMAS = 5.0
# ML fit failed: simple exponential smoothing, alpha 0.2 (the usual 0.1-0.3 range, FPP3 8.1).
FALLBACK_ALPHA = 0.2
# Residual scale: EWMA of clipped squared residuals, span one warm-up but >= 200 points (the 3
# outlying points of one incident then raise sigma by < 7 %).
SCALE_MIN_SPAN = 200
# The smoothing parameters are re-fitted (ML, statsmodels) on the last 4 warm-ups of rows after
# 2 and 4 warm-ups of observed points, then every 4: two cycles are too few to learn a season.
REFIT_EVERY_WARMUPS = 4
# A sustained rise is tested over one season (or 24 points without one): the OLS rise over the
# window against what noise plus the model's own level wander (alpha * sigma per step) explain.
TREND_WINDOW_NO_SEASON = 24
# Conformal calibration (see StreamingDetector._calibrate): the last 2,016 one-step |z| (a week
# of 5-minute data), from 100 of them on (a 1 % quantile needs ~100), refreshed every 24 points.
CALIBRATE_WINDOW, CALIBRATE_MIN, CALIBRATE_EVERY = 2016, 100, 24
TAIL_QUANTILE = 0.99
# Change test: the mean |z| (clipped at CLIP_SIGMAS) of the last 24 points (2 hours of 5-minute
# data) against the recent errors' mean and sd (sd floored at 0.3, half the Gaussian 0.60, so a
# near-perfect fit of a flat series does not turn rounding into alarms). 24 beat 12 on the NAB
# grid (benchmarks/nab_real.py, README).
CHANGE_POINTS = 24
CHANGE_SD_FLOOR = 0.3
SCALE_FLOOR = 1e-6  # scale floor, relative to max(1, |level|): constant series


class DetectError(ValueError):
    """Invalid detector settings (the message says which and what is valid)."""


def season_points(interval_seconds: float) -> int | None:
    """The daily (or, for daily-or-coarser data, weekly) cycle in points, if it is usable."""
    cycle = DAY_SECONDS if interval_seconds < DAY_SECONDS else WEEK_SECONDS
    points = cycle / interval_seconds
    p = int(round(points))
    return p if abs(points - p) < 1e-9 and MIN_SEASON_POINTS <= p <= MAX_SEASON_POINTS else None


def warmup_points(period: int | None) -> int:
    return max(WARMUP_MIN_POINTS, SEASON_CYCLES * period) if period else WARMUP_MIN_POINTS


def _fwd(x: float, log: bool) -> float:
    return math.copysign(math.log1p(abs(x)), x) if log else x


def _inv(u: float, log: bool) -> float:
    return math.copysign(math.expm1(min(abs(u), 700.0)), u) if log else u


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


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of one detector (every default is a named constant above or in alarms.py)."""

    alpha: float = 0.05  # prediction interval 1 - alpha ([forecast] alpha)
    threshold: float | None = None  # AlarmPolicy threshold (None: alarms.DEFAULT_THRESHOLD)
    season: int | str = "auto"  # "auto" (daily/weekly from the interval), "none" or points
    transform: str = "auto"  # "auto" (log when the warm-up is >= 0), "log" or "none"
    crossing: float | None = None  # anticipatory when the forecast crosses this level
    horizon: int = 12  # steps ahead for the crossing rule ([forecast] horizon)
    suppress_seconds: float | None = None  # AlarmPolicy window (None: alarms default)

    def period(self, interval_seconds: float) -> int | None:
        if self.season in ("auto", "none"):
            return season_points(interval_seconds) if self.season == "auto" else None
        if isinstance(self.season, int) and self.season >= 2:
            return self.season
        raise DetectError(f"season must be 'auto', 'none' or an integer >= 2, "
                          f"got {self.season!r}")


@dataclass
class Point:
    forecast: float
    lower: float
    upper: float
    anomaly_score: float
    flag: str  # the alarm's kind on the point that opens an episode, else "none"
    kind: str | None = None  # the candidate before the alarm policy
    episode: int | None = None  # id of the alarm episode the point belongs to
    event: str | None = None  # "open" / "resolve" when the point opens / resolves one
    episode_kind: str | None = None  # the class of that episode so far


@dataclass
class StreamingDetector:
    """Feed values one at a time with :meth:`update`; NaN marks a missing point."""

    interval_seconds: float
    config: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        if not 0.0 < cfg.alpha < 1.0:
            raise DetectError(f"alpha must be in (0, 1), got {cfg.alpha}")
        if cfg.transform not in ("auto", "log", "none"):
            raise DetectError(f"transform must be auto, log or none, got {cfg.transform!r}")
        self.candidate_period = cfg.period(self.interval_seconds)
        self.warmup = warmup_points(self.candidate_period)
        suppress = suppress_points(self.interval_seconds, *(
            [] if cfg.suppress_seconds is None else [cfg.suppress_seconds]))
        kw: dict[str, Any] = {} if cfg.threshold is None else {
            "threshold": cfg.threshold, "rearm": min(DEFAULT_REARM, cfg.threshold)}
        self.policy = AlarmPolicy(min_points=self.warmup, suppress=suppress, **kw)
        self.z_interval = _PHI.inv_cdf(1 - cfg.alpha / 2)
        self.band_z = self.z_interval  # the band's half-width in sigmas (conformal later)
        self.tail = 1.0  # heavy-tail factor of the point score (see _calibrate)
        self.recent: deque[float] = deque(maxlen=CALIBRATE_WINDOW)
        self.since_calibration = 0
        self.short: deque[float] = deque(maxlen=CHANGE_POINTS)
        self.err_mean, self.err_sd = 0.0, 0.0
        self.hist: deque[float] = deque(maxlen=REFIT_EVERY_WARMUPS * self.warmup)
        self._buffer: list[float] = []
        self.n_obs = 0
        self.t = 0  # rows processed so far (= absolute index of the next row)
        self.ready = False
        self.period: int | None = None
        self.log = False
        self.info: dict[str, Any] = {"warmup": self.warmup, "fits": 0}

    def _initialize(self) -> None:
        raw = np.array(self._buffer, dtype=float)
        obs = raw[~np.isnan(raw)]
        self.log = (bool(obs.min() >= 0) if self.config.transform == "auto"
                    else self.config.transform == "log")
        x = np.array([_fwd(v, self.log) for v in raw])
        self.hist.extend(float(v) for v in x)
        filled = _fill(x)
        period = self.candidate_period
        acf = seasonal_acf(filled, period) if period else 0.0
        self.period = period if period and acf >= MIN_SEASONAL_ACF else None
        lag = self.period or 1
        diffs = (x[lag:] - x[:-lag])[~np.isnan(x[lag:] - x[:-lag])]
        mad = float(np.median(np.abs(diffs - np.median(diffs)))) if len(diffs) else 0.0
        scale = (MAD_TO_SIGMA * mad or float(np.std(diffs)) if len(diffs) else 0.0) / math.sqrt(2)
        self.var = max(scale, SCALE_FLOOR * max(1.0, float(np.abs(filled).mean()))) ** 2
        self.lam = 2.0 / (max(self.warmup, SCALE_MIN_SPAN) + 1)
        self.season = [0.0] * (self.period or 1)
        self.cusum, self.run, self.run_buildup = 0.0, [0, 0], 0.0
        self.window_len = self.period or TREND_WINDOW_NO_SEASON
        self.window: deque[tuple[float, float]] = deque()
        self.sums = [0.0, 0.0, 0.0, 0.0]  # sum i, sum i^2, sum u, sum i*u over the window
        self.info.update(period=self.period, seasonal_acf=round(acf, 3), log=self.log)
        self._refit()
        self.ready = True

    def _refit(self) -> None:
        """ML-fit the smoothing parameters on the remembered rows and replay them."""
        x = np.array(self.hist, dtype=float)
        start = self.t - len(x)  # absolute index of x[0]
        p = _ml_params(_fill(x), self.period)
        self.a, self.b_, self.g, self.phi = p["a"], p["b"], p["g"], p["phi"]
        self.level, self.trend = p["l0"], p["b0"]
        if self.period and p["model"] != "ses-fallback":
            for j, s in enumerate(p["s0"]):
                self.season[(start + j) % self.period] = float(s)
        run = [0, 0]
        for i, v in enumerate(x):
            self._advance(float(v), start + i, run)
        self.info["fits"] += 1
        self.info.update(model=p["model"], alpha=round(self.a, 4), beta=round(self.b_, 4),
                         gamma=round(self.g, 4), phi=round(self.phi, 4))

    def _season(self, index: int) -> float:
        return self.season[index % self.period] if self.period else 0.0

    def _predict(self, steps: int = 1) -> float:
        """Forecast for row ``t + steps - 1`` from the current state."""
        damp = sum(self.phi ** j for j in range(1, steps + 1))
        return self.level + damp * self.trend + self._season(self.t + steps - 1)

    def _advance(self, x: float, index: int, run: list[int]) -> tuple[float | None, bool]:
        """Filter one transformed value of row ``index``: (z or None, shift accepted). ``run`` is
        [sign, length] of the streak of same-side exceedances (mutated)."""
        pred = self.level + self.phi * self.trend + self._season(index)
        if math.isnan(x):
            self.level, self.trend = self.level + self.phi * self.trend, self.phi * self.trend
            return None, False
        sigma = math.sqrt(self.var)
        z = (x - pred) / sigma
        sign = int(z > CLIP_SIGMAS) - int(z < -CLIP_SIGMAS)
        if sign and sign == run[0]:
            run[1] += 1
        else:
            run[0], run[1] = sign, (1 if sign else 0)
        if run[1] >= SHIFT_CONFIRM_POINTS:  # accept the level shift: the level jumps to the data
            self.level, self.trend = x - self._season(index), 0.0
            run[0], run[1] = 0, 0
            return z, True
        ec = max(-CLIP_SIGMAS, min(CLIP_SIGMAS, z)) * sigma
        self.level += self.phi * self.trend + self.a * ec
        self.trend = self.phi * self.trend + self.b_ * ec
        if self.period:
            self.season[index % self.period] += self.g * ec
        return z, False

    def update(self, value: float, *, thin: bool = False) -> Point:
        """Process the next point (NaN = missing) and return its forecast, score and flag.

        ``thin`` marks a point too thin to decide on (a window below the minimum volume): it is
        filtered and scored as usual but neither opens nor resolves an alarm episode.
        """
        value = float(value)
        observed = not math.isnan(value)
        self.n_obs += observed
        if not self.ready:
            self._buffer.append(value)
            self.t += 1
            if self.n_obs >= self.warmup:
                self._initialize()
            self.policy.step(0.0 if observed else math.nan, None)
            return Point(math.nan, math.nan, math.nan, math.nan, FLAG_NONE)
        x = _fwd(value, self.log)
        pred, sigma = self._predict(), math.sqrt(self.var)
        cusum_before = self.cusum
        z, shifted = self._advance(x, self.t, self.run)
        self.hist.append(x)
        self.t += 1
        half = self.band_z * sigma
        fc, lo, up = (_inv(v, self.log) for v in (pred, pred - half, pred + half))
        if z is None:
            return self._point(fc, lo, up, math.nan, None, thin)
        zc = max(-CLIP_SIGMAS, min(CLIP_SIGMAS, z))
        if self.run[1] == 1:  # a streak of exceedances starts here: remember the build-up
            self.run_buildup = cusum_before
        if shifted:
            self.cusum = 0.0
            self.window.clear()  # the rise test starts afresh after a jump
            self.sums = [0.0, 0.0, 0.0, 0.0]
        else:
            self._push(float(self.t), pred - self._season(self.t - 1) + zc * sigma)
            self.cusum = max(0.0, self.cusum + zc - CUSUM_K)
            self.var += self.lam * (zc * zc * self.var / CLIP_VARIANCE_FACTOR - self.var)
        self._calibrate(abs(z))
        point_score = math.erf(abs(z) / self.tail / math.sqrt(2.0))
        cusum_score = _cusum_score(self.cusum)
        rise_score = self._rise_score(sigma)
        change_score = self._change_score(min(abs(z), CLIP_SIGMAS))
        score = max(point_score, cusum_score, rise_score, change_score)
        # The candidate kind does not depend on the threshold (the policy applies it).
        if shifted:
            build = z > 0 and _cusum_score(self.run_buildup) >= BUILDUP_SCORE
            kind = FLAG_ANTICIPATORY if build else FLAG_REACTIVE
            score = 1.0  # the confirmed shift is the alarm, whatever this z
        elif point_score >= max(cusum_score, rise_score, change_score):
            build = z > 0 and _cusum_score(cusum_before) >= BUILDUP_SCORE
            kind = FLAG_ANTICIPATORY if build else FLAG_SPIKE
        else:
            kind = FLAG_ANTICIPATORY
        if score < self.policy.threshold and self._crossing(value):
            # a deterministic rule: the forecast path crosses the level
            kind, score = FLAG_ANTICIPATORY, self.policy.threshold
        point = self._point(fc, lo, up, min(score, 1.0), kind, thin)
        if _refit_due(self.n_obs, self.warmup):
            self._refit()
        return point

    def _point(self, fc: float, lo: float, up: float, score: float, kind: str | None,
               thin: bool) -> Point:
        st = self.policy.step(score, kind, thin=thin)
        return Point(fc, lo, up, score, st.flag, kind, st.episode, st.event, st.kind)

    def _change_score(self, absz: float) -> float:
        """Is the mean |z| of the last CHANGE_POINTS points unusual for the recent errors?
        (Numenta's "anomaly likelihood" idea on the model's own errors: a change in behaviour
        (variance, pattern) that no single point shows.) One-sided normal tail of that mean."""
        self.short.append(absz)
        if len(self.short) < CHANGE_POINTS or self.err_sd <= 0:
            return 0.0
        mean = sum(self.short) / CHANGE_POINTS
        sd = max(self.err_sd, CHANGE_SD_FLOOR)
        return _PHI.cdf((mean - self.err_mean) / (sd / math.sqrt(CHANGE_POINTS)))

    def _calibrate(self, absz: float) -> None:
        """Conformal calibration on the recent one-step errors: the band's half-width is their
        empirical ``1 - alpha`` quantile (in sigmas) and the point score is rescaled so that
        their 99th percentile maps to the Gaussian one (heavy tails widen, never narrow)."""
        self.recent.append(absz)
        self.since_calibration += 1
        if self.since_calibration < CALIBRATE_EVERY or len(self.recent) < CALIBRATE_MIN:
            return
        self.since_calibration = 0
        arr = np.fromiter(self.recent, float, len(self.recent))
        q_band, q_tail = np.quantile(arr, [1 - self.config.alpha, TAIL_QUANTILE])
        self.band_z = float(q_band)
        # iid standard error of the mean. Measured: the empirical spread of the recent 24-point
        # means (which allows for autocorrelated errors) cut false alarms on a clean seasonal
        # series from 14 to 5 per 16k points but lowered NAB's real categories from 45.2 to
        # 37.1 (more windows missed), so the iid form stays.
        clipped = np.minimum(arr, CLIP_SIGMAS)
        self.err_mean, self.err_sd = float(clipped.mean()), float(clipped.std())
        self.tail = max(1.0, float(q_tail) / _PHI.inv_cdf(0.5 + TAIL_QUANTILE / 2))

    def _push(self, i: float, u: float) -> None:
        if not self.window:
            self.win_base = i  # indices relative to the window's start keep the sums small
        i -= self.win_base
        self.window.append((i, u))
        self.sums = [a + b for a, b in zip(self.sums, (i, i * i, u, i * u), strict=True)]
        if len(self.window) > self.window_len:
            j, w = self.window.popleft()
            self.sums = [a - b for a, b in zip(self.sums, (j, j * j, w, j * w), strict=True)]

    def _rise_score(self, sigma: float) -> float:
        """One-sided normal probability that the window's OLS rise is not noise + wander."""
        n = len(self.window)
        if n < self.window_len:
            return 0.0
        si, sii, su, siu = self.sums
        sxx = sii - si * si / n
        rise = (siu - si * su / n) / sxx * (n - 1)
        var = sigma * sigma * ((n - 1) ** 2 / sxx + (n - 1) * self.a * self.a)
        return _PHI.cdf(rise / math.sqrt(var)) if rise > 0 else 0.0

    def _crossing(self, value: float) -> bool:
        """Does the forecast path cross ``config.crossing`` from below within the horizon?"""
        level = self.config.crossing
        return level is not None and value < level and any(_inv(self._predict(h), self.log) >= level
                   for h in range(1, self.config.horizon + 1))


def _refit_due(n_obs: int, warmup: int) -> bool:
    """Refit after 2 and 4 warm-ups of observed points, then every REFIT_EVERY_WARMUPS."""
    k, rest = divmod(n_obs, warmup)
    return rest == 0 and (k in (2, 4) or (k > 4 and k % REFIT_EVERY_WARMUPS == 0))


def _cusum_score(s: float) -> float:
    return 1.0 - math.exp(-2.0 * CUSUM_K * s)


def _fill(x: np.ndarray) -> np.ndarray:
    """Input for the season test and the ML fit only (the filter itself sees the raw values):
    NaN interpolated, and points more than OUTLIER_SIGMAS robust sigmas from their 5-point
    rolling median replaced by it, so one junk value cannot hide a daily cycle."""
    ok = ~np.isnan(x)
    idx = np.arange(len(x))
    x = x if ok.all() else np.interp(idx, idx[ok], x[ok])
    med = pd.Series(x).rolling(5, center=True, min_periods=1).median().to_numpy()
    dev = x - med
    scale = MAD_TO_SIGMA * float(np.median(np.abs(dev)))
    return np.where(np.abs(dev) > OUTLIER_SIGMAS * scale, med, x) if scale > 0 else x


def _ml_params(x: np.ndarray, period: int | None) -> dict[str, Any]:
    """Smoothing parameters and initial states of a Holt-Winters model fitted by statsmodels."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = ExponentialSmoothing(
                x, trend="add", damped_trend=True, seasonal="add" if period else None,
                seasonal_periods=period, initialization_method="heuristic").fit(use_brute=False)
        p = res.params
        out: dict[str, Any] = {
            "a": float(p["smoothing_level"]), "phi": float(p["damping_trend"]),
            "b": float(p["smoothing_level"] * p["smoothing_trend"]),  # error-correction form
            "g": float(p["smoothing_seasonal"]) if period else 0.0, "l0": float(p["initial_level"]),
            "b0": float(p["initial_trend"]), "s0": np.asarray(p["initial_seasons"], dtype=float),
            "model": "holt-winters" if period else "damped-trend"}
        if all(math.isfinite(out[k]) for k in ("a", "b", "g", "phi", "l0", "b0")):
            return out
    except (ValueError, np.linalg.LinAlgError):
        pass
    return {"a": FALLBACK_ALPHA, "b": 0.0, "g": 0.0, "phi": 0.0, "l0": float(x[0]), "b0": 0.0,
            "s0": np.zeros(1), "model": "ses-fallback"}


def detect_values(values: Any, interval_seconds: float,
                  config: DetectorConfig | None = None) -> dict[str, Any]:
    """Run one :class:`StreamingDetector` over ``values``; arrays per output column + info."""
    det = StreamingDetector(interval_seconds, config or DetectorConfig())
    pts = [det.update(v) for v in np.asarray(values, dtype=float)]
    out: dict[str, Any] = {c: np.array([getattr(p, c) for p in pts])
                           for c in ("forecast", "lower", "upper", "anomaly_score")}
    return {**out, "flag": [p.flag for p in pts], "kind": [p.kind for p in pts],
            "episode": [p.episode for p in pts], "event": [p.event for p in pts],
            "info": det.info}
