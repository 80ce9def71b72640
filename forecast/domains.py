"""Metric domains and the transforms that keep forecast bands inside them.

A band computed on the metric's own scale can leave its range (a polarization band from -4 to
10 on the 0-10 scale, a negative volume). Instead the model runs on an unbounded scale and the
band's end points are mapped back by the inverse transform, which is monotone, so a Gaussian
interval on the model scale is an interval of the same probability inside the domain:

- ``score`` (0-10 interaction scores): ``logit(y / 10)``; inverse ``10 * sigmoid(u)``;
- ``share`` ([0, 1] shares): ``logit(y)``; inverse ``sigmoid(u)``;
- ``count`` (>= 0 volumes): ``log(y)``; inverse ``exp(u)``;
- ``real``: identity.

Values on the edge of a domain (a share of exactly 0, a window of 0 posts, a score of 10) have
no finite image, so the forward map is ``f(y) = g(min(max(y, lo + e), hi - e))`` with ``e`` =
:data:`EDGE` of the range (:data:`COUNT_FLOOR` for counts): every y within ``e`` of an edge
maps to the same model value. Quantiles go back through the *generalised inverse* of that
non-decreasing map, ``inf {y : f(y) >= u}`` (``sup`` for the upper end): ``g^-1(u)`` inside,
the edge itself where the model puts its quantile at or beyond the edge's image. That is the
exact quantile of the model's distribution of y, so an observed 0 can lie inside a count band
(a 0-post window is not an anomaly of a quiet topic by construction). The back-transformed
one-step forecast is the median of the predictive distribution (the mean of a logit-normal has
no closed form).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Scores and shares within 0.5 % of an end of the range are treated as 0.5 % inside it
# (0.05 on the 0-10 scale): the logit of 0.005 is -5.3, a finite, not extreme, value.
EDGE = 0.005
# A window of 0 posts counts as half a post on the log scale (the usual "started log").
COUNT_FLOOR = 0.5

DOMAINS = ("score", "share", "count", "real")
METRIC_DOMAIN = {
    "mean_score": "score", "extreme_share": "share", "hostility_share": "share",
    "pro_share": "share", "anti_share": "share", "volume": "count", "n_interactions": "count",
    "n_conversations": "count",
}


def domain_of(metric: str) -> str:
    """The domain of a ``topic_windows`` metric (``real`` for anything unknown)."""
    return METRIC_DOMAIN.get(metric, "real")


@dataclass(frozen=True)
class Domain:
    name: str = "real"

    def __post_init__(self) -> None:
        if self.name not in DOMAINS:
            raise ValueError(f"unknown domain {self.name!r}; valid domains are {DOMAINS}")

    @property
    def bounds(self) -> tuple[float, float]:
        return {"score": (0.0, 10.0), "share": (0.0, 1.0), "count": (0.0, np.inf),
                "real": (-np.inf, np.inf)}[self.name]

    def forward(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=float)
        if self.name == "real":
            return y.copy()
        if self.name == "count":
            return np.log(np.maximum(y, COUNT_FLOOR))
        p = y / self.bounds[1]
        p = np.clip(p, EDGE, 1.0 - EDGE)  # data on the edge moved inside, NaN kept
        return np.log(p / (1.0 - p))

    def inverse(self, u: np.ndarray) -> np.ndarray:
        """Generalised inverse of :meth:`forward` (quantiles of the model scale -> of y)."""
        u = np.asarray(u, dtype=float)
        if self.name == "real":
            return u.copy()
        if self.name == "count":
            y = np.exp(np.minimum(u, 700.0))
            return np.where(u <= np.log(COUNT_FLOOR), 0.0, y)
        top = self.bounds[1]
        y = top / (1.0 + np.exp(-np.clip(u, -700.0, 700.0)))
        edge = np.log(EDGE / (1.0 - EDGE))  # the image of the lower edge (upper: -edge)
        return np.where(u <= edge, 0.0, np.where(u >= -edge, top, y))

    def contains(self, values: np.ndarray) -> bool:
        """Are all finite ``values`` inside the closed domain?"""
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        lo, hi = self.bounds
        return bool(((v >= lo) & (v <= hi)).all())

