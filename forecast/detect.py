"""Causal streaming anomaly detector: each point's output uses only the points up to it.

1. **Warm-up**: ``warmup`` observed points; then the model of :mod:`forecast.holt_winters`
   (Holt-Winters, additive damped trend, additive daily/weekly season (:mod:`forecast.seasons`)
   when the warm-up shows one) is fitted by ML on it, and re-fitted on recent *past* rows at
   fixed counts of observed points. A seasonal warm-up (two cycles) is blind only for its first
   cycle (``scores_from`` points): then an **interim** detector without a season scores each
   point until the seasonal model takes over; a point :data:`INTERIM_SEVERITY` times past its
   point test's limit is an alarm. Unscored warm-up rows score 0.
2. **Learn**: each value goes through the model's robust error-correction recursion
   (:class:`forecast.holt_winters.RobustHoltWinters`); its error less the error usual at this
   hour of the week (:mod:`forecast.weekly`) is what the scorers and the calibration learn.
3. **Score** (0..1, :mod:`forecast.scorers`): the max of the point, CUSUM, rise and change
   scores, each one minus a tail probability under the model, and of the pattern score of
   :mod:`forecast.patterns` (a likelihood that the recent values are unusually new after the
   values before them; it learns every point, on the raw values). The point score and the band
   are calibrated on the recent one-step errors (:class:`forecast.calibration.RollingCalibration`:
   the band's half-width is their empirical ``1 - alpha`` quantile, not the Gaussian one).
4. **Kind**: ``spike`` (point exceedance, or a change of behaviour whose residuals lie below
   the forecast), ``reactive`` (confirmed level jump, no build-up before), ``anticipatory``
   (sustained *rise*: CUSUM or rise test, the change test with residuals above the forecast;
   an upward exceedance after a build-up; or the forecast crossing ``crossing`` within
   ``horizon``). Whether a rise is anticipating anything is the calendar's question
   (:func:`forecast.run.classify_series`). Every scored point carries the :class:`Trigger`
   that decided its score (which test, its statistic and the statistic's alarm limit), the
   input of :mod:`forecast.explain`.
5. A stretch of exceedances at a routine time of day (:mod:`forecast.routine`) is capped below
   the alarm; :class:`forecast.alarms.AlarmPolicy` turns scores into episodes with one alarm each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Any

import numpy as np

from forecast.alarms import (
    DEFAULT_REARM,
    FLAG_ANTICIPATORY,
    FLAG_NONE,
    FLAG_REACTIVE,
    FLAG_SPIKE,
    AlarmPolicy,
    suppress_points,
)
from forecast.calibration import RollingCalibration
from forecast.holt_winters import (
    CLIP_SIGMAS,
    SHIFT_CONFIRM_POINTS,
    RobustHoltWinters,
    clip,
    refit_due,
)
from forecast.patterns import LONG_POINTS, SHORT_POINTS, PatternDetector
from forecast.power import LINEAR, LOG, POWER_NAMES, SQRT, choose_power, from_model, to_model
from forecast.regimes import LevelMemory, ScaleReinit
from forecast.routine import ROUTINE_SCORE, RoutineMemory
from forecast.scorers import (
    CHANGE_POINTS,
    TREND_WINDOW_NO_SEASON,
    ChangeTest,
    Cusum,
    RiseTest,
    cusum_limit,
    cusum_score,
    point_limit,
)
from forecast.scorers import point_score as _point_score
from forecast.seasons import season_points
from forecast.weekly import WeeklyBias

# Warm-up: ~30 points, the usual rule of thumb for an ML fit of a few smoothing parameters; with
# a season two full cycles (one cannot separate level from season).
WARMUP_MIN_POINTS = 30
SEASON_CYCLES = 2
BUILDUP_SCORE = 0.99  # a build-up: the CUSUM before the point had reached tail prob. 1 %
# The interim detector models no cycle: only its point test at twice its limit counts (its other
# tests called 60 of 135 clean daily series' second day a rise or change; benchmarks/README.md).
INTERIM_SEVERITY = 2.0
_GAUSS = NormalDist()


class DetectError(ValueError):
    """Invalid detector settings (the message says which and what is valid)."""


def warmup_points(period: int | None) -> int:
    return max(WARMUP_MIN_POINTS, SEASON_CYCLES * period) if period else WARMUP_MIN_POINTS


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of one detector (every default is a named constant or one in alarms.py)."""

    alpha: float = 0.05  # prediction interval 1 - alpha ([forecast] alpha)
    threshold: float | None = None  # AlarmPolicy threshold (None: alarms.DEFAULT_THRESHOLD)
    season: int | str = "auto"  # "auto" (forecast.seasons from the interval), "none" or points
    transform: str = "auto"  # "auto" (forecast.power's ladder), "log", "sqrt" or "none"
    crossing: float | None = None  # anticipatory when the forecast crosses this level
    horizon: int = 12  # steps ahead for the crossing rule ([forecast] horizon)
    suppress_seconds: float | None = None  # AlarmPolicy window (None: alarms default)
    patterns: bool = True  # the pattern test of forecast.patterns (README, "Sequence memory")
    pattern_history: int = LONG_POINTS  # rows of novelty the pattern likelihood compares with
    routine: bool = True  # cap exceedances at a routine time of day (forecast.routine)
    weekly: bool = True  # subtract the time-of-week bias (forecast.weekly)

    def period(self, interval_seconds: float) -> int | None:
        if self.season in ("auto", "none"):
            return season_points(interval_seconds) if self.season == "auto" else None
        if isinstance(self.season, int) and self.season >= 2:
            return self.season
        raise DetectError(f"season must be 'auto', 'none' or an integer >= 2, "
                          f"got {self.season!r}")


