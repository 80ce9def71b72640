"""Rows of a ``timestamp,value`` CSV onto one regular grid (for :mod:`forecast.detect_csv`).

:func:`regrid` moves rows onto a grid (``--snap``, ``--resample FREQ``), :func:`fill_grid` checks
that every row is on its grid and fills the gaps with missing points; both report through the
caller's ``note`` and raise :class:`InputError` with line numbers and counts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from polarwatch.errors import PolarwatchError

MAX_LISTED = 5  # line numbers quoted per problem; the count is always complete
MAX_QUOTED_CHARS = 80  # of a field quoted in a message
# Missing points a file's gaps may add to the grid: about 11.5 days at a 1-second interval or
# 114 years of hourly ones; the detector takes about 1 s per 100,000 missing points and the
# grid 8 bytes a point per column. A 4-year gap at 1 h (34,920 points) is well inside.
MAX_FILLED_POINTS = 1_000_000
# A time written with a zone: Z, UTC/GMT or an offset after the clock time (a bare date's
# "-01" is no offset).
_ZONED = re.compile(r"(?:\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[+-]\d\d(?::?\d\d)?|z)|utc|gmt|z)$",
                    re.IGNORECASE)


class InputError(PolarwatchError):
    """The CSV cannot be used as a regular series; the message says where and how many."""


def quote(text: str) -> str:
    """``repr(text)``, cut to :data:`MAX_QUOTED_CHARS` characters with its full length."""
    if len(text) <= MAX_QUOTED_CHARS:
        return repr(text)
    return f"{text[:MAX_QUOTED_CHARS]!r}… ({len(text):,} characters)"


def lines_text(lines: list[int]) -> str:
    head = ", ".join(str(n) for n in lines[:MAX_LISTED])
    return head + (f" and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else "")


def freq_text(step: timedelta) -> str:
    """``step`` in the duration grammar (``5min``, ``1h``, ``0.5s``), to quote as a FREQ."""
    micro = round(step / timedelta(microseconds=1))
    for unit, size in (("w", 7 * 86_400_000_000), ("d", 86_400_000_000), ("h", 3_600_000_000),
                       ("min", 60_000_000)):
        if micro % size == 0:
            return f"{micro // size}{unit}"
    return f"{micro / 1e6:.6f}".rstrip("0").rstrip(".") + "s"


def one_zone_style(ts_text: pd.Series, line: np.ndarray, name: str) -> None:
    """Refuse timestamps with a time zone mixed with timestamps without one: a naive time is
    read as UTC, so it would land hours away from its neighbours (on another row's time, where
    one of the two is dropped as a duplicate, or off the grid)."""
    zoned = ts_text.str.contains(_ZONED).to_numpy(bool)
    if zoned.any() and not zoned.all():
        naive_at, zoned_at = line[~zoned].tolist(), line[zoned].tolist()
        raise InputError(f"{name}: {len(zoned_at)} timestamp(s) have a time zone (line(s) "
                         f"{lines_text(zoned_at)}) and {len(naive_at)} have none (line(s) "
                         f"{lines_text(naive_at)}), which would be read as UTC, hours away from "
                         f"their neighbours. Give every row its offset (or none) first")


def regrid(df: pd.DataFrame, name: str, step: pd.Timedelta, span: timedelta,
            resample: timedelta | None, agg: str,
            note: Callable[[str], Any]) -> tuple[pd.DataFrame, pd.Timedelta]:
    """Rows (``ts``, ``value``, ``line``; sorted, distinct times) onto one grid: the nearest
    point of ``step``'s grid at the most common phase, or with ``resample`` the start of their
    interval on a grid aligned to the epoch. One row per occupied grid point (``agg`` of its
    observed values, the first line), and the grid's step."""
    first, last = df["ts"].iloc[0], df["ts"].iloc[-1]
    if resample is not None and resample >= span:
        raise InputError(f"{name}: --resample {freq_text(resample)} is not shorter than the "
                         f"whole series ({pd.Timedelta(span)} from {first} to {last}): every row "
                         f"would fall on one or two grid points; choose a FREQ well below it")
    freq = step if resample is None else pd.Timedelta(resample)
    ns = df["ts"].dt.as_unit("ns").astype("int64").to_numpy()
    f = int(freq.value)
    phase = 0 if resample is not None else int(pd.Series(ns % f).mode().iloc[0])
    r = (ns % f - phase) % f  # how far past its grid point at or before it each row is
    lo = ns - r
    later = (r >= f - r) & (resample is None)  # --snap: the nearest point, a tie the later one
    grid = np.where(later, lo + f, lo)  # (int64 arithmetic wraps: caught on the next line)
    wrapped = (lo > ns) | (later & (lo + f < lo)) | (grid == np.iinfo(np.int64).min)
    if wrapped.any():
        raise InputError(f"{name}: the grid point of line {df['line'].to_numpy()[wrapped][0]} "
                         f"lies outside the dates a series can hold; drop that row")
    moved, groups = grid != ns, df.assign(grid=grid).groupby("grid", sort=True)
    sizes = groups.size().to_numpy()
    values = (groups["value"].sum(min_count=1) if agg == "sum"
              else getattr(groups["value"], agg)())
    shift = np.abs(grid - ns)
    worst = int(np.argmax(shift))  # (the first row of the largest shift)
    rule = (f"the start of their {freq} interval on a grid aligned to 1970-01-01 UTC"
            if resample is not None else f"the nearest point of the {freq} grid of the most "
            f"common step (a tie to the later point)")
    note(f"{name}: {'--snap' if resample is None else '--resample ' + freq_text(freq)}: "
         f"{int(moved.sum()):,} of {len(df):,} row(s) moved to {rule}"
         + (f", the largest shift {pd.Timedelta(int(shift[worst]))} (line "
            f"{df['line'].iloc[worst]})" if moved.any() else "")
         + f"; {int(sizes[sizes > 1].sum()):,} row(s) merged into {int((sizes > 1).sum()):,} "
         f"grid point(s) ({agg} of their values); the output has the grid's timestamps")
    out = pd.DataFrame({"ts": pd.to_datetime(values.index.to_numpy(), utc=True),
                        "value": values.to_numpy(float), "line": groups["line"].min().to_numpy()})
    return out, freq


