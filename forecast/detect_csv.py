"""Anomaly detection on a ``timestamp,value`` CSV (``polarwatch detect``): read, detect, write.

Input rules of :func:`read_series_csv` (every problem is reported with line numbers and counts
through ``note``, so that the command can keep stdout for the output CSV):

- A header with ``timestamp`` and ``value`` columns (any order, extra columns ignored).
- Unparseable timestamps are an error (a row that cannot be placed in time cannot be kept); a
  valid date outside the 1677-2262 range a pandas series can hold is named as such.
- Non-numeric or empty values become missing points (reported), never zero; a series whose
  typical magnitude is beyond 1e150 is an error (its squares overflow).
- Duplicate timestamps: the **last** row wins (a re-export or correction is appended later);
  each duplicate is reported. ``duplicates="error"`` refuses them instead.
- Rows out of order are sorted (reported).
- The interval is the most common step. Timestamps off that grid are an error; missing grid
  timestamps (gaps) are filled as missing points (reported: how many, the largest gap).
- Too few observed rows for the detector's warm-up is an error (:func:`run_detect`) that says
  how many are needed.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from forecast.alarms import close_previous
from forecast.detect import DetectorConfig, StreamingDetector, warmup_points
from forecast.routine import DAYS, NEED_DAYS
from polarwatch.errors import PolarwatchError

OUTPUT_COLUMNS = ["timestamp", "value", "forecast", "lower", "upper", "anomaly_score", "flag",
                  "episode"]
MAX_LISTED = 5  # line numbers quoted per problem; the count is always complete
# A series whose typical value is beyond this overflows the model's squares (float max ~1.8e308);
# single outliers that large are fine (they are scored on the log scale or clipped).
MAX_TYPICAL_MAGNITUDE = 1e150


class InputError(PolarwatchError):
    """The CSV cannot be used as a regular series; the message says where and how many."""


def _lines(lines: list[int]) -> str:
    head = ", ".join(str(n) for n in lines[:MAX_LISTED])
    return head + (f" and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else "")


def _beyond_pandas(text: str) -> bool:
    """Is ``text`` an ISO-8601 date that Python reads but pandas' nanosecond clock cannot hold
    (years before 1677 or after 2262)?"""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.year <= pd.Timestamp.min.year or when.year >= pd.Timestamp.max.year


def read_series_csv(source: str | Path | IO[str], *, duplicates: str = "last",
                    note: Callable[[str], Any] = print) -> tuple[pd.DataFrame, pd.Timedelta, bool]:
    """Read ``timestamp,value`` rows into a regular series.

    Returns ``(frame, interval, naive)``: ``frame`` has ``ts`` (UTC) and ``value`` (float, NaN
    missing) on a regular grid; ``naive`` tells whether the input had no time zone.
    """
    name = str(source) if isinstance(source, (str, Path)) else "<stdin>"
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise InputError(f"{source} does not exist")
    try:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:  # a file decodes, stdin re-encodes
        raise InputError(f"{name}: not UTF-8 text ({exc.reason} at position {exc.start}); save "
                         f"it as UTF-8") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(f"{name}: not a readable CSV ({exc})") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    missing = [c for c in ("timestamp", "value") if c not in cols]
    if missing:
        raise InputError(f"{name}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(map(str, raw.columns)) or 'no header'}. The file needs a "
                         f"header line `timestamp,value`")
    ts_text = raw[cols["timestamp"]].str.strip()
    val_text = raw[cols["value"]].str.strip()
    line = np.arange(len(raw)) + 2  # 1-based, after the header line
    ts = pd.to_datetime(ts_text, errors="coerce", utc=True, format="mixed")
    bad_ts = line[ts.isna().to_numpy()].tolist()
    if bad_ts:
        far = [n for n in bad_ts if _beyond_pandas(ts_text.iloc[n - 2])]
        if far:
            raise InputError(
                f"{name}: {len(far)} timestamp(s) on line(s) {_lines(far)} are valid dates "
                f"outside the range a series can hold, {pd.Timestamp.min:%Y-%m-%d} to "
                f"{pd.Timestamp.max:%Y-%m-%d} (e.g. {ts_text.iloc[far[0] - 2]!r}); fix or drop "
                f"those rows")
        raise InputError(f"{name}: {len(bad_ts)} unparseable timestamp(s) on line(s) "
                         f"{_lines(bad_ts)} (e.g. {ts_text.iloc[bad_ts[0] - 2]!r})")
    naive = pd.to_datetime(ts_text.iloc[:1], format="mixed").dt.tz is None if len(raw) else True
    value = pd.to_numeric(val_text, errors="coerce").astype(float)
    value[~np.isfinite(value.to_numpy())] = np.nan
    empty = (val_text == "").to_numpy()
    junk = value.isna().to_numpy() & ~empty
    if junk.any():
        examples = ", ".join(repr(v) for v in val_text[junk].unique()[:3])
        note(f"{name}: {int(junk.sum())} non-numeric value(s) on line(s) "
             f"{_lines(line[junk].tolist())} ({examples}): treated as missing")
    if empty.any():
        note(f"{name}: {int(empty.sum())} empty value(s) on line(s) "
             f"{_lines(line[empty].tolist())}: treated as missing")
    observed = np.abs(value.dropna().to_numpy())
    typical = float(np.quantile(observed, 0.5, method="lower")) if len(observed) else 0.0
    if typical > MAX_TYPICAL_MAGNITUDE:  # ("lower": a median that averages would overflow)
        raise InputError(f"{name}: the values are too large to model (median magnitude "
                         f"{typical:.3g}; the detector squares differences, "
                         f"which overflows beyond {MAX_TYPICAL_MAGNITUDE:.0e}); divide the "
                         f"series by a power of ten first")
    df = pd.DataFrame({"ts": ts, "value": value, "line": line})
    if not df["ts"].is_monotonic_increasing:
        n_back = int((df["ts"].diff() < pd.Timedelta(0)).sum())
        note(f"{name}: {n_back} row(s) out of time order: sorted by timestamp")
        df = df.sort_values(["ts", "line"], kind="stable")
    dup = df["ts"].duplicated(keep="last").to_numpy()
    if dup.any():
        pairs = [f"{t:%Y-%m-%d %H:%M:%S} (line {a} < {b})" for t, a, b in zip(
            df["ts"][dup], df["line"][dup],
            df.drop_duplicates("ts", keep="last").set_index("ts").loc[df["ts"][dup], "line"],
            strict=True)][:MAX_LISTED]
        if duplicates == "error":
            raise InputError(f"{name}: {int(dup.sum())} duplicate timestamp(s): "
                             f"{'; '.join(pairs)}")
        note(f"{name}: {int(dup.sum())} duplicate timestamp(s), kept the last row of each: "
             f"{'; '.join(pairs)}")
        df = df[~dup]
    if len(df) < 2:
        raise InputError(f"{name}: {len(df)} distinct timestamp(s); at least 2 are needed to "
                         f"infer the interval")
    steps = df["ts"].diff().dropna()
    freq = pd.Timedelta(steps.mode().iloc[0])
    offsets = ((df["ts"] - df["ts"].iloc[0]) / freq).to_numpy(float)
    off_grid = ~np.isclose(offsets, np.round(offsets), atol=1e-6)
    if off_grid.any():
        raise InputError(f"{name}: irregular intervals: the most common step is {freq}, but "
                         f"{int(off_grid.sum())} timestamp(s) are off that grid starting at "
                         f"{df['ts'].iloc[0]}, on line(s) {_lines(df['line'][off_grid].tolist())}."
                         f" Resample the series to one interval first")
    grid = pd.date_range(df["ts"].iloc[0], df["ts"].iloc[-1], freq=freq)
    n_missing = len(grid) - len(df)
    if n_missing:
        big = steps[steps > freq]
        where = big.idxmax()
        note(f"{name}: {n_missing} missing timestamp(s) in {len(big)} gap(s) filled as missing "
             f"points; largest gap {big.max() - freq} before line {df['line'][where]}")
    out = df.set_index("ts")["value"].reindex(grid)
    return pd.DataFrame({"ts": grid, "value": out.to_numpy(float)}), freq, naive


def run_detect(frame: pd.DataFrame, freq: pd.Timedelta,
               config: DetectorConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The detector over a regular frame (``ts``, ``value``) -> (output columns, model info)."""
    values = frame["value"].to_numpy(float)
    seconds = freq.total_seconds()
    need = warmup_points(config.period(seconds)) + 1
    n_obs = int(np.isfinite(values).sum())
    if n_obs < need:
        raise InputError(f"too few rows: {n_obs} observed value(s), the detector needs at least "
                         f"{need} at a {freq} interval ({need - 1} of warm-up, which learns "
                         f"the daily/weekly cycle when there is one; `--season none` needs "
                         f"{warmup_points(None) + 1})")
    out = detect_values(values, seconds, config)
    cols = {c: out[c] for c in OUTPUT_COLUMNS[2:]}
    cols["episode"] = pd.array(out["episode"], dtype="Int64")
    return pd.DataFrame({"timestamp": frame["ts"], "value": values, **cols}), out["info"]