TESTS = ("point", "cusum", "rise", "change", "shift", "crossing", "pattern")
# DetectorConfig.transform -> the model scale's power ("auto": chosen from the warm-up).
TRANSFORMS: dict[str, float] = {"auto": math.nan, "log": LOG, "sqrt": SQRT, "none": LINEAR}


@dataclass(frozen=True)
class Trigger:
    """The test that decided a point's score, in numbers an analyst can check.

    ``statistic`` and ``limit`` are in the test's own units (point and shift: the residual in
    sigmas and the alarm's |z|; cusum: the CUSUM sum S; rise: the rise over its noise sd;
    change: the window's mean |z| in sigmas; crossing: the level crossed; pattern: the mean
    novelty of the last values' contexts, 0..1, with its ``usual`` level). ``limit`` is the
    statistic's value at the alarm threshold. ``alarm_lower`` / ``alarm_upper``: the values the
    point test accepts at the threshold; ``before`` / ``after``: the level (metric units) at the
    start and end of the test's window (rise, shift; the forecast otherwise).
    """

    test: str
    statistic: float
    limit: float
    direction: int  # +1: the data are above the forecast / rising; -1: below / falling
    window: int  # points the test looks at
    forecast: float
    alarm_lower: float
    alarm_upper: float
    before: float
    after: float
    usual: float = math.nan  # pattern: the usual mean novelty (NaN for the other tests)


def severity(trigger: Trigger | None) -> float:
    """How far past its alarm limit the deciding test is (1 = at the limit; NaN: unknown), the
    measure by which :class:`forecast.alarms.AlarmPolicy` tells a second, stronger wave."""
    if trigger is None or not trigger.limit > 0 or not math.isfinite(trigger.limit):
        return math.nan
    return abs(trigger.statistic) / trigger.limit


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
    trigger: Trigger | None = None  # the test that decided the score (None: not scored)
    closes: int | None = None  # the episode this alarm ended early (alarms.AlarmPolicy)
    closed_kind: str | None = None  # that episode's class
    routine: bool = False  # past the alarm threshold at a routine time of day, capped below it


