"""Alarm policy: per-point scores and candidate kinds -> episodes with exactly one alarm each.

The detector (:mod:`forecast.detect`) produces, per point, an ``anomaly_score`` in 0..1 and a
candidate kind (``spike``, ``reactive``, ``anticipatory`` or none). This object alone decides
what an analyst (or a pager) sees, like Merlion's ``AggregateAlarms`` post-processor, but
organised in **episodes**:

- an episode **opens** on the first point whose score reaches ``threshold`` (after
  ``min_points`` observed points); that point is the episode's only **alarm** (its flag is the
  candidate kind), every later point of the episode carries the episode id and flag ``none``;
- it **resolves** on the first point at which both hold: at least ``refractory`` points have
  passed since it opened, and the last ``quiet`` observed points all scored below ``rearm``
  (hysteresis: a long excursion hovering around the threshold stays one episode);
- missing points (NaN score) and *thin* points (a window below the minimum volume) neither open
  nor resolve an episode and do not count towards ``quiet``; they belong to the open episode;
- a **second, stronger wave** is not swallowed: once an open episode has gone quiet (its last
  ``quiet`` points below ``rearm``), a point that reaches the threshold with a ``severity`` (how
  far past its test's limit, 1 = at the limit) above ``escalate`` times the highest the episode
  reached ends it early and opens a new episode with its own alarm. The step says which episode
  it ended (``closes``): that episode's last point is the one before, which consumers that keep
  rows mark as its resolution (:func:`close_previous`).

The episode's **class** starts as the alarm's kind; a ``spike`` episode is re-classified
``reactive`` or ``anticipatory`` when the detector confirms a level jump or a build-up while it
is open (no second alarm: the class is a property of the episode). Notification (webhooks) is
separate (:mod:`forecast.alerts.delivery`): one firing message on open, one resolved on resolve.

What an alarm row of ``forecasts`` shows (:data:`DETECTOR_MODEL`, :func:`band_text`): the
detector's expected value and the band of its point test at the alarm threshold, the band that
decided a point-test flag, and which test decided; the report and the alerts say it alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

FLAG_NONE, FLAG_SPIKE, FLAG_REACTIVE, FLAG_ANTICIPATORY = (
    "none", "spike", "reactive", "anticipatory")
FLAGS = (FLAG_NONE, FLAG_SPIKE, FLAG_REACTIVE, FLAG_ANTICIPATORY)
UPGRADES = (FLAG_REACTIVE, FLAG_ANTICIPATORY)
EVENT_OPEN, EVENT_RESOLVE = "open", "resolve"
# A row past the threshold that raised no flag because its time of day is routine
# (forecast.routine): the forecast stage stores it with this event and says why.
EVENT_ROUTINE = "routine"

# Score = 1 - (tail probability under the model), so a threshold of 0.99999 is a false-alarm
# probability of 1e-5 per point and test for a well-calibrated model (|z| >= 4.42): about one
# per 100,000 points, i.e. one per ~11 months of 5-minute data. Chosen with the refractory on
# NAB's artificial categories from 0.99 .. 0.99999 (benchmarks/nab_real.py --select; 0.9999
# before the sequence memory of forecast/patterns.py joined the tests, benchmarks/README.md).
DEFAULT_THRESHOLD = 0.99999
# Resolve only once the score is below 0.99 (|z| < 2.58, the usual 99 % band)...
DEFAULT_REARM = 0.99
# ... for 3 observed points in a row (one quiet point inside an excursion does not end it).
DEFAULT_QUIET_POINTS = 3
# Refractory period: an episode lasts at least 12 hours (unless a stronger wave ends it). Chosen
# on NAB's artificial categories from 2 / 6 / 12 / 24 h with the threshold (24 h before the
# sequence memory; Merlion's AggregateAlarms uses 2 h, which on NAB's real series left 2-3
# alarms per incident) ...
DEFAULT_REFRACTORY_SECONDS = 12 * 3600.0
# ...but at least this many points, so that coarse series (daily data) still keep the
# immediately following points of one incident together (the shift confirmation needs 3).
MIN_REFRACTORY_POINTS = 3
# A quiet episode is ended by a new alarm half again as far past its test's limit as anything
# the episode reached (benchmarks/README.md, "A second wave"; 0 turns it off).
DEFAULT_ESCALATE = 1.5


# An alarm row of ``forecasts`` (and a routine row: past its limit, not flagged) stores in
# forecast/lower/upper the detector's expected value and the band its point test accepts at the
# alarm threshold (clamped to the metric's domain, as the explanation's numbers), not the model's
# one-step band, and in ``model`` this prefix and the deciding test's name ("detector: rise
# test"): the band the flag was judged against, wherever the row is shown (forecast/run.py).
DETECTOR_MODEL = "detector: "


def decided_by(model: object) -> str | None:
    """The deciding test's name of a row whose band is the detector's (None: the model's band,
    e.g. a row written before alarm rows carried the detector's band)."""
    if isinstance(model, str) and model.startswith(DETECTOR_MODEL):
        return model[len(DETECTOR_MODEL):]
    return None


def judged_band(trig: Any, bounds: tuple[float, float], names: dict[str, str]
                ) -> list[Any] | None:
    """forecast, lower, upper and model of a row judged by ``trig`` (a
    :class:`forecast.detect.Trigger`, or None): the detector's expected value and alarm band in
    the metric's domain ``bounds`` (as the explanation shows them), ``DETECTOR_MODEL`` and the
    test's name in ``names``; None without a trigger or a finite band."""
    if trig is None:
        return None
    band = [min(max(float(v), bounds[0]), bounds[1])
            for v in (trig.forecast, trig.alarm_lower, trig.alarm_upper)]
    if not all(math.isfinite(v) for v in band):
        return None
    return [*band, DETECTOR_MODEL + names.get(trig.test, trig.test)]


def _number(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # None, pandas' NA
        return None
    return f if math.isfinite(f) else None


def band_text(y: object, forecast: object, lower: object, upper: object, model: object) -> str:
    """One sentence on an alarm row's value against its band: which band it is (the detector's
    alarm band, or the model's one-step band on an older row), where the value lies and which
    test decided the flag. Shown by the report and carried by the alert."""
    nums = [n for n in (_number(v) for v in (y, forecast, lower, upper)) if n is not None]
    if len(nums) < 4:
        return "no band stored for this window"
    where = "above" if nums[0] > nums[3] else "below" if nums[0] < nums[2] else "inside"
    v, fc, lo, up = (f"{n:.4g}" for n in nums)
    band = f"[{lo}, {up}] around {fc}"
    test = decided_by(model)
    if test is None:
        return (f"{v} is {where} the forecast model's one-step band {band}, which did not "
                f"decide the flag: the detector's own test did (see the explanation)")
    if test == "point test":
        return (f"{v} is {where} the detector's alarm band {band}: the point test, which "
                f"flags a value outside that band")
    return (f"{v} is {where} the detector's alarm band {band} (its point test's); the "
            f"{test} decided the flag, on its own statistic and limit (see the explanation)")


def suppress_points(interval_seconds: float,
                    suppress_seconds: float = DEFAULT_REFRACTORY_SECONDS) -> int:
    """The refractory period in points for a series sampled every ``interval_seconds``."""
    if interval_seconds <= 0:
        raise ValueError(f"interval must be positive, got {interval_seconds} s")
    return max(MIN_REFRACTORY_POINTS, math.ceil(suppress_seconds / interval_seconds))


@dataclass(frozen=True)
class Step:
    """What the policy made of one point."""

    flag: str  # the alarm's kind on the point that opens an episode, else "none"
    episode: int | None  # id (1, 2, ...) of the episode the point belongs to, None outside
    event: str | None  # "open", "resolve" (the episode's last point) or None
    kind: str | None  # the class of the point's episode (may be upgraded after the alarm)
    closes: int | None = None  # the episode this alarm ended early (a second, stronger wave)
    closed_kind: str | None = None  # that episode's class


@dataclass
class AlarmPolicy:
    """Stateful episode policy; call :meth:`step` (or :meth:`decide`) once per point in time
    order."""

    threshold: float = DEFAULT_THRESHOLD
    min_points: int = 0  # observed points before any alarm may fire
    suppress: int = MIN_REFRACTORY_POINTS  # refractory: points an episode stays open at least
    rearm: float = DEFAULT_REARM
    quiet: int = DEFAULT_QUIET_POINTS
    escalate: float = DEFAULT_ESCALATE  # 0: a wave inside an open episode never alarms
    episodes: int = field(default=0, init=False)  # episodes opened so far
    _seen: int = field(default=0, init=False)
    _step: int = field(default=-1, init=False)
    _open_at: int | None = field(default=None, init=False)
    _kind: str | None = field(default=None, init=False)
    _quiet_run: int = field(default=0, init=False)
    _peak: float = field(default=0.0, init=False)  # highest severity of the open episode

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 <= self.rearm <= self.threshold:
            raise ValueError(f"rearm ({self.rearm}) must be between 0 and the threshold "
                             f"({self.threshold})")
        if not (self.escalate == 0.0 or self.escalate >= 1.0):  # NaN too
            raise ValueError(f"escalate ({self.escalate}) must be 0 (off) or >= 1")
        if self.suppress < 0 or self.min_points < 0 or self.quiet < 1:
            raise ValueError(f"suppress ({self.suppress}) and min_points ({self.min_points}) "
                             f"must be >= 0 and quiet ({self.quiet}) >= 1")

    @property
    def open(self) -> bool:
        return self._open_at is not None

    def step(self, score: float, kind: str | None, *, thin: bool = False,
             severity: float = math.nan) -> Step:
        """The policy's verdict on the next point.

        ``score`` NaN marks a missing point; ``thin`` a point too thin to decide on (both keep
        the state). ``kind`` is the detector's candidate; it only matters when ``score`` reaches
        the threshold. ``severity``: how far past its test's limit the point is (NaN: unknown;
        an episode opened by an unknown severity is never ended early).
        """
        self._step += 1
        if kind is not None and kind not in FLAGS:
            raise ValueError(f"unknown alarm kind {kind!r}; valid kinds are {FLAGS}")
        current = self.episodes if self.open else None
        if math.isnan(score) or thin:
            return Step(FLAG_NONE, current, None, self._kind if self.open else None)
        self._seen += 1
        alarming = kind not in (None, FLAG_NONE) and score >= self.threshold
        if self._open_at is not None:
            if (alarming and self.escalate and self._quiet_run >= self.quiet
                    and severity > self.escalate * self._peak):
                assert kind is not None
                closed, closed_kind = self.episodes, self._kind
                return replace(self._open(kind, severity), closes=closed, closed_kind=closed_kind)
            if alarming and self._kind == FLAG_SPIKE and kind in UPGRADES:
                self._kind = kind
            if score >= self.rearm and severity > self._peak:
                self._peak = severity
            self._quiet_run = self._quiet_run + 1 if score < self.rearm else 0
            if self._quiet_run >= self.quiet and self._step - self._open_at >= self.suppress:
                cls, self._open_at, self._kind = self._kind, None, None
                return Step(FLAG_NONE, current, EVENT_RESOLVE, cls)
            return Step(FLAG_NONE, current, None, self._kind)
        if not alarming or self._seen <= self.min_points:
            return Step(FLAG_NONE, None, None, None)
        assert kind is not None
        return self._open(kind, severity)

    def _open(self, kind: str, severity: float) -> Step:
        self.episodes += 1
        self._open_at, self._kind, self._quiet_run = self._step, kind, 0
        self._peak = severity if not math.isnan(severity) else math.inf
        return Step(kind, self.episodes, EVENT_OPEN, kind)

    def decide(self, score: float, kind: str | None, *, thin: bool = False,
               severity: float = math.nan) -> str:
        """The flag of the next point: the kind on an episode's alarm point, else ``none``."""
        return self.step(score, kind, thin=thin, severity=severity).flag


def close_previous(events: list[str | None], episodes: list[int | None], closes: int | None,
                   kept: Sequence[bool] | None = None) -> int | None:
    """Mark the resolution of episode ``closes``, ended early by a second, stronger wave: its
    last point before this one (among the ``kept`` ones: rows that are written) gets the
    ``resolve`` event. ``events`` / ``episodes`` hold the earlier points, this one not yet
    appended. Returns the index marked (None: nothing to mark)."""
    if closes is None:
        return None
    for j in range(len(events) - 1, -1, -1):
        if episodes[j] == closes and (kept is None or kept[j]):
            events[j] = EVENT_RESOLVE
            return j
    return None
