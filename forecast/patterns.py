"""Sequence memory: has the series gone from values like the last one to values like this one
before? (issue 23)

The Holt-Winters scorers of :mod:`forecast.scorers` ask whether a value is far from its
forecast. NAB's leaders ask a different question: is the recent *sequence* of values one the
series has shown before? (Numenta's HTM: a distributed encoding of each value and a sequence
memory that predicts which encoding comes next; Ahmad et al. 2017, "Unsupervised real-time
anomaly detection for streaming data".) This module is our own, much smaller, take on that idea,
causal and streaming (``learn_one`` before nothing of the future is known):

1. **Encode** (:class:`ValueEncoder`, a distributed scalar encoding): each value falls in a
   bucket of width ``resolution`` (the warm-up's 1st-99th percentile range / :data:`BUCKETS`),
   and bucket ``b`` sets :data:`ACTIVE` of :data:`BITS` bits, the hashes of ``b .. b + ACTIVE
   - 1``: neighbouring buckets share all but one bit, values far apart only chance ones, and a
   value far beyond the warm-up's range still has its own bits (no range to re-learn).
2. **Predict** (:class:`TransitionMemory`): counts of "bit ``i`` active, then bit ``j`` active at
   the next point". A bit is *predicted* when, averaged over the previous point's bits, it
   followed them at least :data:`PREDICTED_SHARE` of the times they were active; the raw novelty
   of a point is the share of its bits that were not predicted (0: this value is what usually
   follows; 1: never seen after such values).
   Counts are halved every :data:`MEMORY_POINTS` points, so a long stream's new habits are
   learnt.
3. **Likelihood** (:class:`NoveltyLikelihood`, Numenta's "anomaly likelihood"): raw novelty is
   noisy, so the score is the normal probability that the mean novelty of the last
   :data:`SHORT_POINTS` rows is *not* above the usual level, estimated on the previous
   :data:`LONG_POINTS` rows' short-window means. Like the other scores it is one minus a tail
   probability: the detector takes the largest of them against one threshold
   (:mod:`forecast.detect`).

Constants are a-priori values (HTM's encoder size, bucket count and likelihood windows), not
tuned per series. Measured on NAB (``benchmarks/nab_real.py --select``; benchmarks/README.md,
"Sequence memory"). An earlier context memory (8 buckets of the running range, transitions from
the last 1-6 buckets, like CAD OSE's) gained nothing there ("Pattern memory") and was replaced.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist

import numpy as np

_PHI = NormalDist()

# The encoding: 21 active bits of 400 (HTM's random distributed scalar encoder, n = 400, w = 21),
# 130 buckets across the warm-up's range (NAB's HTM detector: the range / 130).
BITS = 400
ACTIVE = 21
BUCKETS = 130
RANGE_QUANTILES = (0.01, 0.99)  # the warm-up's range without its most extreme 1 % each side
# Points whose range sets the resolution when the detector gives none (its shortest warm-up).
DEFAULT_RANGE_POINTS = 30
# A bit is predicted when, averaged over the previous point's bits, it followed them at least
# 10 % of the times they were active.
PREDICTED_SHARE = 0.1
# Halve every count each 4 weeks of 5-minute points (old habits fade, new ones are learnt).
MEMORY_POINTS = 8064
# Likelihood: mean novelty of the last 10 rows (HTM's averaging window) against the distribution
# of those means over the previous 8,640 rows (HTM's historic window: a month of 5-minute rows;
# 2,016, a week, was shipped first: benchmarks/README.md, "A month of novelty history"),
# re-estimated every 100 rows (HTM's re-estimation period) once 288 rows (a day) are in.
SHORT_POINTS = 10
LONG_POINTS = 8640
REFRESH_POINTS = 100
LEARN_POINTS = 288
# A floor on the spread of the short-window means: a series that never shows novelty (sd 0)
# must not alarm on its first single new transition.
SD_FLOOR = 0.05
_MASK = (1 << 64) - 1
_MAX_BUCKET = 1 << 60  # buckets beyond (values ~1e18 resolutions away) share the edge bucket


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 (a fixed, well-spread hash of the bucket numbers)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class ValueEncoder:
    """Value -> the indices of its :data:`ACTIVE` bits among :data:`BITS`."""

    def __init__(self, resolution: float) -> None:
        if not resolution > 0 or not math.isfinite(resolution):
            raise ValueError(f"resolution must be a positive number, got {resolution}")
        self.resolution = resolution
        self._offsets = np.arange(ACTIVE, dtype=np.uint64)

    @classmethod
    def from_warmup(cls, values: list[float]) -> ValueEncoder:
        """Buckets of the warm-up's robust range / :data:`BUCKETS` (a flat warm-up: a
        billionth of its level, so that any later change is a new value)."""
        lo, hi = np.quantile(np.asarray(values, dtype=float), RANGE_QUANTILES, method="nearest")
        scale = max(1.0, abs(float(hi)), abs(float(lo)))
        width = float(hi) / 2 - float(lo) / 2  # halves: a range beyond float stays finite
        return cls(max(width / BUCKETS * 2, 1e-9 * scale))

    def bucket(self, x: float) -> int:
        b = math.floor(min(max(x / self.resolution, -_MAX_BUCKET), _MAX_BUCKET))
        return int(b)

    def bits(self, x: float) -> np.ndarray:
        """The distinct active bits of ``x`` (a hash may give two offsets one bit)."""
        start = np.uint64(self.bucket(x) & _MASK)
        with np.errstate(over="ignore"):
            keys = start + self._offsets
        return np.unique((_mix(keys) % np.uint64(BITS)).astype(np.intp))


class TransitionMemory:
    """Counts of bit-to-bit transitions between consecutive points and the novelty of a point
    given the previous one."""

    def __init__(self, bits: int = BITS, memory: int = MEMORY_POINTS) -> None:
        self.counts = np.zeros((bits, bits), dtype=np.float32)
        self.totals = np.zeros(bits, dtype=np.float32)
        self.memory = memory
        self.previous: np.ndarray | None = None
        self.t = 0

    def learn_one(self, active: np.ndarray) -> float | None:
        """The share of ``active`` not predicted by the previous point's bits (None for the
        first point), then remember the transition."""
        novelty: float | None = None
        prev = self.previous
        if prev is not None:
            follow = (self.counts[prev] / np.maximum(self.totals[prev], 1.0)[:, None]).mean(0)
            novelty = float(np.mean(follow[active] < PREDICTED_SHARE))
            self.counts[np.ix_(prev, active)] += 1.0
            self.totals[prev] += 1.0
        self.previous = active
        self.t += 1
        if self.t % self.memory == 0:
            self.counts *= 0.5
            self.totals *= 0.5
        return novelty


class NoveltyLikelihood:
    """Normal probability that the short-window mean of the raw novelty is not unusually high
    for this series (0 until :data:`LEARN_POINTS` novelties are in)."""

    def __init__(self, short: int = SHORT_POINTS, long: int = LONG_POINTS) -> None:
        self.short: deque[float] = deque(maxlen=short)
        self.means: deque[float] = deque(maxlen=long)
        self.mu, self.sd = 0.0, SD_FLOOR
        self.since = 0
        self.mean = 0.0  # the last short-window mean ...
        self.ready = False  # ... and whether mu / sd have been estimated yet

    def learn_one(self, novelty: float) -> float:
        self.short.append(novelty)
        self.mean = mean = sum(self.short) / len(self.short)
        score = _PHI.cdf((mean - self.mu) / self.sd) if self.ready else 0.0
        self.means.append(mean)  # the reference is the past: scored first, learnt after
        self.since += 1
        if len(self.means) >= LEARN_POINTS and (not self.ready or self.since >= REFRESH_POINTS):
            n = len(self.means)
            self.mu = sum(self.means) / n
            var = sum((m - self.mu) ** 2 for m in self.means) / n
            self.sd = max(math.sqrt(var), SD_FLOOR)
            self.since, self.ready = 0, True
        return score

    def mean_at(self, threshold: float) -> float:
        """The short-window mean novelty at which the score reaches ``threshold``."""
        return self.mu + _PHI.inv_cdf(min(max(threshold, 1e-12), 1 - 1e-12)) * self.sd


class PatternDetector:
    """Encoder -> transition memory -> likelihood; :meth:`learn_one` returns the pattern score
    (0..1, one minus a tail probability; NaN for a missing or non-finite value and until the
    first ``range_points`` finite values have set the encoder's resolution; those values are
    then learnt in order)."""

    def __init__(self, range_points: int = DEFAULT_RANGE_POINTS,
                 short: int = SHORT_POINTS, history: int = LONG_POINTS) -> None:
        if range_points < 1:
            raise ValueError(f"range_points must be >= 1, got {range_points}")
        if history < LEARN_POINTS:
            raise ValueError(f"history must be >= {LEARN_POINTS} rows (the likelihood is "
                             f"estimated from that many), got {history}")
        self.range_points = range_points
        self.encoder: ValueEncoder | None = None
        self.memory = TransitionMemory()
        self.likelihood = NoveltyLikelihood(short, history)
        self._pending: list[float] = []

    def learn_one(self, x: float) -> float:
        if not math.isfinite(x):
            return math.nan
        if self.encoder is None:
            self._pending.append(x)
            if len(self._pending) < self.range_points:
                return math.nan
            self.encoder = ValueEncoder.from_warmup(self._pending)
            pending, self._pending = self._pending, []
            for v in pending[:-1]:
                self._learn(v)
            x = pending[-1]
        return self._learn(x)

    def _learn(self, x: float) -> float:
        assert self.encoder is not None
        novelty = self.memory.learn_one(self.encoder.bits(x))
        return math.nan if novelty is None else self.likelihood.learn_one(novelty)
