"""Pattern memory: has the series been in this *context* before? (issue 23)

The Holt-Winters scorers of :mod:`forecast.scorers` ask whether a value is far from its
forecast. NAB's leaders ask a different question: is the recent *sequence* of values one the
series has shown before? (Numenta's HTM sequence memory; CAD OSE, the "contextual anomaly
detector", keeps a memory of contexts made of the last discretised values.) This module is our
own, much smaller, take on that idea, causal and streaming (``learn_one`` before nothing of the
future is known):

1. **Discretise** (:class:`Bucketer`): each finite value is mapped to one of :data:`BUCKETS`
   buckets of the range seen so far (running min / max, so causal; a value beyond the range
   widens it and lands in the outer bucket).
2. **Contexts** (:class:`ContextMemory`): at each point, the transitions "last ``k`` buckets ->
   this bucket" for ``k = 1 .. ORDER``. The raw novelty is the mean over ``k`` of one minus
   the share of past visits of that context that went on to this bucket (a context never seen:
   1); then the point is counted (a context unseen for :data:`MEMORY_POINTS` rows is
   forgotten). A pattern that repeats stops being novel; a break in a repeating pattern makes
   its longer transitions new at once. Counts rather than CAD OSE's seen / unseen bits: with
   seen / unseen, noise keeps the longer contexts new forever (measured on NAB, README).
3. **Likelihood** (:class:`NoveltyLikelihood`, Numenta's "anomaly likelihood" idea): raw
   novelty is noisy (a drifting series shows new contexts all the time), so the score is the
   normal probability that the mean novelty of the last :data:`SHORT_POINTS` rows is *not*
   above the usual level, estimated on the previous :data:`LONG_POINTS` rows' short-window
   means. Like the other scores it is one minus a tail probability: the detector takes the
   largest of them against one threshold (:mod:`forecast.detect`).

Constants are a-priori values (CAD OSE's 3 bits, about its 7-point look-back, HTM's likelihood
windows), not tuned per series. Measured on NAB (``benchmarks/nab_real.py --select --patterns``;
benchmarks/README.md, "Pattern memory"): with the artificial categories choosing and
leave-one-category-out over the real ones it did not beat the detector without it, so the
detector's ``patterns`` setting is off by default.
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist

_PHI = NormalDist()

# 8 buckets (3 bits, CAD OSE's default resolution): coarse enough that noise stays in one or two
# buckets, fine enough that a spike or a level move of an eighth of the range changes context.
BUCKETS = 8
# Transitions from the last 1..6 buckets (half an hour of 5-minute data; CAD OSE looks back 7).
ORDER = 6
# Forget a transition unseen for 4 weeks of 5-minute data (bounds the memory of a long stream).
MEMORY_POINTS = 8064
# Likelihood: mean novelty of the last 10 rows (HTM's averaging window) against the distribution
# of those means over the previous week of 5-minute rows (HTM: 8,640), re-estimated every 100
# rows (HTM's re-estimation period) once 288 rows (a day) are in.
SHORT_POINTS = 10
LONG_POINTS = 2016
REFRESH_POINTS = 100
LEARN_POINTS = 288
# A floor on the spread of the short-window means: a series that never shows novelty (sd 0)
# must not alarm on its first single new transition (1 / ORDER / SHORT_POINTS ~ 0.017).
SD_FLOOR = 0.05


class Bucketer:
    """Running min / max of the finite values seen so far and the bucket of a value in it."""

    def __init__(self, buckets: int = BUCKETS) -> None:
        if buckets < 2:
            raise ValueError(f"buckets must be >= 2, got {buckets}")
        self.buckets = buckets
        self.low = math.inf
        self.high = -math.inf

    def learn_one(self, x: float) -> int:
        """Widen the range by ``x`` (finite) and return its bucket, 0 .. buckets - 1."""
        self.low, self.high = min(self.low, x), max(self.high, x)
        span = self.high - self.low
        if span <= 0.0:  # constant so far
            return 0
        if not math.isfinite(span):  # a range beyond float: halve everything first
            frac = (x / 2 - self.low / 2) / (self.high / 2 - self.low / 2)
        else:
            frac = (x - self.low) / span
        return min(self.buckets - 1, max(0, int(frac * self.buckets)))


class ContextMemory:
    """Counts of the contexts "last k buckets" and of the transitions "last k buckets -> next
    bucket" (k = 1 .. ``order``), each with the row it was last seen at."""

    def __init__(self, order: int = ORDER, memory: int = MEMORY_POINTS) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order, self.memory = order, memory
        self.recent: deque[int] = deque(maxlen=order)
        self.contexts: dict[tuple[int, ...], list[int]] = {}  # context -> [count, last row]
        self.transitions: dict[tuple[int, ...], list[int]] = {}  # context + next -> same
        self.t = 0
        self.new = 0  # transitions of the last point never seen before

    def learn_one(self, bucket: int) -> float | None:
        """Novelty of ``bucket`` after the recent buckets, then remember it; None until
        ``order`` buckets precede it.

        Novelty: the mean over k of ``1 - P(bucket | last k buckets)``, the probabilities
        counted on the past (a context never seen counts as 0): 0 when every context so far was
        always followed by this bucket, 1 when none ever was.
        """
        hist = tuple(self.recent)
        novelty: float | None = None
        if len(hist) == self.order:
            total, self.new = 0.0, 0
            for k in range(1, self.order + 1):
                ctx = hist[-k:]
                key = (*ctx, bucket)
                seen_ctx = self.contexts.get(ctx)
                seen_key = self.transitions.get(key)
                hits = seen_key[0] if seen_key else 0
                total += 1.0 - (hits / seen_ctx[0] if seen_ctx else 0.0)
                self.new += hits == 0
                for table, k_ in ((self.contexts, ctx), (self.transitions, key)):
                    entry = table.get(k_)
                    if entry is None:
                        table[k_] = [1, self.t]
                    else:
                        entry[0] += 1
                        entry[1] = self.t
            novelty = total / self.order
        self.recent.append(bucket)
        self.t += 1
        if self.t % self.memory == 0:  # forget what has not been seen for `memory` rows
            for table in (self.contexts, self.transitions):
                for key in [k for k, (_, at) in table.items() if self.t - at > self.memory]:
                    del table[key]
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
    """Bucketer -> context memory -> likelihood; :meth:`learn_one` returns the pattern score
    (0..1, one minus a tail probability; NaN for a missing or non-finite value)."""

    def __init__(self, buckets: int = BUCKETS, order: int = ORDER,
                 short: int = SHORT_POINTS) -> None:
        self.bucketer = Bucketer(buckets)
        self.memory = ContextMemory(order)
        self.likelihood = NoveltyLikelihood(short)

    def learn_one(self, x: float) -> float:
        if not math.isfinite(x):
            return math.nan
        novelty = self.memory.learn_one(self.bucketer.learn_one(x))
        return math.nan if novelty is None else self.likelihood.learn_one(novelty)
