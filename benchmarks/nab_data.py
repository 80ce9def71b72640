"""Load the Numenta Anomaly Benchmark series and windows shipped in ``../shared/data/nab``.

Each series is a ``timestamp,value`` CSV; ``combined_windows.json`` gives the labeled windows as
``[start, end]`` timestamps per ``category/file.csv`` and ``profiles.json`` the three
application profiles (cost matrices). Windows are mapped to row indices exactly as NAB's sweeper
does (the window's first and last timestamps are rows of the file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass
class NabSeries:
    key: str  # "category/file.csv"
    category: str
    ts: pd.DatetimeIndex
    y: np.ndarray
    windows: list[tuple[int, int]]  # inclusive row indices

    @property
    def interval_seconds(self) -> float:
        """The most common step (NAB files have gaps; rows are scored as they are)."""
        steps = np.diff(self.ts.asi8) / 1e9
        return float(pd.Series(steps).mode().iloc[0])


def load_profiles(data_dir: Path = DEFAULT_DIR) -> dict[str, dict[str, float]]:
    raw = json.loads((data_dir / "profiles.json").read_text())
    return {name: {k: float(v) for k, v in raw[name]["CostMatrix"].items()} for name in PROFILES}


def load_corpus(data_dir: Path = DEFAULT_DIR) -> list[NabSeries]:
    """Every series listed in ``combined_windows.json`` whose CSV is present, sorted by key."""
    if not (data_dir / "combined_windows.json").exists():
        raise SystemExit(f"{data_dir}/combined_windows.json not found: pass --data with the NAB "
                         f"folder (category sub-folders, combined_windows.json, profiles.json)")
    windows = json.loads((data_dir / "combined_windows.json").read_text())
    out: list[NabSeries] = []
    for key in sorted(windows):
        path = data_dir / key
        if not path.exists():
            continue  # held-out category
        frame = pd.read_csv(path)
        ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
        index = {t: i for i, t in enumerate(ts)}
        rows = [(index[pd.Timestamp(a)], index[pd.Timestamp(b)]) for a, b in windows[key]]
        out.append(NabSeries(key, key.split("/")[0], ts, frame["value"].to_numpy(float), rows))
    return out
