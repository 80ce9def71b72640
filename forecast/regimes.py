"""What the detector does after a confirmed level shift (issue 23, "level shifts").

Two small pieces of state, each one question the detector asks when
:meth:`forecast.holt_winters.RobustHoltWinters.learn_one` accepts a shift:

- :class:`LevelMemory`: *has the series been at this level recently?* A shift to a level visited
  within :data:`KNOWN_LEVEL_SECONDS` (within :data:`KNOWN_LEVEL_TOLERANCE` of the jump) is the
  series switching between levels it already showed, the new normal of an AWS CPU series that
  alternates between idle and busy: it is not an alarm on its own (the point, CUSUM, rise and
  change tests still score it). A shift to a new level is one episode, as before. The level is
  a contextual memory in the spirit of CAD OSE's "has this context been seen?".
- :class:`ScaleReinit`: *was the scale ever learnt?* A warm-up of (nearly) constant values
  leaves the residual scale at its floor (:data:`forecast.holt_winters.SCALE_FLOOR`), and every
  later change is then tens of thousands of sigmas: a string of "level jumps" and, through the
  calibration's quantiles of those z, bands of +-1e304 (seen on real Brexit threads of a
  0-10 score). After the first shift from a floor scale, the scale is re-estimated robustly
  (MAD, like the warm-up's) from the next :data:`REINIT_POINTS` one-step errors, the
  calibration forgets the z it learnt against the floor, and shifts in between are held in the
  open episode instead of each forcing an alarm.

Chosen once, not per series (``benchmarks/nab_real.py``, README "Level shifts"): the memory
(288, 2016 or 8064 five-minute points) and the tolerance 0.1 or 0.25 gave the same figures;
0.5 lost a window on realAWSCloudwatch. The artificial categories have no level-switching
series, so they cannot choose; a week and a quarter of the jump are a priori choices.
"""

from __future__ import annotations

import math

import numpy as np

from forecast.holt_winters import MAD_TO_SIGMA, SCALE_FLOOR

# A level seen within the last week is "known" (a weekly cycle of busy days included).
KNOWN_LEVEL_SECONDS = 7 * 86400.0
# ... when the new level is within a quarter of the jump from it (the jump itself is >= 3 sigma
# times 3 points, so a quarter of it is still well outside the noise).
KNOWN_LEVEL_TOLERANCE = 0.25
# Re-estimate a floor scale from 30 errors: the warm-up's own rule of thumb (detect.py).
REINIT_POINTS = 30
# "At its floor": within a factor 10 of SCALE_FLOOR (the clipped-EWMA can only creep up from it).
FLOOR_FACTOR = 10.0


class LevelMemory:
    """Levels (model scale) the series sat at, with the row they were last seen at."""

    def __init__(self, interval_seconds: float) -> None:
        self.horizon = max(1, math.ceil(KNOWN_LEVEL_SECONDS / interval_seconds))
        self.levels: list[tuple[float, int]] = []

    def shift(self, before: float, after: float, t: int) -> bool:
        """Record a shift from ``before`` to ``after`` at row ``t``; was ``after`` known?"""
        tol = KNOWN_LEVEL_TOLERANCE * abs(after - before)
        recent = [(lv, at) for lv, at in self.levels if t - at <= self.horizon]
        known = any(abs(after - lv) <= tol for lv, _ in recent)
        self.levels = [(lv, at) for lv, at in recent
                       if abs(lv - before) > tol and abs(lv - after) > tol]
        self.levels += [(before, t), (after, t)]
        return known


class ScaleReinit:
    """Collects the one-step errors after a shift from a floor scale; :meth:`learn_one` returns
    the re-estimated variance once :data:`REINIT_POINTS` are in (None before)."""

    def __init__(self) -> None:
        self.errors: list[float] | None = None

    @property
    def active(self) -> bool:
        return self.errors is not None

    @staticmethod
    def at_floor(sigma: float, level: float) -> bool:
        return sigma <= FLOOR_FACTOR * SCALE_FLOOR * max(1.0, abs(level))

    def start(self) -> None:
        self.errors = []

    def learn_one(self, error: float, level: float) -> float | None:
        if self.errors is None:
            return None
        self.errors.append(error)
        if len(self.errors) < REINIT_POINTS:
            return None
        e = np.array(self.errors)
        self.errors = None
        mad = float(np.median(np.abs(e - np.median(e))))
        return max(MAD_TO_SIGMA * mad, SCALE_FLOOR * max(1.0, abs(level))) ** 2
