"""DuckDB ``topic_windows`` -> a long table ``series_id, ts, y`` (statsforecast's ``unique_id,
ds, y``), one regular series per topic.

Spark writes one row per topic and event-time window that received posts. A window with no posts
has no row; :func:`regularize` puts it back as ``y = NaN`` so the model sees a gap, not a
shorter series. Timestamps are UTC and tz-aware.

The grid is bounded: a series whose windows would span more than :data:`MAX_SERIES_WINDOWS`
keeps only its newest windows that fit (after a long gap, e.g. an archive from 2005 and live
data from 2026, that is the stretch after the gap); what was left out is said per series.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polarwatch.errors import ConfigError
from polarwatch.fields import FORECAST_METRICS
from polarwatch.warehouse import connect

# Numeric columns of `topic_windows` (polarwatch.ddl.TABLES) that can be forecast: spelled
# once in the spine, where [forecast] metric is checked when the config loads.
METRICS: tuple[str, ...] = FORECAST_METRICS

# Used only when the table holds no window to measure: [aggregate] window = "1 hour" in
# polarwatch.toml.
DEFAULT_FREQ = pd.Timedelta(hours=1)

SERIES_COLUMNS = ["series_id", "ts", "y"]
# The count behind each metric's window value: a mean of 3 interactions or a share of 3 posts
# is thin (see [forecast] min_volume); a count metric is its own support.
SUPPORT = {"mean_score": "n_interactions", "extreme_share": "n_conversations",
           "hostility_share": "volume", "pro_share": "volume", "anti_share": "volume",
           "volume": "volume", "n_interactions": "n_interactions",
           "n_conversations": "n_conversations"}
COUNT_METRICS = ("volume", "n_interactions", "n_conversations")
# Windows a series' grid may span. The models hold a state covariance per window: measured
# here, the seasonal candidate on 10,000 hourly windows took 7 s and 1.2 GB (2,000: 2.4 s,
# 0.4 GB); the 184,110 windows of a 2005 archive + 2026 data asked for gigabytes and died.
# 10,000 windows are 14 months of hourly windows, 35 days of 5-minute ones.
MAX_SERIES_WINDOWS = 10_000


def newest_stretch(group: pd.DataFrame, freq: pd.Timedelta,
                   max_windows: int = MAX_SERIES_WINDOWS) -> tuple[pd.DataFrame, str | None]:
    """``group`` (sorted by ``ts``) cut to its newest rows whose grid spans at most
    ``max_windows`` windows, with a sentence on what was left out (None when nothing was).
    Computed from the timestamps, before any grid is built."""
    ts = group["ts"]
    span = int(round((ts.iloc[-1] - ts.iloc[0]) / freq)) + 1
    if span <= max_windows:
        return group, None
    first = int(ts.searchsorted(ts.iloc[-1] - (max_windows - 1) * freq))
    kept = group.iloc[first:]
    gap = ts.iloc[first] - ts.iloc[first - 1] - freq
    return kept, (f"kept its newest {len(kept):,} window(s) from {ts.iloc[first]} only: "
                  f"from its first window, {ts.iloc[0]}, its {freq} grid would span {span:,} "
                  f"windows, more than the {max_windows:,} a model holds; the {first:,} older "
                  f"window(s) (before a gap of {gap}) are left out")


def validate_metric(metric: str) -> str:
    """Return ``metric`` if it is a forecastable ``topic_windows`` column; else ConfigError."""
    if metric not in METRICS:
        raise ConfigError(f"unknown forecast metric {metric!r} ([forecast] metric or --metric); "
                          f"valid metrics are {', '.join(METRICS)}")
    return metric


def infer_freq(windows: pd.DataFrame) -> pd.Timedelta:
    """The window length: the most common ``window_end - window_start``.

    Falls back to the smallest positive step between consecutive ``window_start`` of one topic,
    then to :data:`DEFAULT_FREQ` when there is nothing to measure.
    """
    if windows.empty:
        return DEFAULT_FREQ
    if "window_end" in windows:
        lengths = (windows["window_end"] - windows["window_start"]).dropna()
        lengths = lengths[lengths > pd.Timedelta(0)]
        if not lengths.empty:
            return pd.Timedelta(lengths.mode().iloc[0])
    steps = (windows.sort_values(["series_id", "window_start"])
             .groupby("series_id")["window_start"].diff().dropna())
    steps = steps[steps > pd.Timedelta(0)]
    return pd.Timedelta(steps.min()) if not steps.empty else DEFAULT_FREQ


def regularize(long: pd.DataFrame, freq: pd.Timedelta,
               trimmed: dict[str, str] | None = None,
               off_grid: dict[str, str] | None = None) -> pd.DataFrame:
    """Reindex every series onto ``first_ts, first_ts + freq, ..., last_ts``; missing -> NaN.

    ``long`` has columns ``series_id, ts, y``. Timestamps that are off the grid of their series'
    first timestamp raise ValueError (they would be silently dropped otherwise), or, given
    ``off_grid``, leave that series out and record ``{series_id: the first such timestamp}``.
    A series whose grid would exceed :data:`MAX_SERIES_WINDOWS` is cut to its newest windows
    (:func:`newest_stretch`); ``trimmed`` receives ``{series_id: what was left out}``.
    """
    if freq <= pd.Timedelta(0):
        raise ValueError(f"frequency must be positive, got {freq}")
    parts = []
    for sid, group in long.groupby("series_id", sort=True):
        group, cut = newest_stretch(group.sort_values("ts"), freq)
        if cut is not None and trimmed is not None:
            trimmed[str(sid)] = cut
        start, end = group["ts"].iloc[0], group["ts"].iloc[-1]
        offsets = (group["ts"] - start) / freq
        if not np.allclose(offsets, np.round(offsets)):
            bad = group["ts"][~np.isclose(offsets, np.round(offsets))].iloc[0]
            if off_grid is not None:
                off_grid[str(sid)] = (f"{bad:%Y-%m-%d %H:%M} UTC is not on the "
                                      f"{length_text(freq)} grid from {start:%Y-%m-%d %H:%M} UTC")
                continue
            raise ValueError(f"series {sid!r}: timestamp {bad} is not on the {freq} grid "
                             f"starting at {start}")
        grid = pd.date_range(start, end, freq=freq, name="ts")
        extra = [c for c in group.columns if c not in SERIES_COLUMNS]
        values = group.set_index("ts")[["y", *extra]].reindex(grid)
        parts.append(pd.DataFrame({"series_id": sid, "ts": grid,
                                   **{c: values[c].to_numpy(float) for c in ["y", *extra]}}))
    if not parts:
        return pd.DataFrame({"series_id": pd.Series(dtype=str),
                             "ts": pd.Series(dtype="datetime64[ns, UTC]"),
                             "y": pd.Series(dtype=float)})
    return pd.concat(parts, ignore_index=True)


def length_text(length: pd.Timedelta) -> str:
    """A window length as the config writes it: ``1h``, ``30min``, ``1d``, ``90s``."""
    seconds = length.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _lengths_note(windows: pd.DataFrame, sid: str, where: str) -> str:
    """Why ``sid`` cannot be put on one grid: the window lengths its rows hold, and the fix."""
    rows = windows[windows["series_id"] == sid]
    counts = (rows["window_end"] - rows["window_start"]).value_counts()
    shown = " and ".join(f"{length_text(pd.Timedelta(k))} ({n} windows)"
                         for k, n in counts.items())
    held = (f"windows of {len(counts)} lengths: {shown}, as when the stream was restarted after "
            f"[aggregate] window changed" if len(counts) > 1 else f"{shown} whose starts are "
            f"not one grid")
    return (f"topic_windows holds {held} ({where}); re-stream with `polarwatch stream --reset` "
            f"to re-aggregate every window at [aggregate] window")


def check_horizon(series: pd.DataFrame, freq: pd.Timedelta, horizon: int) -> None:
    """Raise :class:`ConfigError` when ``horizon`` windows of ``freq`` after the newest window
    would be dated past 2262-04-11, the last date pandas holds (long windows, a far horizon):
    the forecast would stop in its date arithmetic with a traceback."""
    if series.empty:
        return
    newest = pd.Timestamp(series["ts"].max())
    room = (pd.Timestamp.max.value - newest.value) // freq.value  # whole nanoseconds: exact
    if horizon > room:
        raise ConfigError(
            f"[forecast] horizon {horizon} windows of {length_text(freq)} after the newest "
            f"window ({newest:%Y-%m-%d}) would reach past 2262-04-11, the last date pandas "
            f"holds; set [forecast] horizon to at most {room:,} (or use shorter windows)")


def newest_allowed(max_future_skew_hours: float) -> datetime:
    """The latest window start `forecast` and `report` read: now plus ``[ingest]
    max_future_skew_hours``, the latest a post may be dated (later windows hold forged dates
    stored before that key was capped)."""
    return datetime.now(UTC) + timedelta(hours=max_future_skew_hours)


def future_windows(con: Any, until: datetime) -> dict[str, str]:
    """``{topic: how many windows start after until, from when}``: what is left out."""
    return {str(topic): (f"{n} window(s) from {first} UTC on left out: they start after "
                         f"{until:%Y-%m-%d %H:%M} UTC, later than a post may be dated now "
                         f"([ingest] max_future_skew_hours)")
            for topic, n, first in con.execute(
                "SELECT topic, count(*), strftime(timezone('UTC', min(window_start)), "
                "'%Y-%m-%d %H:%M') FROM topic_windows WHERE window_start > ? GROUP BY 1 "
                "ORDER BY 1", [until]).fetchall()}


def read_windows(path: str | Path, metric: str, until: datetime | None = None,
                 future: dict[str, str] | None = None) -> pd.DataFrame:
    """Raw rows ``series_id, window_start, window_end, y, n`` for one metric (UTC, tz-aware);
    ``n`` is the count behind the value (:data:`SUPPORT`). Windows starting after `until` are
    left out (posts dated later than ingest now accepts: a forged date of 2262 broke the
    series); `future` receives ``{series_id: how many, from when}``."""
    validate_metric(metric)
    after = "WHERE window_start <= ?" if until is not None else ""
    # timezone('UTC', tstz) gives a naive UTC timestamp: independent of the session time zone.
    sql = (f'SELECT topic AS series_id, timezone(\'UTC\', window_start) AS window_start, '
           f'timezone(\'UTC\', window_end) AS window_end, CAST("{metric}" AS DOUBLE) AS y, '
           f'CAST("{SUPPORT[metric]}" AS DOUBLE) AS n '
           f"FROM topic_windows {after} ORDER BY topic, window_start")
    args = [until] if until is not None else []
    with connect(path, read_only=True) as con:
        df = con.execute(sql, args).df()
        if until is not None and future is not None:
            future.update(future_windows(con, until))
    for col in ("window_start", "window_end"):
        df[col] = pd.to_datetime(df[col]).dt.tz_localize("UTC")
    df["series_id"] = df["series_id"].astype(str)
    return df


def read_series(path: str | Path, metric: str, freq: pd.Timedelta | None = None,
                trimmed: dict[str, str] | None = None, until: datetime | None = None,
                off_grid: dict[str, str] | None = None) -> tuple[pd.DataFrame, pd.Timedelta]:
    """Read ``metric`` per topic from ``topic_windows`` as a regular long table.

    Returns ``(series, freq)``: ``series`` has columns ``series_id, ts, y, n`` sorted by series
    and time, with NaN for windows that have no row (or a NULL metric); ``n`` is the count
    behind each value (:data:`SUPPORT`); ``freq`` is the window length (inferred from the data
    unless given). ``trimmed``: see :func:`regularize`; it also receives the windows after
    `until` that were left out (:func:`read_windows`). ``off_grid``: a topic whose windows
    are not on one grid (windows of two lengths) is left out and gets why and the fix; without
    it, ValueError.
    """
    future: dict[str, str] = {}
    windows = read_windows(path, metric, until, future)
    freq = infer_freq(windows) if freq is None else pd.Timedelta(freq)
    long = windows.rename(columns={"window_start": "ts"})[[*SERIES_COLUMNS, "n"]]
    out = regularize(long, freq, trimmed, off_grid)
    if off_grid is not None:
        for sid, where in off_grid.items():
            off_grid[sid] = _lengths_note(windows, sid, where)
    if trimmed is not None:
        for sid, what in future.items():
            trimmed[sid] = f"{what}; {trimmed[sid]}" if sid in trimmed else what
    return out, freq
