"""The seasonal cycle of a regular series in points: one rule for every model of the stage.

The cycle is the day or, when the day is not a whole number of points (daily or coarser data,
or an interval such as 7 hours that does not divide it), the week: the shortest of the two
that is a whole number of points from :data:`MIN_SEASON_POINTS` to ``max_points``. The week is
a multiple of the day, so a weekly season also holds the daily cycle of data sampled at an
interval that divides the week but not the day. Whether the cycle is really there is each
model's own test (the detector's seasonal autocorrelation, the forecast band's rolling-origin
selection); ``max_points`` is each model's capacity (a state of ``m + 2`` values for the
state-space ETS, :data:`forecast.models.MAX_SEASON`).
"""

from __future__ import annotations

DAY_SECONDS, WEEK_SECONDS = 86400.0, 7 * 86400.0
# A season needs at least two points (one cannot tell a one-point season from the level).
MIN_SEASON_POINTS = 2
# The longest cycle any model here takes: one day of 1-minute data (the detector then warms up
# on 2,880 points, two cycles).
MAX_SEASON_POINTS = 1440


def season_points(interval_seconds: float, max_points: int = MAX_SEASON_POINTS) -> int | None:
    """Points per day, else per week, when that is a whole number in
    ``[MIN_SEASON_POINTS, max_points]``; None otherwise (no seasonal model)."""
    for cycle in (DAY_SECONDS, WEEK_SECONDS):
        points = cycle / interval_seconds if interval_seconds > 0 else 0.0
        whole = round(points)
        if abs(points - whole) < 1e-9 and MIN_SEASON_POINTS <= whole <= max_points:
            return int(whole)
    return None
