"""One state-space model per series: arrays in, a dict of arrays out.

The model is statsmodels' ``UnobservedComponents`` local level (random-walk level + noise):
two variance parameters, no stationarity constraints to violate, and the Kalman filter skips
NaN observations, so gaps in the hourly windows need no imputation. Measured here on one
synthetic week (168 hourly points, daily cycle, 3 gaps, one 10-sigma spike): it flagged the
spike with 2 false flags, against 3 for ARIMA(1,0,1) with a constant and 3 for local level + a
daily trigonometric seasonal (which also needed ~10 points of burn-in instead of 1).

:func:`fit_predict` returns one-step-ahead in-sample predictions (``dynamic=False``) with
``1 - alpha`` intervals, and a ``horizon``-step out-of-sample forecast. :func:`flag_points`
is the separate alarm policy that turns intervals into ``spike`` / ``dip`` / ``none``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from polarwatch.errors import PolarwatchError

MODEL_NAME = "ucm-local-level"
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
    }


def fit_predict(y: np.ndarray, *, alpha: float = 0.05, horizon: int = 12) -> dict[str, Any]:
    """Fit a local level model to ``y`` (NaN = missing window) and predict.

    Returns a dict with ``model`` (name), ``forecast``/``lower``/``upper`` (length ``len(y)``,
    one-step-ahead, NaN during burn-in), ``flag`` (list of str, length ``len(y)``),
    ``future_forecast``/``future_lower``/``future_upper`` (length ``horizon``) and ``warnings``
    (fit warnings as strings). A constant series gets the ``constant`` model with zero-width
    intervals. Raises :class:`SeriesSkipped` when the series cannot be modelled and ValueError
    for invalid ``alpha``/``horizon``.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if horizon < 0:
        raise ValueError(f"horizon must be >= 0, got {horizon}")
    y = np.asarray(y, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}")
    y = np.where(np.isfinite(y), y, np.nan)
    observed = ~np.isnan(y)
    n_obs = int(observed.sum())
    if n_obs < MIN_POINTS:
        raise SeriesSkipped(f"{n_obs} observed point(s), at least {MIN_POINTS} are needed "
                            f"({len(y)} windows, {len(y) - n_obs} missing)")
    mean = float(np.nanmean(y))
    spread = float(np.nanmax(y) - np.nanmin(y))
    if spread <= CONSTANT_RTOL * max(1.0, abs(mean)):
        return _constant(y, mean, horizon)

    # Standardise: the optimizer's start values and tolerances assume unit scale, and volume
    # counts can be in the thousands.
    scale = float(np.nanstd(y))
    z = (y - mean) / scale
    try:
        res, caught = _fit(z)
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

    def back(a: np.ndarray) -> np.ndarray:
        return a * scale + mean

    forecast, lower, upper = back(pmean), back(pci[:, 0]), back(pci[:, 1])
    if not (np.all(np.isfinite(fmean)) and np.all(np.isfinite(fci))):
        raise SeriesSkipped("model fit produced non-finite forecasts")

    # Burn-in: no interval (and so no flag) before the first `burn` observed points.
    burn = max(BURN_IN_POINTS, int(getattr(res, "loglikelihood_burn", 0)))
    first_after_burn = int(np.flatnonzero(observed)[burn]) if n_obs > burn else len(y)
    for arr in (forecast, lower, upper):
        arr[:first_after_burn] = np.nan
        arr[~np.isfinite(arr)] = np.nan
    return {
        "model": MODEL_NAME, "forecast": forecast, "lower": lower, "upper": upper,
        "flag": flag_points(y, lower, upper), "future_forecast": back(fmean),
        "future_lower": back(fci[:, 0]), "future_upper": back(fci[:, 1]), "warnings": caught,
    }


def _fit(z: np.ndarray) -> tuple[Any, list[str]]:
    """Fit the local level model on standardised data; return (results, warning messages)."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = UnobservedComponents(z, level="local level")
        res = model.fit(disp=False, maxiter=FIT_MAXITER)
    messages = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return res, messages
