"""NAB's series that `polarwatch detect` refuses as off-grid, run again with ``--snap``.

    .venv/bin/python benchmarks/nab_offgrid.py [--data ../shared/data/nab] [--jobs 2]
        [--option "--snap" | --option "--resample 10min"]

1. Every CSV of ``--data`` is read as ``detect`` reads it (:func:`forecast.detect_csv.
   read_series_csv`); the ones refused for "irregular intervals" are listed.
2. Each refused file goes through the real command, ``python -m polarwatch.cli detect FILE
   <option> -o OUT`` (the shipped ``polarwatch.toml``, default threshold and refractory); the
   rows moved and merged and the missing points filled are read from its stderr.
3. Its alarm rows (``flag`` != none, one per episode) are checked against NAB's labelled
   windows (``combined_windows.json``, times mapped onto the grid: the grid points inside
   ``[start, end]``): a window is hit when an alarm row lies inside it. The same rows are scored
   with NAB's rules (:mod:`benchmarks.nab`, standard profile) on the grid's points.
4. For comparison, the same detector configuration over the file's rows as they are, one row
   after the other whatever their time (what ``benchmarks/nab_real.py`` scores), with NAB's
   windows as row indices.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import nab  # noqa: E402
from benchmarks.nab_data import DEFAULT_DIR  # noqa: E402
from forecast.csv_grid import InputError  # noqa: E402
from forecast.detect import DetectorConfig  # noqa: E402
from forecast.detect_csv import detect_values, read_series_csv  # noqa: E402
from polarwatch.config import load_config  # noqa: E402


def _count(pattern: str, text: str) -> int:
    m = re.search(pattern, text)
    return int(m.group(1).replace(",", "")) if m else 0


def refused(data: Path) -> list[tuple[str, str]]:
    """(key, first words of the error) of every CSV ``detect`` refuses as off-grid."""
    out = []
    for path in sorted(data.glob("*/*.csv")):
        try:
            read_series_csv(path, note=lambda m: None)
        except InputError as exc:
            if "irregular intervals" in str(exc):
                lines = re.search(r"but (\d+) timestamp\(s\) are off", str(exc))
                out.append((f"{path.parent.name}/{path.name}", lines.group(1) if lines else "?"))
    return out


def as_they_are(path: Path, windows: list[list[str]]) -> tuple[nab.NabResult, int]:
    """The CLI's detector configuration over the rows in file order (each row the next point)."""
    cfg = load_config(REPO / "polarwatch.toml").forecast
    config = DetectorConfig(alpha=cfg.alpha, horizon=cfg.horizon, patterns=cfg.patterns,
                            routine=cfg.routine, weekly=cfg.weekly)
    frame = pd.read_csv(path)
    ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
    step = float(pd.Series(np.diff(ts.asi8) / 1e9).mode().iloc[0])
    out = detect_values(frame["value"].to_numpy(float), step, config)
    alarms = np.array([f != "none" for f in out["flag"]])
    index = {t: i for i, t in enumerate(ts)}
    rows = [(index[pd.Timestamp(a)], index[pd.Timestamp(b)]) for a, b in windows]
    hits = sum(bool(alarms[a:b + 1].any()) for a, b in rows)
    return nab.score(alarms.tolist(), rows), hits


def run_one(job: tuple[str, Path, list[list[str]], list[str]]) -> dict[str, Any]:
    key, path, windows, option = job
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", "detect", str(path),
                               *option, "-o", str(out)], cwd=REPO, capture_output=True,
                              text=True, timeout=1800)
        wall = time.monotonic() - started
        if proc.returncode != 0:
            return {"key": key, "error": proc.stderr.strip().splitlines()[-1]}
        result = pd.read_csv(out, keep_default_na=False)
    err = proc.stderr
    grid = pd.DatetimeIndex(pd.to_datetime(result["timestamp"])).tz_localize(None)
    alarms = (result["flag"] != "none").to_numpy()
    rows = []
    for a, b in windows:
        left = int(grid.searchsorted(pd.Timestamp(a), "left"))
        right = int(grid.searchsorted(pd.Timestamp(b), "right")) - 1
        rows.append((left, right))
    base, base_hits = as_they_are(path, windows)
    return {"key": key, "wall": wall, "rows": _count(r"of ([\d,]+) row\(s\) moved", err),
            "moved": _count(r"([\d,]+) of [\d,]+ row\(s\) moved", err),
            "merged": _count(r"([\d,]+) row\(s\) merged", err),
            "points": _count(r"merged into ([\d,]+) grid point", err),
            "duplicates": _count(r"(\d+) duplicate timestamp", err),
            "filled": _count(r"(\d+) missing timestamp\(s\)", err), "grid": len(result),
            "windows": len(rows), "hits": sum(bool(alarms[a:b + 1].any()) for a, b in rows),
            "alarms": int(alarms.sum()), "snap": nab.score(alarms.tolist(), rows),
            "base": base, "base_hits": base_hits}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--option", default="--snap", help="the grid option given to detect")
    args = ap.parse_args(argv)
    windows = json.loads((args.data / "combined_windows.json").read_text())
    listed = refused(args.data)
    print(f"{len(listed)} NAB CSV(s) refused as off-grid today:")
    for key, n in listed:
        print(f"  {key}: {n} off-grid row(s)")
    jobs = [(key, args.data / key, windows.get(key, []), shlex.split(args.option))
            for key, _ in listed]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run_one, jobs))
    print(f"\n`polarwatch detect FILE {args.option}` (rows as they are: the same detector on "
          f"the rows one after the other)")
    print("| file | distinct times | moved | merged into points | duplicates dropped | missing filled "
          "| grid points | alarms | windows hit | NAB std (grid) | rows as they are: hit, "
          "NAB std | wall s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    snap, base = [], []
    for r in results:
        if "error" in r:
            print(f"| {r['key']} | refused: {r['error']} |")
            continue
        snap.append(r["snap"])
        base.append(r["base"])
        norm = (f"{r['snap'].normalized():.1f}" if r["snap"].windows else "n/a")
        bnorm = (f"{r['base'].normalized():.1f}" if r["base"].windows else "n/a")
        print(f"| {r['key']} | {r['rows']:,} | {r['moved']:,} | {r['merged']:,} into "
              f"{r['points']:,} | {r['duplicates']} | {r['filled']:,} | {r['grid']:,} | "
              f"{r['alarms']} | {r['hits']} of {r['windows']} | {norm} | {r['base_hits']} of "
              f"{r['windows']}, {bnorm} | {r['wall']:.1f} |")
    if snap:
        print(f"\nall: windows hit {sum(r['hits'] for r in results if 'hits' in r)} of "
              f"{sum(r['windows'] for r in results if 'windows' in r)} "
              f"(rows as they are: {sum(r['base_hits'] for r in results if 'base_hits' in r)}); "
              f"NAB standard {nab.normalize(snap):.1f} on the grid, {nab.normalize(base):.1f} "
              f"rows as they are; alarms outside windows {sum(s.fp for s in snap)} / "
              f"{sum(b.fp for b in base)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
