"""Alarm policy: turns per-point scores and candidate kinds into flags.

The detector (:mod:`forecast.detect`) produces, per point, an ``anomaly_score`` in 0..1 and a
candidate kind (``spike``, ``reactive``, ``anticipatory`` or none). This object alone decides
whether that becomes a raised flag, like Merlion's ``AggregateAlarms`` post-processor: a
threshold, a minimum number of points before any alarm, a suppression window after an alarm and
a re-arm level the score must fall below before the next incident. Notification (webhooks) is
again separate (:mod:`forecast.webhooks`).

Within the suppression window of a ``spike`` alarm one *upgrade* is allowed: the same incident
re-classified as ``reactive`` (the jump persisted) or ``anticipatory`` is raised once, because a
live receiver should learn the classification as soon as it is known.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

FLAG_NONE, FLAG_SPIKE, FLAG_REACTIVE, FLAG_ANTICIPATORY = (
    "none", "spike", "reactive", "anticipatory")
FLAGS = (FLAG_NONE, FLAG_SPIKE, FLAG_REACTIVE, FLAG_ANTICIPATORY)
UPGRADES = (FLAG_REACTIVE, FLAG_ANTICIPATORY)

# Score = 1 - (tail probability of the point under the model), so a threshold of 0.9999 is a
# false-alarm probability of 1e-4 per point for a well-calibrated model (|z| >= 3.89): about one
# per 10,000 points, i.e. one per ~35 days of 5-minute data or ~14 months of hourly data. Chosen
# from that acceptable rate, not tuned on any benchmark.
DEFAULT_THRESHOLD = 0.9999
# Re-arm once the score falls below 0.99 (|z| < 2.58, the usual 99 % band): hysteresis so one
# long excursion hovering around the threshold raises one alarm, not many.
DEFAULT_REARM = 0.99
# Merlion's AggregateAlarms default alm_suppress_minutes=120: no second alarm within 2 hours.
DEFAULT_SUPPRESS_SECONDS = 2 * 3600.0
# ...but at least this many points, so that coarse series (daily data) still suppress the
# immediately following points of one incident (the shift confirmation of the detector needs 3).
MIN_SUPPRESS_POINTS = 3


def suppress_points(interval_seconds: float,
                    suppress_seconds: float = DEFAULT_SUPPRESS_SECONDS) -> int:
    """The suppression window in points for a series sampled every ``interval_seconds``."""
    if interval_seconds <= 0:
        raise ValueError(f"interval must be positive, got {interval_seconds} s")
    return max(MIN_SUPPRESS_POINTS, math.ceil(suppress_seconds / interval_seconds))


@dataclass
class AlarmPolicy:
    """Stateful flag policy; call :meth:`decide` once per point, in time order."""

    threshold: float = DEFAULT_THRESHOLD
    min_points: int = 0  # observed points before any alarm may fire
    suppress: int = MIN_SUPPRESS_POINTS  # points after an alarm during which none fires
    rearm: float = DEFAULT_REARM
    _seen: int = field(default=0, init=False)
    _last_at: int | None = field(default=None, init=False)
    _last_kind: str = field(default=FLAG_NONE, init=False)
    _upgraded: bool = field(default=False, init=False)
    _armed: bool = field(default=True, init=False)
    _step: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.rearm <= self.threshold:
            raise ValueError(f"rearm ({self.rearm}) must be between 0 and the threshold "
                             f"({self.threshold})")
        if self.suppress < 0 or self.min_points < 0:
            raise ValueError("suppress and min_points must be >= 0")

    def decide(self, score: float, kind: str | None) -> str:
        """The flag for the next point: ``kind`` if the policy lets it through, else ``none``.

        ``score`` NaN marks a missing point (never flagged, still advances time). ``kind`` is
        the detector's candidate; a candidate with a score below the threshold is ignored.
        """
        self._step += 1
        if math.isnan(score):
            return FLAG_NONE
        self._seen += 1
        if not self._armed and score < self.rearm:
            self._armed = True
        if kind is None or kind == FLAG_NONE or score < self.threshold:
            return FLAG_NONE
        if kind not in FLAGS:
            raise ValueError(f"unknown alarm kind {kind!r}; valid kinds are {FLAGS}")
        if self._seen <= self.min_points:
            return FLAG_NONE
        in_window = self._last_at is not None and self._step - self._last_at <= self.suppress
        if in_window:
            if (self._last_kind == FLAG_SPIKE and kind in UPGRADES and not self._upgraded):
                self._upgraded = True
                self._last_kind = kind
                self._armed = False
                return kind
            return FLAG_NONE
        if not self._armed:
            return FLAG_NONE
        self._last_at, self._last_kind, self._upgraded = self._step, kind, False
        self._armed = False
        return kind
