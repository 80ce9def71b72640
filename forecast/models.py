"""One state-space model per series, chosen by rolling one-step-ahead error: arrays in, a
:class:`ForecastFit` out.

Candidates (all linear Gaussian state-space models, so the Kalman filter skips NaN gaps and
results can be ``append``-ed): ``ucm-local-level`` (statsmodels ``UnobservedComponents``
random-walk level + noise), ``ucm-local-trend`` (local linear trend) and, when the series has
at least :data:`MIN_SEASONS` seasons of data, ``ets-damped-seasonal<m>`` (statsmodels'
state-space ``ExponentialSmoothing``: additive damped trend + additive season of ``m`` windows).
:func:`select_model` fits each on the prefix, filters forward over the last
:func:`eval_length` points with the prefix parameters (rolling origin, no refit) and keeps the
lowest one-step-ahead MAE; it also reports the chosen model's empirical ``1 - alpha`` interval
coverage there. Short series use the local level without a selection.

The local level was the only model before the selection. Measured here on one
synthetic week (168 hourly points, daily cycle, 3 gaps, one 10-sigma spike): it flagged the
spike with 2 false flags, against 3 for ARIMA(1,0,1) with a constant and 3 for local level + a
daily trigonometric seasonal (which also needed ~10 points of burn-in instead of 1).

:func:`fit_predict` returns one-step-ahead in-sample predictions (``dynamic=False``) with
``1 - alpha`` intervals, and a ``horizon``-step out-of-sample forecast; the bands are
calibrated by :func:`forecast.calibration.calibrate_bands`. :func:`flag_points` is the separate
alarm policy that turns intervals into ``spike`` / ``dip`` / ``none``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from forecast.calibration import CONFORMAL_POINTS, BandCalibration, calibrate_bands
from forecast.domains import Domain
from polarwatch.errors import PolarwatchError

MODEL_NAME = "ucm-local-level"
TREND_MODEL_NAME = "ucm-local-trend"
ETS_MODEL_PREFIX = "ets-damped-seasonal"
CONSTANT_MODEL_NAME = "constant"

# Fewer observed points than this: skip. Two variances fitted by maximum likelihood on < 10
# points give intervals that are mostly noise (statsforecast asks for >= 2*h+1 samples for
# intervals; 10 is a floor for h = 1 with a margin, not a measured optimum).
MIN_POINTS = 10

# One-step predictions of the first observed points are not flagged and get no interval.
# The level starts diffuse: measured here, the 95% interval width was 3,920 at the first point,
# then 2.09, 1.88, 1.82, 1.81 (true noise width 1.2 + level variance). 3 points leaves a margin;
# the model's own loglikelihood_burn is used when it is larger.
BURN_IN_POINTS = 3

# A series whose observed values span less than this (relative to max(1, |mean|)) is treated as
# constant: the likelihood is flat and the fit fails or returns zero variances.
CONSTANT_RTOL = 1e-9

# L-BFGS iterations for the variance MLE. statsmodels' default is 50; measured here, fits on
# 50-500 standardised points (white noise and random walks) converged in 6-12; 200 is headroom.
FIT_MAXITER = 200

# Selection: the last quarter of the observed points, at most EVAL_MAX (two days of hourly
# windows); below MIN_SELECT_POINTS observed points the local level is used unscored.
EVAL_FRACTION, EVAL_MAX, MIN_SELECT_POINTS = 0.25, 48, 40
# The seasonal candidate needs this many full seasons in the prefix (heuristic initial states
# need 2; the third leaves data to estimate the smoothing parameters).
MIN_SEASONS = 3
# Longer seasons make the state (m + 2 wide) and the fit slow: measured here, the damped
# seasonal ETS took 0.38 s on a 292-point prefix with m = 24. The season itself comes from
# forecast.seasons.season_points(interval, MAX_SEASON), the one rule of the stage.
MAX_SEASON = 48

FLAG_SPIKE, FLAG_DIP, FLAG_NONE, FLAG_FORECAST = "spike", "dip", "none", "forecast"


class SeriesSkipped(PolarwatchError):
    """A series cannot be modelled (too short, all missing, fit failed); the message says why."""


@dataclass(frozen=True)
class Selection:
    """What :func:`select_model` chose: ``model``, its rolling one-step ``mae`` and its
    ``coverage`` (share of scored points inside its ``1 - alpha`` interval) over ``n_eval``
    points, ``scores`` ({name: MAE} of every candidate that fitted) and ``params`` (its prefix
    parameters, the start values of the full fit). ``mae``/``coverage`` None: nothing scored."""

    model: str = MODEL_NAME
    mae: float | None = None
    coverage: float | None = None
    n_eval: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    params: np.ndarray | None = None

    def scaled(self, scale: float) -> Selection:
        """The MAEs in units ``scale`` times larger (standardised -> model scale)."""
        if self.mae is None:
            return self
        return replace(self, mae=self.mae * scale,
                       scores={k: v * scale for k, v in self.scores.items()})


@dataclass(frozen=True)
class ForecastFit:
    """The forecast of one series by :func:`fit_predict`.

    ``forecast``/``lower``/``upper``: one-step-ahead, length ``len(y)``, NaN during burn-in;
    ``flag``: :func:`flag_points` of them; ``future_*``: length ``horizon``; ``warnings``: fit
    warnings as strings; ``selection``: the :class:`Selection` (MAE on the model scale);
    ``domain``: the metric's domain; ``calibration``: the conformal factor applied to the band
    and the number of errors it used.
    """

    model: str
    forecast: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    flag: list[str]
    future_forecast: np.ndarray
    future_lower: np.ndarray
    future_upper: np.ndarray
    warnings: list[str]
    selection: Selection
    domain: str = "real"
    calibration: BandCalibration = BandCalibration(None, 0)


def flag_points(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> list[str]:
    """``spike`` where y > upper, ``dip`` where y < lower, else ``none`` (also for NaN y/bounds)."""
    y, lower, upper = (np.asarray(a, dtype=float) for a in (y, lower, upper))
    with np.errstate(invalid="ignore"):
        spike = y > upper
        dip = y < lower
    return [FLAG_SPIKE if s else FLAG_DIP if d else FLAG_NONE
            for s, d in zip(spike, dip, strict=True)]


def _constant(y: np.ndarray, value: float, horizon: int, domain: str) -> ForecastFit:
    pred = np.where(~np.isnan(y), value, np.nan)
    future = np.full(horizon, value)
    return ForecastFit(CONSTANT_MODEL_NAME, pred, pred.copy(), pred.copy(), [FLAG_NONE] * len(y),
                       future, future.copy(), future.copy(), [],
                       Selection(model=CONSTANT_MODEL_NAME), domain)


def eval_length(n_obs: int) -> int:
    """Observed points scored by the rolling-origin selection (0: no selection)."""
    if n_obs < MIN_SELECT_POINTS:
        return 0
    return min(EVAL_MAX, int(n_obs * EVAL_FRACTION))


def candidate_names(n_prefix: int, season: int | None) -> list[str]:
    """Candidate model names for a prefix of ``n_prefix`` windows."""
    names = [MODEL_NAME, TREND_MODEL_NAME]
    if season and n_prefix >= MIN_SEASONS * season:
        names.append(f"{ETS_MODEL_PREFIX}{season}")
    return names


def _model(name: str, z: np.ndarray, init_len: int | None = None) -> Any:
    """Candidate ``name`` on ``z``; ETS initial states come from ``z[:init_len]``."""
    from statsmodels.tsa.statespace.exponential_smoothing import ExponentialSmoothing
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    if name == MODEL_NAME:
        return UnobservedComponents(z, level="local level")
    if name == TREND_MODEL_NAME:
        return UnobservedComponents(z, level="local linear trend")
    season = int(name.removeprefix(ETS_MODEL_PREFIX))
    # Initial states by the heuristic on the gap-interpolated series (it cannot take NaN; the
    # default "estimated" initialisation took 9-10 s per fit here), then filter the real one.
    filled = _interpolate(z[:init_len])
    guess = ExponentialSmoothing(filled, trend=True, damped_trend=True, seasonal=season,
                                 initialization_method="heuristic")
    return ExponentialSmoothing(z, trend=True, damped_trend=True, seasonal=season,
                                initialization_method="known",
                                initial_level=guess._initial_level,
                                initial_trend=guess._initial_trend,
                                initial_seasonal=guess._initial_seasonal)


def _interpolate(z: np.ndarray) -> np.ndarray:
    """Linear interpolation over NaN (constant at the ends)."""
    idx = np.arange(len(z))
    ok = ~np.isnan(z)
    return np.interp(idx, idx[ok], z[ok])


def _fit(z: np.ndarray, name: str = MODEL_NAME,
         start: np.ndarray | None = None) -> tuple[Any, list[str]]:
    """Fit candidate ``name`` on standardised data (optionally from ``start`` parameters);
    return (results, warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = _model(name, z).fit(start_params=start, disp=False, maxiter=FIT_MAXITER)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return res, messages


def select_model(z: np.ndarray, *, season: int | None = None, alpha: float = 0.05) -> Selection:
    """Rolling-origin one-step-ahead selection on the standardised series ``z``.

    Each candidate is fitted on the windows before the last :func:`eval_length` observed
    points, then filtered forward over them with those parameters (``append``, no refit); the
    lowest MAE wins. Short series get the local level, unscored.
    """
    observed = np.flatnonzero(~np.isnan(z))
    n_eval = eval_length(len(observed))
    if n_eval == 0:
        return Selection()
    split = int(observed[-n_eval])
    scores: dict[str, float] = {}
    best: tuple[float, str, float, np.ndarray] | None = None
    for name in candidate_names(split, season):
        try:
            res, _ = _fit(z[:split], name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # Filter the whole series with the prefix parameters (and, for ETS, the
                # prefix's initial states): ``append`` cannot clone a "known" initialisation.
                full = _model(name, z, init_len=split).filter(res.params)
                pred = full.get_prediction(start=split)
                mean = np.asarray(pred.predicted_mean, dtype=float)
                ci = np.asarray(pred.conf_int(alpha=alpha), dtype=float)
        except (ValueError, np.linalg.LinAlgError):
            continue
        actual = z[split:]
        ok = ~np.isnan(actual) & np.isfinite(mean) & np.all(np.isfinite(ci), axis=1)
        if ok.sum() < n_eval // 2:
            continue
        mae = float(np.mean(np.abs(mean[ok] - actual[ok])))
        cover = float(np.mean((ci[ok, 0] <= actual[ok]) & (actual[ok] <= ci[ok, 1])))
        scores[name] = mae
        if best is None or mae < best[0]:
            best = (mae, name, cover, np.asarray(res.params, dtype=float))
    if best is None:
        return Selection(scores=scores)
    return Selection(best[1], best[0], best[2], n_eval, scores, best[3])


def _checked(y: np.ndarray, alpha: float, horizon: int) -> np.ndarray:
    """``y`` as a float vector with NaN for every non-finite value; ValueError for bad input."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    return np.where(np.isfinite(y), y, np.nan)


def _fit_chosen(z: np.ndarray, selection: Selection, alpha: float,
                horizon: int) -> tuple[Selection, Any, list[str], list[np.ndarray]]:
    """Fit the chosen model on all of ``z`` (the local level if that fails) and predict:
    (selection, results, warnings, [one-step mean, its interval, future mean, its interval])."""
    try:
        try:
            res, caught = _fit(z, selection.model, selection.params)
        except (ValueError, np.linalg.LinAlgError):
            if selection.model == MODEL_NAME:
                raise
            selection = replace(selection, model=MODEL_NAME)
            res, caught = _fit(z, MODEL_NAME)
        pred = res.get_prediction(dynamic=False)
        out = [np.asarray(pred.predicted_mean, dtype=float),
               np.asarray(pred.conf_int(alpha=alpha), dtype=float)]
        if horizon > 0:
            fut = res.get_forecast(horizon)
            out += [np.asarray(fut.predicted_mean, dtype=float),
                    np.asarray(fut.conf_int(alpha=alpha), dtype=float)]
        else:
            out += [np.empty(0), np.empty((0, 2))]
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise SeriesSkipped(f"model fit failed: {exc}") from exc
    if not (np.all(np.isfinite(out[2])) and np.all(np.isfinite(out[3]))):
        raise SeriesSkipped("model fit produced non-finite forecasts")
    return selection, res, caught, out


def fit_predict(y: np.ndarray, *, alpha: float = 0.05, horizon: int = 12,
                season: int | None = None, select: bool = True,
                domain: str = "real", conformal_points: int | None = None) -> ForecastFit:
    """Choose a model for ``y`` (NaN = missing window) by :func:`select_model`, refit it on
    the whole series and predict (:class:`ForecastFit`).

    ``season``: the seasonal period in windows (:func:`forecast.seasons.season_points`), None
    for no seasonal candidate; ``select=False`` uses the local level unscored. ``domain``
    (:mod:`forecast.domains`: score, share, count, real) is the metric's range: the model runs
    on its transformed scale and the band is mapped back, so it stays inside; the band is then
    calibrated (split conformal) on the last ``conformal_points`` one-step errors (default
    :data:`forecast.calibration.CONFORMAL_POINTS`; 0: none). A constant series gets the
    ``constant`` model with zero-width intervals. Raises :class:`SeriesSkipped` when the
    series cannot be modelled and ValueError for invalid ``alpha``/``horizon``.
    """
    y = _checked(y, alpha, horizon)
    dom = Domain(domain)
    observed = ~np.isnan(y)
    n_obs = int(observed.sum())
    if n_obs < MIN_POINTS:
        raise SeriesSkipped(f"{n_obs} observed point(s), at least {MIN_POINTS} are needed "
                            f"({len(y)} windows, {len(y) - n_obs} missing)")
    if float(np.nanmax(y) - np.nanmin(y)) <= CONSTANT_RTOL * max(1.0, abs(float(np.nanmean(y)))):
        return _constant(y, float(np.nanmean(y)), horizon, dom.name)
    # Standardise: the optimizer's start values and tolerances assume unit scale, and volume
    # counts can be in the thousands.
    y_model = dom.forward(y)
    mean = float(np.nanmean(y_model))
    scale = float(np.nanstd(y_model)) or 1.0
    z = (y_model - mean) / scale
    selection = (select_model(z, season=season, alpha=alpha) if select else Selection())
    selection, res, caught, (pmean, pci, fmean, fci) = _fit_chosen(
        z, selection.scaled(scale), alpha, horizon)
    # Burn-in: no interval (and so no flag) before the first `burn` observed points.
    burn = max(BURN_IN_POINTS, int(getattr(res, "loglikelihood_burn", 0)))
    first_after_burn = int(np.flatnonzero(observed)[burn]) if n_obs > burn else len(y)
    pmean[:first_after_burn] = np.nan
    calibration, (pci, fci) = calibrate_bands(
        z, pmean, (pci, fci), first_after_burn, alpha,
        CONFORMAL_POINTS if conformal_points is None else conformal_points)

    def back(a: np.ndarray) -> np.ndarray:
        return dom.inverse(a * scale + mean)

    forecast, lower, upper = back(pmean), back(pci[:, 0]), back(pci[:, 1])
    for arr in (forecast, lower, upper):
        arr[:first_after_burn] = np.nan
        arr[~np.isfinite(arr)] = np.nan
    return ForecastFit(selection.model, forecast, lower, upper, flag_points(y, lower, upper),
                       back(fmean), back(fci[:, 0]), back(fci[:, 1]), caught, selection,
                       dom.name, calibration)
