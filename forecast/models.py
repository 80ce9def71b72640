"""One state-space model per series, chosen by rolling one-step-ahead error: arrays in, a dict out.

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
``1 - alpha`` intervals, and a ``horizon``-step out-of-sample forecast. :func:`flag_points`
is the separate alarm policy that turns intervals into ``spike`` / ``dip`` / ``none``.
"""

from __future__ import annotations

import warnings
from statistics import NormalDist
from typing import Any

import numpy as np

from forecast.domains import Domain, conformal_factor
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
# seasonal ETS took 0.38 s on a 292-point prefix with m = 24.
MAX_SEASON = 48

# Conformal calibration of the band: the last 2,000 one-step errors (12 weeks of hourly windows).
# Measured on NAB's real series (benchmarks/nab_bands.py): the last 200 only gave 87.5 %
# coverage for a 95 % band (a calm recent stretch narrows it), all errors 92.9 %.
CONFORMAL_POINTS = 2000

FLAG_SPIKE, FLAG_DIP, FLAG_NONE, FLAG_FORECAST = "spike", "dip", "none", "forecast"


class SeriesSkipped(PolarwatchError):
    """A series cannot be modelled (too short, all missing, fit failed); the message says why."""


def flag_points(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> list[str]:
    """``spike`` where y > upper, ``dip`` where y < lower, else ``none`` (also for NaN y/bounds)."""
    y, lower, upper = (np.asarray(a, dtype=float) for a in (y, lower, upper))
    with np.errstate(invalid="ignore"):
        spike = y > upper
        dip = y < lower
    return [FLAG_SPIKE if s else FLAG_DIP if d else FLAG_NONE
            for s, d in zip(spike, dip, strict=True)]


def _constant(y: np.ndarray, value: float, horizon: int) -> dict[str, Any]:
    n = len(y)
    observed = ~np.isnan(y)
    pred = np.where(observed, value, np.nan)
    future = np.full(horizon, value)
    return {
        "model": CONSTANT_MODEL_NAME, "forecast": pred, "lower": pred.copy(),
        "upper": pred.copy(), "flag": [FLAG_NONE] * n, "future_forecast": future,
        "future_lower": future.copy(), "future_upper": future.copy(), "warnings": [],
        "selection": {"model": CONSTANT_MODEL_NAME, "mae": None, "coverage": None,
                      "n_eval": 0, "scores": {}},
    }


def season_length(interval_seconds: float) -> int | None:
    """Windows per day (or per week for daily windows) when that is a whole number in
    ``[2, MAX_SEASON]``; None otherwise (no seasonal candidate)."""
    for period in (86400.0, 7 * 86400.0):
        m = period / interval_seconds if interval_seconds > 0 else 0.0
        if abs(m - round(m)) < 1e-9 and 2 <= round(m) <= MAX_SEASON:
            return int(round(m))
    return None


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


def select_model(z: np.ndarray, *, season: int | None = None,
                 alpha: float = 0.05) -> dict[str, Any]:
    """Rolling-origin one-step-ahead selection on the standardised series ``z``.

    Each candidate is fitted on the windows before the last :func:`eval_length` observed
    points, then filtered forward over them with those parameters (``append``, no refit).
    Returns ``model`` (lowest MAE), ``mae`` and ``coverage`` (share of scored points inside
    its ``1 - alpha`` one-step interval) of it, ``n_eval`` and ``scores`` ({name: MAE} of
    every candidate that fitted), and ``params`` (the chosen one's prefix parameters, used as
    start values of the full fit). ``mae``/``coverage`` are None when nothing was scored.
    """
    observed = np.flatnonzero(~np.isnan(z))
    n_eval = eval_length(len(observed))
    out: dict[str, Any] = {"model": MODEL_NAME, "mae": None, "coverage": None,
                           "n_eval": 0, "scores": {}}
    if n_eval == 0:
        return out
    split = int(observed[-n_eval])
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
        out["scores"][name] = mae
        if best is None or mae < best[0]:
            best = (mae, name, cover, np.asarray(res.params, dtype=float))
    if best is not None:
        out.update(model=best[1], mae=best[0], coverage=best[2], n_eval=n_eval,
                   params=best[3])
    return out


def fit_predict(y: np.ndarray, *, alpha: float = 0.05, horizon: int = 12,
                season: int | None = None, select: bool = True,
                domain: str = "real", conformal_points: int | None = None) -> dict[str, Any]:
    """Choose a model for ``y`` (NaN = missing window) by :func:`select_model`, refit it on
    the whole series and predict.

    ``season`` is the seasonal period in windows (see :func:`season_length`), None for no
    seasonal candidate; ``select=False`` uses the local level unscored. Returns a dict with
    ``model`` (name), ``forecast``/``lower``/``upper`` (length ``len(y)``, one-step-ahead, NaN
    during burn-in), ``flag`` (list of str, length ``len(y)``),
    ``future_forecast``/``future_lower``/``future_upper`` (length ``horizon``), ``warnings``
    (fit warnings as strings) and ``selection`` (the :func:`select_model` result with ``mae``
    in the units of ``y``). A constant series gets the ``constant`` model with zero-width
    intervals. Raises :class:`SeriesSkipped` when the series cannot be modelled and ValueError
    for invalid ``alpha``/``horizon``.

    ``domain`` (:mod:`forecast.domains`: score, share, count, real) is the metric's range: the
    model runs on its transformed scale and the band is mapped back, so it stays inside; then
    the band is **calibrated** (split conformal) on the last :data:`CONFORMAL_POINTS` one-step
    errors (``conformal_points`` overrides that count; 0: no calibration): its half-width on the model scale is
    rescaled to their ``1 - alpha`` quantile.
    ``calibration`` reports the factor applied (None: too few errors, Gaussian band kept) and
    the number of errors it used; ``selection``'s MAE is on the model scale.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    y = np.where(np.isfinite(y), y, np.nan)
    dom = Domain(domain)
    y_model = dom.forward(y)
    observed = ~np.isnan(y)
    n_obs = int(observed.sum())
    if n_obs < MIN_POINTS:
        raise SeriesSkipped(f"{n_obs} observed point(s), at least {MIN_POINTS} are needed "
                            f"({len(y)} windows, {len(y) - n_obs} missing)")
    spread = float(np.nanmax(y) - np.nanmin(y))
    if spread <= CONSTANT_RTOL * max(1.0, abs(float(np.nanmean(y)))):
        return _constant(y, float(np.nanmean(y)), horizon)

    # Standardise: the optimizer's start values and tolerances assume unit scale, and volume
    # counts can be in the thousands.
    mean = float(np.nanmean(y_model))
    scale = float(np.nanstd(y_model)) or 1.0
    z = (y_model - mean) / scale
    selection = (select_model(z, season=season, alpha=alpha) if select
                 else {"model": MODEL_NAME, "mae": None, "coverage": None, "n_eval": 0,
                       "scores": {}})
    if selection["mae"] is not None:
        selection["mae"] *= scale
        selection["scores"] = {k: v * scale for k, v in selection["scores"].items()}
    name = selection["model"]
    try:
        try:
            res, caught = _fit(z, name, selection.get("params"))
        except (ValueError, np.linalg.LinAlgError):
            if name == MODEL_NAME:
                raise
            name = selection["model"] = MODEL_NAME
            res, caught = _fit(z, name)
        pred = res.get_prediction(dynamic=False)
        pmean = np.asarray(pred.predicted_mean, dtype=float)
        pci = np.asarray(pred.conf_int(alpha=alpha), dtype=float)
        if horizon > 0:
            fut = res.get_forecast(horizon)
            fmean = np.asarray(fut.predicted_mean, dtype=float)
            fci = np.asarray(fut.conf_int(alpha=alpha), dtype=float)
        else:
            fmean, fci = np.empty(0), np.empty((0, 2))
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise SeriesSkipped(f"model fit failed: {exc}") from exc

    if not (np.all(np.isfinite(fmean)) and np.all(np.isfinite(fci))):
        raise SeriesSkipped("model fit produced non-finite forecasts")
    # Burn-in: no interval (and so no flag) before the first `burn` observed points.
    burn = max(BURN_IN_POINTS, int(getattr(res, "loglikelihood_burn", 0)))
    first_after_burn = int(np.flatnonzero(observed)[burn]) if n_obs > burn else len(y)
    pmean[:first_after_burn] = np.nan
    factor, n_cal, (pci, fci) = _calibrate(z, pmean, (pci, fci), first_after_burn, alpha,
                                           CONFORMAL_POINTS if conformal_points is None
                                           else conformal_points)

    def back(a: np.ndarray) -> np.ndarray:
        return dom.inverse(a * scale + mean)

    forecast, lower, upper = back(pmean), back(pci[:, 0]), back(pci[:, 1])
    for arr in (forecast, lower, upper):
        arr[:first_after_burn] = np.nan
        arr[~np.isfinite(arr)] = np.nan
    return {
        "model": name, "forecast": forecast, "lower": lower, "upper": upper,
        "flag": flag_points(y, lower, upper), "future_forecast": back(fmean),
        "future_lower": back(fci[:, 0]), "future_upper": back(fci[:, 1]), "warnings": caught,
        "selection": selection, "domain": dom.name,
        "calibration": {"factor": factor, "n": n_cal},
    }


def _calibrate(z: np.ndarray, pmean: np.ndarray, bands: tuple[np.ndarray, np.ndarray],
               start: int, alpha: float, points: int) -> tuple[float | None, int,
                                                              tuple[np.ndarray, np.ndarray]]:
    """Split-conformal rescaling of the in-sample and future bands (model scale, standardised):
    the half-widths times the ``1 - alpha`` quantile of the last CONFORMAL_POINTS standardised
    one-step errors over the Gaussian quantile."""
    pci, fci = bands
    gauss = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    sd = (pci[:, 1] - pci[:, 0]) / (2.0 * gauss)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = (z - pmean) / sd
    err[:start] = np.nan
    err = err[np.isfinite(err)][-points:] if points > 0 else err[:0]
    q = conformal_factor(err, alpha)
    if q is None:
        return None, len(err), bands
    out = []
    for ci in (pci, fci):
        mid = (ci[:, 0] + ci[:, 1]) / 2.0
        half = (ci[:, 1] - ci[:, 0]) / 2.0 * (q / gauss)
        out.append(np.column_stack([mid - half, mid + half]))
    return q / gauss, len(err), (out[0], out[1])
