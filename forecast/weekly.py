"""Time-of-week bias: what the daily season cannot hold, learned from earlier weeks.

The detector's season is the day. A city's taxis, a company's tweets or a weekday batch job run
a different day on Saturdays and Mondays; the daily season then errs the same way at the same
hour every week, and every week alarms on it. :class:`WeeklyBias` keeps, for each hour of the
week, the mean standardised residual (in sigmas, clipped) of each of the last :data:`WEEKS`
weeks; from :data:`MIN_WEEKS` weeks on, the median of those is the residual expected at that
hour this week, and the detector subtracts it before scoring and adds it to its forecast.
An hour's mean needs at least :data:`MIN_ROWS_PER_HOUR` rows (30-minute data or finer): a
week's single hourly row is noise, and on NAB's hourly series the bias cost a window
(benchmarks/README.md, "Time-of-week bias").

Times are the rows' timestamps when the caller has them, else the row number times the
interval; only the hour of the week matters, not which weekday the series starts on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median

HOUR_SECONDS, WEEK_SECONDS = 3600.0, 7 * 86400.0
HOURS_PER_WEEK = 168
WEEKS = 3  # weeks remembered per hour of the week
MIN_WEEKS = 2  # ... before a bias is used (the median of two is their mean)
MIN_ROWS_PER_HOUR = 2


@dataclass
class WeeklyBias:
    """Call :meth:`step` once per scored row, in time order."""

    interval_seconds: float
    on: bool = True  # False: no bias (``[forecast] weekly = false``)
    _now: dict[int, list[float]] = field(default_factory=dict, init=False)  # hour -> week, sum, n
    _past: dict[int, list[float]] = field(default_factory=dict, init=False)  # hour -> week means

    def __post_init__(self) -> None:
        self.active = self.on and 0 < self.interval_seconds * MIN_ROWS_PER_HOUR <= HOUR_SECONDS

    def step(self, z: float, now: float) -> float:
        """The bias at time ``now`` (seconds; 0 until known), then learn ``z`` (NaN: missing)."""
        if not self.active:
            return 0.0
        week = math.floor(now / WEEK_SECONDS)
        hour = math.floor(now / HOUR_SECONDS) % HOURS_PER_WEEK
        past = self._past.setdefault(hour, [])
        cur = self._now.get(hour)
        if cur is not None and cur[0] != week:  # this hour's previous week is complete
            past.append(cur[1] / cur[2])
            del past[:-WEEKS]
            cur = None
        bias = median(past) if len(past) >= MIN_WEEKS else 0.0
        if not math.isnan(z):
            if cur is None:
                cur = self._now[hour] = [week, 0.0, 0]
            cur[1] += z
            cur[2] += 1
        elif cur is None:
            self._now.pop(hour, None)
        return bias