def fill_grid(df: pd.DataFrame, name: str, freq: pd.Timedelta, span: timedelta,
              resample: timedelta | None, note: Callable[[str], Any]) -> pd.DataFrame:
    """Rows (``ts``, ``value``, ``line``; sorted, distinct times) as a series on ``freq``'s grid
    from the first row: a row off that grid is an error, a gap is filled with missing points
    (reported; at most :data:`MAX_FILLED_POINTS`)."""
    steps = df["ts"].diff().dropna()
    offsets = ((df["ts"] - df["ts"].iloc[0]) / freq).to_numpy(float)
    off_grid = ~np.isclose(offsets, np.round(offsets), atol=1e-6)
    if off_grid.any():
        first = int(np.argmax(off_grid))
        raise InputError(f"{name}: irregular intervals: the most common step is {freq}, but "
                         f"{int(off_grid.sum())} timestamp(s) are off that grid (counted from the "
                         f"first row, {df['ts'].iloc[0]}); the first off-grid row is "
                         f"line {df['line'].iloc[first]}, {df['ts'].iloc[first]} "
                         f"({df['ts'].iloc[first] - df['ts'].iloc[first - 1]} after the row "
                         f"before it); all: line(s) {lines_text(df['line'][off_grid].tolist())}. "
                         f"Fix those rows, or pass --snap to move each row to the nearest "
                         f"point of that grid (--resample FREQ: onto another interval)")
    n_missing = int(round(float((df["ts"].iloc[-1] - df["ts"].iloc[0]) / freq))) + 1 - len(df)
    if n_missing:
        big = steps[steps > freq]
        where = big.idxmax()
        gap = f"{big.max() - freq} before line {df['line'][where]}"
        if n_missing > MAX_FILLED_POINTS and resample is not None:
            finest = pd.Timedelta(span / MAX_FILLED_POINTS).ceil("s" if span > MAX_FILLED_POINTS
                                                                  * timedelta(seconds=1) else "us")
            raise InputError(
                f"{name}: --resample {freq_text(freq)} puts the series ({pd.Timedelta(span)} "
                f"long) on {n_missing + len(df):,} grid points, {n_missing:,} of them "
                f"missing: more than the {MAX_FILLED_POINTS:,} "
                f"the detector fills; choose a FREQ of at least {freq_text(finest)}")
        if n_missing > MAX_FILLED_POINTS:
            raise InputError(
                f"{name}: the gaps would add {n_missing:,} missing points at the {freq} "
                f"interval, more than the {MAX_FILLED_POINTS:,} the detector fills; the "
                f"largest gap, {gap}, alone adds {int(big.max() / freq) - 1:,}. Split the file "
                f"at that gap, or pass --resample with a coarser interval")
        note(f"{name}: {n_missing} missing timestamp(s) in {len(big)} gap(s) filled as missing "
             f"points; largest gap {gap}")
    grid = pd.date_range(df["ts"].iloc[0], df["ts"].iloc[-1], freq=freq)
    out = df.set_index("ts")["value"].reindex(grid)
    return pd.DataFrame({"ts": grid, "value": out.to_numpy(float)})