def write_output(result: pd.DataFrame, target: Any, naive: bool) -> None:
    """:func:`run_detect`'s frame as CSV on ``target`` (times in the input's style)."""
    fmt = "%Y-%m-%d %H:%M:%S" if naive else "%Y-%m-%dT%H:%M:%S%z"
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    for row in result.itertuples(index=False):
        cells = [row.timestamp.strftime(fmt)]
        for v in (row.value, row.forecast, row.lower, row.upper):
            cells.append("" if math.isnan(v) else f"{v:.10g}")
        score = row.anomaly_score
        cells.append("" if math.isnan(score) else f"{score:.6f}")
        cells.append(row.flag)
        cells.append("" if row.episode is None or pd.isna(row.episode) else str(row.episode))
        writer.writerow(cells)


def describe(result: pd.DataFrame, info: dict[str, Any], freq: pd.Timedelta) -> str:
    """One line on :func:`run_detect`'s output: rows, model, flags and episodes."""
    counts = result["flag"].value_counts()
    return (f"{len(result)} rows at {freq} interval; model {info.get('model')} (season "
            f"{info.get('period') or 'none'}, {info.get('scale', 'linear')} scale, "
            f"warm-up {info['warmup']} points"
            + (f" (full model after {info['season_warmup']})" if "season_warmup" in info
               else "")
            + f", {info['fits']} fit(s)"
            + ("; the error usual at each hour of the week subtracted from the third week on, "
               "[forecast] weekly" if info.get("weekly") else "")
            + "); flags: "
            + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("spike", "reactive", "anticipatory"))
            + f" (one alarm per episode: {result['episode'].dropna().nunique()} episode(s))"
            + (f"; {info['routine']} routine burst(s) not alarmed (at a time of day that also "
               f"burst on {NEED_DAYS} of the {DAYS} days before; [forecast] routine)"
               if info.get("routine")
               else ""))


def detect_values(values: Any, interval_seconds: float,
                  config: DetectorConfig | None = None) -> dict[str, Any]:
    """Run one :class:`StreamingDetector` over ``values``; arrays per output column + info."""
    det = StreamingDetector(interval_seconds, config or DetectorConfig())
    pts = [det.update(v) for v in np.asarray(values, dtype=float)]
    out: dict[str, Any] = {c: np.array([getattr(p, c) for p in pts])
                           for c in ("forecast", "lower", "upper", "anomaly_score")}
    events: list[str | None] = []
    episodes: list[int | None] = []
    for p in pts:
        close_previous(events, episodes, p.closes)
        events.append(p.event)
        episodes.append(p.episode)
    return {**out, "flag": [p.flag for p in pts], "kind": [p.kind for p in pts],
            "episode": episodes, "event": events,
            "info": det.info | {"routine": det.routine.stretches, "weekly": det.weekly.active}}
