"""Anomaly detection on a ``timestamp,value`` CSV (``polarwatch detect``): read, detect, write.

Input rules of :func:`read_series_csv` (every problem is reported with line numbers and counts
through ``note``, so that the command can keep stdout for the output CSV):

- A header with ``timestamp`` and ``value`` columns, each named once (any order, extra
  columns ignored).
- Unparseable timestamps are an error (a row that cannot be placed in time cannot be kept); a
  valid date outside the 1677-2262 range a pandas series can hold is named as such. A timestamp
  longer than :data:`MAX_TIMESTAMP_CHARS` is unparseable without being parsed (pandas' mixed
  format parser takes quadratic time on a long field). Examples quoted in a message are cut
  to :data:`forecast.csv_grid.MAX_QUOTED_CHARS`.
- Non-numeric or empty values become missing points (reported), never zero; a series whose
  typical magnitude is beyond 1e150 is an error (its squares overflow).
- Duplicate timestamps: the **last** row wins (a re-export or correction is appended later);
  each duplicate is reported. ``duplicates="error"`` refuses them instead.
- Rows out of order are sorted (reported).
- The interval is the most common step. Timestamps off that grid are an error that names the
  first off-grid row (its line and timestamp) and the options below; missing grid timestamps
  (gaps) are filled as missing points (reported: how many, the largest gap), at most
  :data:`forecast.csv_grid.MAX_FILLED_POINTS` of them: a longer fill (a gap of years at a
  1-second interval) is an error naming the largest gap and how many points it would add.
- ``snap`` (``--snap``): each row goes to the **nearest** point (a tie: the later) of the grid
  of the most common step at the phase most rows share, so a regular series stays as it is.
  ``resample=FREQ``: each row goes to the **start** of its interval ``[t, t + FREQ)`` on a grid
  aligned to 1970-01-01 UTC (as pandas' ``resample`` labels bins). Rows on one grid point
  (duplicates already resolved) are combined by ``agg``: ``mean``, ``sum`` or ``last`` of the
  observed values. The grid timestamp replaces the rows' own; moves and merges are reported.
  Both refuse times with and without a zone mixed; FREQ must be shorter than the series, and
  a grid past the bound on missing points names the finest FREQ that fits.
- The detector's flags are classed as ``forecast`` classes them with an empty calendar
  (:func:`classify`): a fall is a ``dip``, a rise a ``spike`` (never ``anticipatory``: there is
  no scheduled event to anticipate), a level jump or drop without a build-up ``reactive``.
- Too few observed rows for the detector's warm-up is an error (:func:`run_detect`) that says
  how many are needed.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from forecast.alarms import FLAG_NONE, close_previous
from forecast.csv_grid import (
    MAX_LISTED,
    InputError,
    fill_grid,
    lines_text,
    one_zone_style,
    quote,
    regrid,
)
from forecast.detect import DetectorConfig, StreamingDetector, Trigger, warmup_points
from forecast.explain import class_text
from forecast.routine import DAYS, NEED_DAYS

FLAG_CLASSES = ("spike", "dip", "reactive")  # what detect can flag (no calendar: not anticipatory)
OUTPUT_COLUMNS = ["timestamp", "value", "forecast", "lower", "upper", "anomaly_score", "flag",
                  "episode"]
# A series whose typical value is beyond this overflows the model's squares (float max ~1.8e308);
# single outliers that large are fine (they are scored on the log scale or clipped).
MAX_TYPICAL_MAGNITUDE = 1e150
# The longest timestamp read: an ISO time with nanoseconds and an offset has 35 characters.
MAX_TIMESTAMP_CHARS = 64
# How rows that share a grid point are combined under --snap / --resample (observed values only).
AGGREGATIONS = ("mean", "sum", "last")
MIN_RESAMPLE = timedelta(microseconds=1)  # the finest --resample a timedelta can hold
MAX_SPAN = pd.Timedelta.max.to_pytimedelta()  # the longest step pandas holds: 292 years


def _beyond_pandas(text: str) -> bool:
    """Is ``text`` an ISO-8601 date that Python reads but pandas' nanosecond clock cannot hold
    (years before 1677 or after 2262)?"""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.year <= pd.Timestamp.min.year or when.year >= pd.Timestamp.max.year


def read_series_csv(source: str | Path | IO[str], *, duplicates: str = "last",
                    note: Callable[[str], Any] = print, snap: bool = False,
                    resample: timedelta | None = None,
                    agg: str = "mean") -> tuple[pd.DataFrame, pd.Timedelta, bool]:
    """Read ``timestamp,value`` rows into a regular series.

    Returns ``(frame, interval, naive)``: ``frame`` has ``ts`` (UTC) and ``value`` (float, NaN
    missing) on a regular grid; ``naive`` tells whether the input had no time zone. ``snap``,
    ``resample`` and ``agg``: see the module docstring.
    """
    if (snap and resample is not None) or agg not in AGGREGATIONS or (
            resample is not None and resample < MIN_RESAMPLE):
        raise ValueError(f"snap={snap}, resample={resample}, agg={agg!r}: snap or resample "
                         f"(>= {MIN_RESAMPLE}), agg one of {', '.join(AGGREGATIONS)}")
    name = str(source) if isinstance(source, (str, Path)) else "<stdin>"
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise InputError(f"{source} does not exist")
    # The header is read as a row, then only its two columns: pandas renames repeated header
    # names one at a time (`c`, `c.1`, ...), in time quadratic in their number.
    rows = {"header": None, "dtype": str, "keep_default_na": False, "skipinitialspace": True}
    try:
        if not isinstance(source, (str, Path)):  # read twice: stdin is kept
            source = io.StringIO(source.read())
        names = [str(c).strip() for c in pd.read_csv(source, nrows=1, **rows).iloc[0]]
        lowered = [n.lower() for n in names]
        cols = {c: lowered.index(c) for c in ("timestamp", "value") if c in lowered}
        missing = [c for c in ("timestamp", "value") if c not in cols]
        if missing:
            raise InputError(f"{name}: missing column(s) {', '.join(missing)}; found "
                             f"{', '.join(names) or 'no header'}. The file needs a header "
                             f"line `timestamp,value`")
        twice = [f"{c} ({lowered.count(c)} times)" for c in cols if lowered.count(c) > 1]
        if twice:  # the first was taken, silently
            raise InputError(f"{name}: the header names {' and '.join(twice)}; which to read "
                             f"is unclear: rename or remove the other(s)")
        if isinstance(source, io.StringIO):
            source.seek(0)
        raw = pd.read_csv(source, usecols=list(cols.values()), index_col=False,
                          **rows).iloc[1:].reset_index(drop=True)  # (row 0: the header)
    except (UnicodeDecodeError, UnicodeEncodeError) as exc:  # a file decodes, stdin re-encodes
        raise InputError(f"{name}: not UTF-8 text ({exc.reason} at position {exc.start}); save "
                         f"it as UTF-8") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(f"{name}: not a readable CSV ({exc})") from exc
    ts_text = raw[cols["timestamp"]].str.strip()
    val_text = raw[cols["value"]].str.strip()
    line = np.arange(len(raw)) + 2  # 1-based, after the header line
    too_long = (ts_text.str.len() > MAX_TIMESTAMP_CHARS).to_numpy()
    ts = pd.to_datetime(ts_text.mask(too_long, ""), errors="coerce", utc=True, format="mixed")
    bad_ts = line[ts.isna().to_numpy()].tolist()
    if bad_ts:
        far = [n for n in bad_ts if _beyond_pandas(ts_text.iloc[n - 2])]
        if far:
            raise InputError(
                f"{name}: {len(far)} timestamp(s) on line(s) {lines_text(far)} are valid dates "
                f"outside the range a series can hold, {pd.Timestamp.min:%Y-%m-%d} to "
                f"{pd.Timestamp.max:%Y-%m-%d} (e.g. {quote(ts_text.iloc[far[0] - 2])}); fix "
                f"or drop those rows")
        long_note = (f"; {int(too_long.sum())} of them longer than {MAX_TIMESTAMP_CHARS} "
                     f"characters" if too_long.any() else "")
        raise InputError(f"{name}: {len(bad_ts)} unparseable timestamp(s) on line(s) "
                         f"{lines_text(bad_ts)} (e.g. {quote(ts_text.iloc[bad_ts[0] - 2])})"
                         f"{long_note}")
    naive = pd.to_datetime(ts_text.iloc[:1], format="mixed").dt.tz is None if len(raw) else True
    one_zone_style(ts_text, line, name)  # (a naive row would land hours off the others)
    value = pd.to_numeric(val_text, errors="coerce").astype(float)
    value[~np.isfinite(value.to_numpy())] = np.nan
    empty = (val_text == "").to_numpy()
    junk = value.isna().to_numpy() & ~empty
    if junk.any():
        examples = ", ".join(quote(v) for v in val_text[junk].unique()[:3])
        note(f"{name}: {int(junk.sum())} non-numeric value(s) on line(s) "
             f"{lines_text(line[junk].tolist())} ({examples}): treated as missing")
    if empty.any():
        note(f"{name}: {int(empty.sum())} empty value(s) on line(s) "
             f"{lines_text(line[empty].tolist())}: treated as missing")
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
    span = df["ts"].iloc[-1].to_pydatetime(warn=False) - df["ts"].iloc[0].to_pydatetime(
        warn=False)  # (nanoseconds dropped: the span only bounds the file)
    if span > MAX_SPAN:  # (pandas' int64 nanoseconds overflowed: a traceback)
        raise InputError(f"{name}: the rows span {span.days:,} days, more than the "
                         f"{MAX_SPAN.days:,} (292 years) a series can; split the file")
    steps = df["ts"].diff().dropna()
    freq = pd.Timedelta(steps.mode().iloc[0])
    if resample is None and freq < MIN_RESAMPLE:  # (the detector's seconds hold microseconds)
        raise InputError(f"{name}: the rows are {freq} apart, closer than 1 microsecond, the "
                         f"finest interval the detector takes; pass --resample with a coarser "
                         f"interval (at least 0.000001s)")
    if snap or resample is not None:
        df, freq = regrid(df, name, freq, span, resample, agg, note)
        steps = df["ts"].diff().dropna()
    return fill_grid(df, name, freq, span, resample, note), freq, naive


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
    out["flag"] = classify(out["flag"], out["trigger"], frame["ts"])
    cols = {c: out[c] for c in OUTPUT_COLUMNS[2:]}
    cols["episode"] = pd.array(out["episode"], dtype="Int64")
    return pd.DataFrame({"timestamp": frame["ts"], "value": values, **cols}), out["info"]


def classify(flags: list[str], triggers: list[Trigger | None], ts: Any) -> list[str]:
    """The detector's raw kinds as ``forecast`` classes them with an empty calendar
    (:func:`forecast.explain.class_text`, as :func:`forecast.run.classify_series` calls it):
    ``dip`` for a fall, ``spike`` for a rise, ``reactive`` for a level jump or drop."""
    return [flag if flag == FLAG_NONE else
            class_text(flag, trig, pd.Timestamp(t).to_pydatetime(), None, None, 0)[0]
            for flag, trig, t in zip(flags, triggers, ts, strict=True)]


def write_output(result: pd.DataFrame, target: Any, naive: bool) -> None:
    """:func:`run_detect`'s frame as CSV on ``target`` (times in the input's style, with
    microseconds when any time has a fraction of a second)."""
    frac = ".%f" if (result["timestamp"].dt.microsecond != 0).any() else ""
    fmt = f"%Y-%m-%d %H:%M:%S{frac}" if naive else f"%Y-%m-%dT%H:%M:%S{frac}%z"
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
            + ", ".join(f"{k} {counts.get(k, 0)}" for k in FLAG_CLASSES)
            + f" (one alarm per episode: {result['episode'].dropna().nunique()} episode(s))"
            + (f"; {info['routine']} routine burst(s) not alarmed (at a time of day that also "
               f"burst on {NEED_DAYS} of the {DAYS} days before; [forecast] routine)"
               if info.get("routine")
               else ""))


def detect_values(values: Any, interval_seconds: float,
                  config: DetectorConfig | None = None) -> dict[str, Any]:
    """Run one :class:`StreamingDetector` over ``values``; arrays per output column + info.

    ``flag`` holds the detector's raw kinds (``anticipatory`` for a build-up, ``spike`` for an
    exceedance either way); :func:`classify` (the ``detect`` command) gives them their class."""
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
            "trigger": [p.trigger for p in pts],
            "episode": episodes, "event": events,
            "info": det.info | {"routine": det.routine.stretches, "weekly": det.weekly.active}}
