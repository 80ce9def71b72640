"""Routine exceedances: a metric that jumps at the same time every day is not news.

A nightly job that bursts a server's CPU at 02:00, or a daily programme that brings a burst of
replies at 20:00, exceeds the detector's limits every day. The Holt-Winters season does not learn
it: its robust update clips a one-row burst out of the season as an outlier. NAB's real series
have such series (``ec2_cpu_utilization_c6585a``: a burst 20x the usual level every ~24 h,
12 alarms in 14 days, no anomaly labelled); HTM's sequence memory learns the recurrence.

:class:`RoutineMemory` remembers when a point scored at least :data:`MEMORY_SCORE` (any test).
Exceedances less than :data:`TOLERANCE_SECONDS` apart form a stretch. A stretch is **routine**
when, at its first row, exceedances were also seen within :data:`TOLERANCE_SECONDS` of the same
time of day on at least :data:`NEED_DAYS` of the previous :data:`DAYS` days; the detector then
reports the stretch's scores at most :data:`ROUTINE_SCORE` (below the alarm policy's rearm
level, so it neither opens nor prolongs an episode). The first two days of a new routine still
alarm, and a routine that stops for two days is news again. A stretch is judged once, at its
start, against earlier stretches, so an excursion that lasts for days is not its own routine.
Only series with at least :data:`MIN_ROWS_PER_DAY` rows per day (hourly or finer) have a time
of day. The caller passes each row's time (:class:`forecast.detect.StreamingDetector`: the row's
timestamp when it has one, for irregular series, else the row number times the interval).

The memory's constants were chosen on NAB's artificial categories with the threshold and
refractory, and the memory was kept by leave-one-category-out over the real ones
(benchmarks/README.md, "Routine exceedances").
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

DAY_SECONDS = 86400.0
MIN_ROWS_PER_DAY = 24
DAYS = 3  # the days looked back on
NEED_DAYS = 2  # ... of which this many had an exceedance at the same time of day
TOLERANCE_SECONDS = 3600.0  # "the same time of day": within an hour
MEMORY_SCORE = 0.9999  # a point from this score on is an exceedance
ROUTINE_SCORE = 0.98  # a routine exceedance's score is capped here (below alarms.DEFAULT_REARM)


@dataclass
class RoutineMemory:
    """Call :meth:`step` once per row, in time order, with the row's score (NaN: unscored) and
    its time in seconds."""

    interval_seconds: float
    on: bool = True  # False: never routine (``[forecast] routine = false``)
    _hits: list[float] = field(default_factory=list, init=False)  # recent exceedance times
    _routine: bool = field(default=False, init=False)  # the current stretch's verdict
    stretches: int = field(default=0, init=False)  # stretches judged routine so far

    def __post_init__(self) -> None:
        per_day = DAY_SECONDS / self.interval_seconds if self.interval_seconds > 0 else 0.0
        self.active = self.on and per_day >= MIN_ROWS_PER_DAY  # coarser: no time of day

    def step(self, score: float, now: float) -> bool:
        """Remember this row (at ``now`` seconds); True when it is an exceedance in a routine
        stretch."""
        if not self.active or math.isnan(score) or score < MEMORY_SCORE:
            return False
        hits, oldest = self._hits, now - DAYS * DAY_SECONDS - TOLERANCE_SECONDS
        if hits and hits[0] < oldest:  # forget what is older than the days looked back on
            del hits[:bisect_left(hits, oldest)]
        if not hits or now - hits[-1] > TOLERANCE_SECONDS:  # a new stretch: judge it
            seen = 0
            for k in range(1, DAYS + 1):
                i = bisect_left(hits, now - k * DAY_SECONDS - TOLERANCE_SECONDS)
                seen += i < len(hits) and hits[i] <= now - k * DAY_SECONDS + TOLERANCE_SECONDS
            self._routine = seen >= NEED_DAYS
            self.stretches += self._routine
        hits.append(now)
        return self._routine
