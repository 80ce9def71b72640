"""The forecast stage: ``topic_windows`` -> one model per topic -> ``forecasts``.

Thin driver over :mod:`forecast.series` (read) and :mod:`forecast.models` (fit). All rows of one
run are written in one short DuckDB write transaction with ``INSERT OR REPLACE`` on the primary
key ``(topic, metric, ts)``, so a rerun replaces rather than duplicates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.models import (
    FLAG_DIP,
    FLAG_FORECAST,
    FLAG_NONE,
    FLAG_SPIKE,
    SeriesSkipped,
    fit_predict,
)
from forecast.series import read_series, validate_metric
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect

FORECAST_COLUMNS = ["topic", "metric", "ts", "y", "forecast", "lower", "upper", "flag", "model",
                    "created_at"]


def rows_for_series(topic: str, metric: str, ts: pd.DatetimeIndex, y: np.ndarray,
                    fit: dict[str, Any], freq: pd.Timedelta, horizon: int,
                    created_at: datetime) -> pd.DataFrame:
    """``forecasts`` rows for one fitted series: observed windows, then ``horizon`` future ones.

    Missing windows (NaN y) get no row: a row with NULL y means "forecast" to readers.
    """
    observed = ~np.isnan(y)
    past = pd.DataFrame({
        "ts": ts[observed], "y": y[observed], "forecast": fit["forecast"][observed],
        "lower": fit["lower"][observed], "upper": fit["upper"][observed],
        "flag": np.asarray(fit["flag"], dtype=object)[observed],
    })
    future_ts = pd.DatetimeIndex([ts[-1] + freq * (i + 1) for i in range(horizon)])
    future = pd.DataFrame({
        "ts": future_ts, "y": np.full(horizon, np.nan), "forecast": fit["future_forecast"],
        "lower": fit["future_lower"], "upper": fit["future_upper"],
        "flag": [FLAG_FORECAST] * horizon,
    })
    frames = [f for f in (past, future) if not f.empty]
    out = pd.concat(frames, ignore_index=True) if frames else past
    out.insert(0, "metric", metric)
    out.insert(0, "topic", topic)
    out["model"] = fit["model"]
    out["created_at"] = pd.Timestamp(created_at)
    return out[FORECAST_COLUMNS]


def write_forecasts(path: str | Path, rows: pd.DataFrame, metric: str,
                    topics: list[str]) -> None:
    """Replace the forecasts of ``topics`` for ``metric`` in one write transaction.

    Earlier ``forecast`` rows of these topics are deleted first (a shorter horizon or a new last
    window would otherwise leave stale future rows); everything else is ``INSERT OR REPLACE``.
    """
    with connect(path) as con:
        con.register("new_forecasts", rows)
        con.execute("BEGIN TRANSACTION")
        try:
            if topics:
                con.execute("DELETE FROM forecasts WHERE metric = ? AND flag = ? AND topic IN "
                            f"({', '.join('?' * len(topics))})",
                            [metric, FLAG_FORECAST, *topics])
            cols = ", ".join(f'"{c}"' for c in FORECAST_COLUMNS)
            con.execute(f"INSERT OR REPLACE INTO forecasts ({cols}) SELECT {cols} "
                        f"FROM new_forecasts")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.unregister("new_forecasts")


def run_forecast(cfg: Config, *, metric: str | None = None,
                 log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Forecast ``metric`` (default ``[forecast] metric``) for every topic and store the rows.

    Returns a summary: ``metric``, ``topics`` (fitted), ``skipped`` ({topic: reason}),
    ``points`` (observed windows written), ``flags`` (spikes + dips), ``spikes``, ``dips``,
    ``forecast_points`` (future rows written) and ``seconds``.
    """
    started = time.monotonic()
    metric = validate_metric(metric if metric is not None else cfg.forecast.metric)
    alpha, horizon = cfg.forecast.alpha, cfg.forecast.horizon
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"[forecast] alpha must be between 0 and 1 (exclusive), got {alpha}")
    if horizon < 0:
        raise ConfigError(f"[forecast] horizon must be >= 0 steps, got {horizon}")

    path = cfg.warehouse_path
    series, freq = read_series(path, metric)
    summary: dict[str, Any] = {"metric": metric, "topics": 0, "skipped": {}, "points": 0,
                               "flags": 0, "spikes": 0, "dips": 0, "forecast_points": 0}
    if series.empty:
        log(f"forecast {metric}: no rows in topic_windows of {path}; nothing to do")
        summary["seconds"] = round(time.monotonic() - started, 3)
        return summary

    n_series = series["series_id"].nunique()
    log(f"forecast {metric}: {n_series} topic(s), window {freq}, horizon {horizon}, "
        f"interval {1 - alpha:.0%}")
    created_at = datetime.now(UTC)
    frames, fitted = [], []
    for topic, group in series.groupby("series_id", sort=True):
        topic = str(topic)
        y = group["y"].to_numpy(float)
        try:
            fit = fit_predict(y, alpha=alpha, horizon=horizon)
        except SeriesSkipped as exc:
            summary["skipped"][topic] = str(exc)
            log(f"  skip {topic}: {exc}")
            continue
        for warning in fit["warnings"]:
            log(f"  {topic}: {warning}")
        rows = rows_for_series(topic, metric, pd.DatetimeIndex(group["ts"]), y, fit, freq,
                               horizon, created_at)
        frames.append(rows)
        fitted.append(topic)
        flags = rows["flag"]
        n_spikes, n_dips = int((flags == FLAG_SPIKE).sum()), int((flags == FLAG_DIP).sum())
        n_points = int((flags != FLAG_FORECAST).sum())
        summary["points"] += n_points
        summary["spikes"] += n_spikes
        summary["dips"] += n_dips
        summary["forecast_points"] += int((flags == FLAG_FORECAST).sum())
        log(f"  {topic}: {fit['model']}, {n_points} points, {n_spikes} spike(s), "
            f"{n_dips} dip(s), {int((flags == FLAG_NONE).sum())} normal")

    summary["topics"] = len(fitted)
    summary["flags"] = summary["spikes"] + summary["dips"]
    if frames:
        write_forecasts(path, pd.concat(frames, ignore_index=True), metric, fitted)
    summary["seconds"] = round(time.monotonic() - started, 3)
    log(f"forecast {metric}: wrote {summary['points'] + summary['forecast_points']} row(s) for "
        f"{len(fitted)} topic(s), {len(summary['skipped'])} skipped, {summary['flags']} flag(s) "
        f"in {summary['seconds']} s")
    return summary
