"""Polarization indices beyond the paper's interaction score (pure functions, no I/O).

- Esteban–Ray (1994) polarization of stance shares, with *pro* at +1 and *anti* at −1
  ("unclear" posts are left out and the two shares renormalized). α = 1.6 is the upper end of
  the admissible range 0 < α ≤ 1.6 in Esteban & Ray (Econometrica 62(4), 1994), the value that
  weighs group identification most; the index is scaled so a 50/50 split scores 1.
- Sarle's bimodality coefficient of conversation scores, BC = (g² + 1) / (κ + 3(n−1)²/((n−2)(n−3)))
  with g the sample skewness and κ the sample excess kurtosis (SAS/STAT manual, PROC CLUSTER);
  BC > 5/9 ≈ 0.555 (the value for a uniform distribution) suggests two camps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

ESTEBAN_RAY_ALPHA = 1.6


def esteban_ray(pro_share: float, anti_share: float, alpha: float = ESTEBAN_RAY_ALPHA) -> float | None:
    """ER polarization of two groups at +1 / −1, normalized to [0, 1] (1 = an even split)."""
    total = pro_share + anti_share
    if not total or math.isnan(total):
        return None
    p, a = pro_share / total, anti_share / total
    raw = (p ** (1 + alpha) * a + a ** (1 + alpha) * p) * 2  # Σ_i Σ_j π_i^(1+α) π_j |y_i − y_j|
    peak = 2 * 0.5 ** (2 + alpha) * 2
    return float(raw / peak)


def bimodality_coefficient(values: Sequence[float]) -> float | None:
    """Sarle's bimodality coefficient (sample-size corrected); None below 4 values or when the
    values do not vary."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n < 4:
        return None
    dev = x - x.mean()
    m2 = float(np.mean(dev ** 2))
    if m2 == 0:
        return None
    m3, m4 = float(np.mean(dev ** 3)), float(np.mean(dev ** 4))
    g1 = m3 / m2 ** 1.5
    skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)  # adjusted Fisher–Pearson skewness
    g2 = m4 / m2 ** 2 - 3
    kurt = ((n + 1) * g2 + 6) * (n - 1) / ((n - 2) * (n - 3))  # sample excess kurtosis
    return float((skew ** 2 + 1) / (kurt + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))
