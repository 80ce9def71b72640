"""The one explanation of a flag, stored in ``forecasts.explanation`` by :mod:`forecast.run`.

The dashboard and the HTML report both show that stored text (neither may import the
modelling code), so an analyst reads one sentence everywhere. It names the test that fired,
its statistic and the statistic's alarm limit, in words, with numbers in the metric's own units
that can be checked against the chart:

- **point test**: the value against the *alarm band* (the values the point test accepts at the
  alarm threshold; wider than the 95 % band drawn on the chart), the residual in sigmas;
- **CUSUM**: the upward cumulative sum of residuals (beyond half a sigma each) and its limit;
- **rise test**: the fitted level's rise over the test's window and how many noise standard
  deviations that is;
- **change test**: the mean size of the last residuals against the usual size, and on which
  side of the forecast they lie (a change test on residuals below the forecast is a fall);
- **level shift**: consecutive windows beyond the 3-sigma band and the level before and after;
- **forecast crossing**: the level the forecast path crosses within the horizon;
- **pattern test**: how new the sequences of recent values are to this series (the mean
  novelty of the last windows, the share of each value's encoding that did not usually follow
  the value before it: 0 = seen many times, 1 = never seen) against its usual level and the
  limit (:mod:`forecast.patterns`).

The class's words against the calendar (:func:`class_text`, :func:`resolved_text`) come first;
a window as far out at a routine time of day raises no flag and says why (:func:`describe_routine`).

Every number is clamped to the metric's domain (0-10 scores, [0, 1] shares, counts >= 0): the
detector's model scale can put a band end beyond it, the metric cannot go there.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from forecast.alarms import FLAG_ANTICIPATORY, FLAG_REACTIVE, FLAG_SPIKE
from forecast.detect import Trigger
from forecast.models import FLAG_DIP
from forecast.routine import DAYS, NEED_DAYS
from polarwatch.events import Event

TEST_NAMES = {"point": "point test", "cusum": "CUSUM", "rise": "rise test",
              "change": "change test", "shift": "level shift", "crossing": "forecast crossing",
              "pattern": "pattern test"}


def _num(v: float, bounds: tuple[float, float]) -> str:
    """``v`` clamped to ``bounds``, 3 significant digits (2 decimals on small scales)."""
    if math.isnan(v):
        return "n/a"
    v = min(max(v, bounds[0]), bounds[1])
    return f"{v:.2f}" if abs(v) < 100 else f"{v:,.0f}"


def describe(trig: Trigger, value: float, metric: str, threshold: float,
             bounds: tuple[float, float] = (-math.inf, math.inf)) -> str:
    """One sentence: which test fired on ``value`` of ``metric``, its statistic and limit."""
    n = lambda v: _num(v, bounds)  # noqa: E731
    up = trig.direction > 0
    side = "above" if up else "below"
    at = f"alarm at score {threshold:g}"
    if trig.test == "point":
        return (f"point test: {metric} {n(value)} is {side} the alarm band "
                f"[{n(trig.alarm_lower)}, {n(trig.alarm_upper)}] around the forecast "
                f"{n(trig.forecast)} (residual {trig.statistic:+.1f} sigma; {at} = "
                f"|residual| >= {trig.limit:.2f} sigma)")
    if trig.test == "shift":
        moved = "rose" if up else "fell"
        return (f"level shift: {trig.window} windows in a row {side} "
                f"the {trig.limit:g}-sigma band (last residual {trig.statistic:+.1f} sigma); "
                f"the level {moved} from about {n(trig.forecast)} to {n(trig.after)}")
    if trig.test == "cusum":
        return (f"CUSUM: {metric} stayed above its forecast (now {n(value)} against "
                f"{n(trig.forecast)}); the cumulative excess S = {trig.statistic:.2f} "
                f"reached the limit {trig.limit:.2f} ({at})")
    if trig.test == "rise":
        return (f"rise test: the level of {metric} rose from about {n(trig.before)} to "
                f"{n(trig.after)} over the last {trig.window} windows, {trig.statistic:.2f} "
                f"noise standard deviations (limit {trig.limit:.2f}, {at})")
    if trig.test == "change":
        return (f"change test: over the last {trig.window} windows {metric} stayed mostly "
                f"{side} its forecast (now {n(value)} against {n(trig.forecast)}); mean "
                f"residual size {trig.statistic:.2f} sigma against the limit "
                f"{trig.limit:.2f} sigma ({at})")
    if trig.test == "pattern":
        return (f"pattern test: over the last {trig.window} windows {metric} moved through "
                f"sequences of values it has rarely or never shown before (now {n(value)}, "
                f"{side} the forecast {n(trig.forecast)}); mean novelty {trig.statistic:.2f} "
                f"(0 = seen often, 1 = never seen) against the usual {trig.usual:.2f} and the "
                f"limit {trig.limit:.2f} ({at})")
    return (f"forecast crossing: the forecast path of {metric} crosses {trig.statistic:g} "
            f"within {trig.window} windows (now {n(value)})")


def describe_routine(trig: Trigger, value: float, metric: str, threshold: float,
                     bounds: tuple[float, float] = (-math.inf, math.inf)) -> str:
    """Why a window past its limit raised no flag: a burst at a routine time of day."""
    return (f"routine, not flagged: {metric} was as far out within an hour of this time of day "
            f"on {NEED_DAYS} of the {DAYS} days before ([forecast] routine); "
            + describe(trig, value, metric, threshold, bounds))


def direction_word(trig: Trigger | None) -> str:
    """'rise' / 'fall' of a trigger ('change' when unknown)."""
    if trig is None:
        return "change"
    return "rise" if trig.direction > 0 else "fall"


def hours(delta: timedelta) -> str:
    h = delta.total_seconds() / 3600
    return f"{h:.0f} h" if h < 48 else f"{h / 24:.1f} days"


def class_text(flag: str, trig: Trigger | None, t: datetime, ahead: Event | None,
               after: Event | None, days: int) -> tuple[str, str]:
    """The flag's class against the calendar (``ahead``: the scheduled event within ``days``
    after ``t``; ``after``: the sudden event it follows), and its words (before the test's
    numbers)."""
    rising = trig is None or trig.direction > 0
    if after is not None and rising:
        what = {FLAG_REACTIVE: "level jump", FLAG_SPIKE: "exceedance"}.get(flag, "rise")
        when = (f"{hours(t - after.start)} after" if after.start <= t else
                f"in the window (from {t:%Y-%m-%d %H:%M}) of")
        return FLAG_REACTIVE, f"reactive: {what} {when} the sudden event {after.name!r}"
    if flag == FLAG_ANTICIPATORY:
        if ahead is not None:
            return FLAG_ANTICIPATORY, (f"anticipatory: a rise {hours(ahead.start - t)} before "
                                       f"the scheduled event {ahead.name!r}")
        return FLAG_SPIKE, (f"spike: an unexplained rise (no scheduled event within "
                            f"{days} days ahead, so not anticipatory)")
    if flag == FLAG_REACTIVE:
        return FLAG_REACTIVE, (f"reactive: abrupt level {'jump' if rising else 'drop'} "
                               f"without a preceding build-up")
    if rising:
        return FLAG_SPIKE, "spike: the value rose beyond what the model expects"
    return FLAG_DIP, "dip: the value fell below what the model expects"


def resolved_text(episode: int, kind: str | None, opened: tuple[datetime, str, bool] | None,
                  t: datetime) -> str:
    """The explanation on an episode's last row: its class as finally known."""
    if opened is None:
        return f"episode {episode} resolved"
    cls = kind
    if cls == FLAG_SPIKE or (cls == FLAG_ANTICIPATORY and not opened[2]):
        # the calendar's class of the alarm stands (a dip stays a dip; a rise with no scheduled
        # event ahead during the episode is not anticipatory)
        cls = opened[1] if opened[1] != FLAG_ANTICIPATORY else FLAG_SPIKE
    return (f"episode {episode} resolved after {hours(t - opened[0])}, raised as {opened[1]}, "
            f"classified {cls}")