@dataclass
class StreamingDetector:
    """Feed values one at a time with :meth:`update`; NaN marks a missing point."""

    interval_seconds: float
    config: DetectorConfig = field(default_factory=DetectorConfig)

    def __post_init__(self) -> None:
        cfg = self.config
        if not 0.0 < cfg.alpha < 1.0:
            raise DetectError(f"alpha must be in (0, 1), got {cfg.alpha}")
        if cfg.threshold is not None and not 0.0 < cfg.threshold < 1.0:  # inv_cdf(1) fails
            raise DetectError(f"threshold must be in (0, 1), got {cfg.threshold}")
        if cfg.transform not in TRANSFORMS:
            raise DetectError(f"transform must be one of {', '.join(TRANSFORMS)}, "
                              f"got {cfg.transform!r}")
        self.candidate_period = cfg.period(self.interval_seconds)
        self.warmup = warmup_points(self.candidate_period)
        suppress = suppress_points(self.interval_seconds, *(
            [] if cfg.suppress_seconds is None else [cfg.suppress_seconds]))
        kw: dict[str, Any] = {} if cfg.threshold is None else {
            "threshold": cfg.threshold, "rearm": min(DEFAULT_REARM, cfg.threshold)}
        # The interim detector scores the seasonal warm-up (module docstring, step 1); it lives
        # two days, too few for a routine, so the routine memory stays here.
        self.interim = (StreamingDetector(self.interval_seconds, replace(
            cfg, season="none", patterns=False, crossing=None, routine=False))
            if self.warmup > WARMUP_MIN_POINTS else None)
        self.scores_from = (max(WARMUP_MIN_POINTS, self.warmup // SEASON_CYCLES) if self.interim
                            else self.warmup)
        self.policy = AlarmPolicy(min_points=self.scores_from, suppress=suppress, **kw)
        self.calibration = RollingCalibration(cfg.alpha, CLIP_SIGMAS)
        self.routine = RoutineMemory(self.interval_seconds, on=cfg.routine)
        self.weekly = WeeklyBias(self.interval_seconds, on=cfg.weekly and cfg.season != "none")
        self.change = ChangeTest()
        self.cusum = Cusum()
        self.run_buildup = 0.0  # the CUSUM when the current streak of exceedances began
        self.levels = LevelMemory(self.interval_seconds)
        self.reinit = ScaleReinit()
        self.patterns = (PatternDetector(self.warmup, history=cfg.pattern_history)
                         if cfg.patterns else None)
        self._buffer: list[float] = []
        self.n_obs = 0
        self.t = 0  # rows processed so far (= absolute index of the next row)
        self.ready = False
        self.period: int | None = None
        self.power = LINEAR  # the model scale (forecast.power), chosen after the warm-up
        self.info: dict[str, Any] = {"warmup": self.scores_from, "fits": 0} | (
            {"season_warmup": self.warmup} if self.interim else {})

    def _initialize(self) -> None:
        raw = np.array(self._buffer, dtype=float)
        obs = raw[~np.isnan(raw)]
        self.power = (choose_power(obs) if self.config.transform == "auto"
                      else TRANSFORMS[self.config.transform])
        x = np.array([to_model(v, self.power) for v in raw])
        self.model = RobustHoltWinters(x, self.candidate_period, self.warmup)
        self.period = self.model.period
        self.rise = RiseTest(self.period or TREND_WINDOW_NO_SEASON)
        self.info.update(period=self.period, seasonal_acf=round(self.model.acf, 3),
                         scale=POWER_NAMES[self.power])
        self._refit()
        self.ready = True
        self.interim = None  # the seasonal model scores from here on

    def _refit(self) -> None:
        p = self.model.fit(self.t)
        self.info["fits"] += 1
        self.info.update(model=p.model, alpha=round(p.a, 4), beta=round(p.b, 4),
                         gamma=round(p.g, 4), phi=round(p.phi, 4))

    def update(self, value: float, *, thin: bool = False, at: float | None = None) -> Point:
        """Process the next point (NaN or ±inf = missing) and return its forecast, score, flag.

        ``thin`` marks a point too thin to decide on (a window below the minimum volume): it is
        filtered and scored as usual but neither opens nor resolves an alarm episode. ``at``: the
        point's time in seconds (default: its row times the interval), for irregular series.
        """
        now = self.t * self.interval_seconds if at is None or not math.isfinite(at) else at
        value = float(value)
        observed = math.isfinite(value)
        value = value if observed else math.nan
        self.n_obs += observed
        # the pattern memory learns from the first point on (missing: skipped)
        pattern = math.nan if self.patterns is None else self.patterns.learn_one(value)
        if not self.ready:
            self._buffer.append(value)
            self.t += 1
            early = None if self.interim is None else self.interim.update(value, at=now)
            if self.n_obs >= self.warmup:
                self._initialize()
            if early is not None and self.n_obs > self.scores_from:  # the second cycle
                # unmodelled cycles look like rises and changes (see INTERIM_SEVERITY)
                spike = early.trigger is None or (
                    early.trigger.test == "point" and severity(early.trigger) >= INTERIM_SEVERITY)
                return self._point(early.forecast, early.lower, early.upper,
                                   early.anomaly_score if spike else 0.0, early.kind, thin, now,
                                   early.trigger if spike else None)
            self.routine.step(math.nan, now)
            self.policy.step(0.0 if observed else math.nan, None)
            return Point(math.nan, math.nan, math.nan, math.nan, FLAG_NONE)
        model = self.model
        pred, sigma = model.predict(self.t), model.sigma_at(self.t)
        cusum_before = self.cusum.s
        x = to_model(value, self.power)
        z, shifted = model.learn_one(x, self.t)
        bias = self.weekly.step(math.nan if z is None else clip(z), now)
        z = None if z is None else z - bias
        pred += bias * sigma
        model.hist.append(x)
        self.t += 1
        half = self.calibration.band_z * sigma
        fc, lo, up = (from_model(v, self.power) for v in (pred, pred - half, pred + half))
        if z is None:
            return self._point(fc, lo, up, math.nan, None, thin, now)
        zc = clip(z)
        if model.run[1] == 1:  # a streak of exceedances starts here: remember the build-up
            self.run_buildup = cusum_before
        held = self.reinit.active  # re-learning a floor scale: shifts stay in the episode
        var = self.reinit.learn_one(x - pred, model.level)
        if var is not None:
            model.var = var
            self.calibration.reset()
        known = False
        if shifted:
            known = self.levels.shift(pred - model.season_at(self.t - 1), model.level, self.t)
            if not held and ScaleReinit.at_floor(sigma, pred):
                self.reinit.start()
            self.cusum.reset()
            self.rise.reset()
        else:
            self.rise.learn_one(float(self.t), pred - model.season_at(self.t - 1) + zc * sigma)
            self.cusum.learn_one(zc)
            model.learn_scale(zc, self.t - 1)
        self.calibration.learn_one(abs(z))
        self.change.learn_one(min(abs(z), CLIP_SIGMAS), zc)
        point_score = _point_score(abs(z), self.calibration.tail)
        cusum = self.cusum.score_one()
        rise = self.rise.score_one(sigma, model.a)
        change = self.change.score_one(self.calibration.err_mean, self.calibration.err_sd)
        score = max(point_score, cusum, rise, change)
        # The candidate kind does not depend on the threshold (the policy applies it).
        if shifted and not (known or held):  # a shift to a new level is the alarm
            build = z > 0 and cusum_score(self.run_buildup) >= BUILDUP_SCORE
            kind = FLAG_ANTICIPATORY if build else FLAG_REACTIVE
            score = 1.0  # whatever this z
            test, direction = "shift", 1 if z > 0 else -1
        elif point_score >= max(cusum, rise, change):
            build = z > 0 and cusum_score(cusum_before) >= BUILDUP_SCORE
            kind = FLAG_ANTICIPATORY if build else FLAG_SPIKE
            test, direction = "point", 1 if z > 0 else -1
        elif change > max(cusum, rise):  # two-sided: a rise only when the residuals are above
            direction = self.change.direction
            kind = FLAG_ANTICIPATORY if direction > 0 else FLAG_SPIKE
            test = "change"
        else:  # the CUSUM and the rise test are one-sided (upward)
            kind, direction = FLAG_ANTICIPATORY, 1
            test = "cusum" if cusum >= rise else "rise"
        if pattern > score:  # a break in the series' recurring patterns (never when shifted)
            score, kind, test, direction = pattern, FLAG_SPIKE, "pattern", 1 if z > 0 else -1
        if score < self.policy.threshold and self._crossing(value):
            # a deterministic rule: the forecast path crosses the level
            kind, score, test, direction = (FLAG_ANTICIPATORY, self.policy.threshold,
                                            "crossing", 1)
        trigger = self._trigger(test, direction, z, pred, sigma, fc)
        point = self._point(fc, lo, up, min(score, 1.0), kind, thin, now, trigger)
        if refit_due(self.n_obs, self.warmup):
            self._refit()
        return point

    def _point(self, fc: float, lo: float, up: float, score: float, kind: str | None,
               thin: bool, now: float, trigger: Trigger | None = None) -> Point:
        routine = self.routine.step(score, now)  # the same time of day as on earlier days
        muted = routine and score >= self.policy.threshold  # it would have alarmed
        score = min(score, ROUTINE_SCORE) if routine else score
        st = self.policy.step(score, kind, thin=thin, severity=severity(trigger))
        return Point(fc, lo, up, score, st.flag, kind, st.episode, st.event, st.kind, trigger,
                     st.closes, st.closed_kind, muted)

    def _trigger(self, test: str, direction: int, z: float, pred: float, sigma: float,
                 fc: float) -> Trigger:
        """The numbers of ``test`` on this point (see :class:`Trigger`)."""
        thr, power = self.policy.threshold, self.power
        zl = point_limit(thr, self.calibration.tail)
        lo, up = (from_model(pred + s * zl * sigma, power) for s in (-1.0, 1.0))
        before = after = fc
        window = 1
        if test in ("point", "shift"):
            stat, limit = z, (zl if test == "point" else CLIP_SIGMAS)
            window = 1 if test == "point" else SHIFT_CONFIRM_POINTS
            if test == "shift":
                after = from_model(self.model.level + self.model.season_at(self.t - 1), power)
        elif test == "cusum":
            stat, limit = self.cusum.s, cusum_limit(thr)
        elif test == "rise":
            stat, limit, window = self.rise.ratio, _GAUSS.inv_cdf(thr), self.rise.length
            level = pred - self.model.season_at(self.t - 1)
            before, after = from_model(level - self.rise.rise, power), from_model(level, power)
        elif test == "change":
            ch = self.change
            stat, window = ch.mean, CHANGE_POINTS
            limit = self.calibration.err_mean + _GAUSS.inv_cdf(thr) * ch.spread
        elif test == "pattern" and self.patterns is not None:
            lk = self.patterns.likelihood
            stat, limit, window = lk.mean, lk.mean_at(thr), SHORT_POINTS
            return Trigger(test, stat, limit, direction, window, fc, lo, up, before, after,
                           lk.mu)
        else:  # crossing
            stat = limit = float(self.config.crossing or 0.0)
            window = self.config.horizon
        return Trigger(test, float(stat), float(limit), direction, window, fc, lo, up,
                       before, after)

    def _crossing(self, value: float) -> bool:
        """Does the forecast path cross ``config.crossing`` from below within the horizon?"""
        level = self.config.crossing
        return level is not None and value < level and any(
            from_model(self.model.predict(self.t, h), self.power) >= level
            for h in range(1, self.config.horizon + 1))

