"""Coverage and domain of the forecast band (forecast.models.fit_predict) on real series.

    .venv/bin/python benchmarks/nab_bands.py [--data ../shared/data] [--nab-points 2000]

Two sets of real series, both non-negative or bounded:
- NAB's real categories (``nab/real*``; CPU %, request counts, temperatures, speeds; domain
  ``count`` (>= 0) for every one of them since none goes below 0), the last ``--nab-points``
  rows of each (the state-space fits grow with the length);
- DEBAGREEMENT's Reddit reply pairs (``agreement/debagreement_dev.csv``, 2015-2021) as daily
  windows per subreddit, as `polarwatch` would store them: ``volume`` (pairs per day, domain
  ``count``) and the share of disagreeing replies (domain ``share``). Days without a pair have
  no window (NaN), like topic_windows.

For each series: the band of the calibrated, domain-respecting model, and the same model on
the raw scale without calibration (what the forecast did before issue 14). Reported: the share of
observed points inside the 95 % band (all points after burn-in; in-sample: the calibration
uses these one-step errors, and the state-space parameters are fitted on the whole series) and
how many band ends leave the domain. The detector's own band, calibrated causally on past
errors only, is reported by benchmarks/nab_real.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.nab_data import load_corpus  # noqa: E402
from forecast.calibration import CONFORMAL_POINTS  # noqa: E402
from forecast.domains import Domain  # noqa: E402
from forecast.models import SeriesSkipped, fit_predict  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def reddit_series(path: Path) -> list[tuple[str, str, np.ndarray]]:
    d = pd.read_csv(path, usecols=["subreddit", "datetime", "label"])
    d["day"] = pd.to_datetime(d["datetime"], format="%d/%m/%Y %H:%M").dt.floor("D")
    out = []
    for sub, g in d.groupby("subreddit"):
        days = pd.date_range(g["day"].min(), g["day"].max(), freq="D")
        per = g.groupby("day")["label"].agg(volume="size", disagree=lambda s: (s == 0).mean())
        per = per.reindex(days)
        out.append((f"{sub} volume", "count", per["volume"].to_numpy(float)))
        out.append((f"{sub} disagree share", "share", per["disagree"].to_numpy(float)))
    return out


def evaluate(name: str, domain: str, y: np.ndarray, season: int | None) -> dict[str, float]:
    row: dict[str, float] = {}
    for label, dom, points in (("new", domain, None), ("old", "real", 0)):
        fit = fit_predict(y, horizon=0, season=season, domain=dom, conformal_points=points)
        lo, up = fit.lower, fit.upper
        ok = np.isfinite(lo) & np.isfinite(y)
        inside = (y >= lo) & (y <= up)
        bounds = Domain(domain).bounds
        n_out = int(((lo[ok] < bounds[0]) | (up[ok] > bounds[1])).sum())
        row[f"{label}_cover"] = float(inside[ok].mean())
        row[f"{label}_outside"] = n_out
        row["points"] = float(ok.sum())
        if label != "old":
            row[f"{label}_factor"] = fit.calibration.factor or np.nan
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--nab-points", type=int, default=2000)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    groups: dict[str, list[dict[str, float]]] = {}
    for s in load_corpus(args.data / "nab"):
        if not s.category.startswith("real"):
            continue
        y = s.y[-args.nab_points:]
        try:
            groups.setdefault("NAB real (count)", []).append(evaluate(s.key, "count", y, None))
        except SeriesSkipped as exc:
            print(f"skip {s.key}: {exc}")
    for name, domain, y in reddit_series(args.data / "agreement" / "debagreement_dev.csv"):
        try:
            key = f"Reddit daily {'volume' if domain == 'count' else 'disagree share'}"
            groups.setdefault(key, []).append(evaluate(name, domain, y, 7))
        except SeriesSkipped as exc:
            print(f"skip {name}: {exc}")
    print(f"| series | n | points | 95 % band coverage: domain transform + conformal (last "
          f"{CONFORMAL_POINTS:,} errors) | old raw Gaussian band | old band ends outside the "
          f"domain | new band ends outside | median conformal factor |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, rows in groups.items():
        pts = np.array([r["points"] for r in rows])

        def w(col: str, rows: list[dict[str, float]] = rows, pts: np.ndarray = pts) -> float:
            v = np.array([r[col] for r in rows])
            ok = np.isfinite(v)
            return float((v[ok] * pts[ok]).sum() / pts[ok].sum())

        print(f"| {key} | {len(rows)} | {int(pts.sum()):,} | {w('new_cover'):.1%} | "
              f"{w('old_cover'):.1%} | {sum(r['old_outside'] for r in rows):,.0f} | "
              f"{sum(r['new_outside'] for r in rows):,.0f} | "
              f"{np.nanmedian([r['new_factor'] for r in rows]):.2f} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
