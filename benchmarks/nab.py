"""NAB scoring (Numenta Anomaly Benchmark, v1.1 rules), index-based and pure.

Follows ``nab/sweeper.py`` of numenta/NAB:

- Each labeled anomaly gets a window of ``WINDOW_FRACTION * n / n_labels`` points centred on the
  label (NAB's labeler); overlapping windows are merged.
- A detection inside a window scores ``A_TP * scaled_sigmoid(position) / scaled_sigmoid(-1)``
  where ``position = -(right - i + 1) / width``: +1 at the window's left edge, about 0 at its
  right edge. Only the best (= earliest) detection of a window counts; later ones are free.
- A window with no detection scores ``-A_FN``.
- A detection outside every window scores ``A_FP * scaled_sigmoid(distance)`` (negative):
  ``distance = |i - previous_right| / (previous_width - 1)``; before the first window it is the
  full ``-A_FP``.
- The first ``min(floor(0.15 n), 0.15 * 5000)`` points are probationary and not scored at all.
- Normalised score: ``100 * (raw - null) / (perfect - null)`` with ``null = -A_FN * windows``
  (no detections) and ``perfect = A_TP * windows`` (a detection at each window's left edge),
  summed over all series of a corpus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# NAB "standard" application profile (config/profiles.json of numenta/NAB).
STANDARD_PROFILE = {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}
# NAB's labeler: windows span 10 % of the data length, shared by the labels of the file.
WINDOW_FRACTION = 0.10
# NAB's sweeper: the first 15 % of a file (at most 15 % of 5000 rows) is probationary.
PROBATION_PERCENT = 0.15
PROBATION_CAP_ROWS = 5000
# scaled_sigmoid: beyond 3 window widths after a window a false positive costs the full weight.
FAR_POSITION = 3.0


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: 0.98661 at -1 (window start), 0 at 0, -1 from 3 on."""
    if position >= FAR_POSITION:
        return -1.0
    return 2.0 * sigmoid(-5.0 * position) - 1.0


def probationary_length(n: int) -> float:
    return min(math.floor(PROBATION_PERCENT * n), PROBATION_PERCENT * PROBATION_CAP_ROWS)


def label_windows(n: int, labels: Iterable[int],
                  fraction: float = WINDOW_FRACTION) -> list[tuple[int, int]]:
    """NAB windows (inclusive index pairs) for anomaly labels in a series of ``n`` points."""
    labels = sorted(set(int(i) for i in labels))
    if not labels:
        return []
    if any(not 0 <= i < n for i in labels):
        raise ValueError(f"labels must be in [0, {n}), got {labels}")
    length = int(fraction * n / len(labels))
    windows: list[tuple[int, int]] = []
    for i in labels:
        left, right = max(0, i - length // 2), min(n - 1, i + length // 2)
        if windows and left <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(right, windows[-1][1]))
        else:
            windows.append((left, right))
    return windows


@dataclass(frozen=True)
class NabResult:
    raw: float  # sum of window scores and false-positive costs
    windows: int  # scored windows (those not entirely probationary)
    tp: int  # windows with a detection
    fn: int  # windows without one
    fp: int  # detections outside every window (after probation)
    null: float  # raw score of a detector that never fires
    perfect: float  # raw score of a detector firing at each window's left edge

    def normalized(self) -> float:
        return normalize([self])

    def __add__(self, other: NabResult) -> NabResult:
        return NabResult(self.raw + other.raw, self.windows + other.windows, self.tp + other.tp,
                         self.fn + other.fn, self.fp + other.fp, self.null + other.null,
                         self.perfect + other.perfect)


def normalize(results: Sequence[NabResult]) -> float:
    """NAB's normalised corpus score: 0 = null detector, 100 = perfect detector."""
    raw = sum(r.raw for r in results)
    null = sum(r.null for r in results)
    perfect = sum(r.perfect for r in results)
    if perfect == null:
        raise ValueError("no scored windows: the normalised NAB score is undefined")
    return 100.0 * (raw - null) / (perfect - null)


def score(detections: Sequence[bool], windows: Sequence[tuple[int, int]],
          profile: dict[str, float] | None = None) -> NabResult:
    """Score boolean detections (one per point) against inclusive ``(left, right)`` windows."""
    prof = STANDARD_PROFILE if profile is None else profile
    a_tp, a_fp, a_fn = prof["tpWeight"], prof["fpWeight"], prof["fnWeight"]
    n = len(detections)
    windows = sorted(windows)
    for (l1, r1), (l2, _) in zip(windows, windows[1:], strict=False):
        if l2 <= r1:
            raise ValueError(f"windows overlap: ({l1}, {r1}) and ({l2}, ...)")
    if any(not 0 <= left <= right < n for left, right in windows):
        raise ValueError(f"windows must lie within [0, {n}): {windows}")
    probation = probationary_length(n)
    max_tp = scaled_sigmoid(-1.0)
    window_of = [-1] * n
    for k, (left, right) in enumerate(windows):
        for i in range(left, right + 1):
            window_of[i] = k
    best: dict[int, float] = {}
    scored_windows = {window_of[i] for i in range(n) if i >= probation and window_of[i] >= 0}
    fp_cost, fp = 0.0, 0
    prev_right: int | None = None
    prev_width = 0.0
    for i in range(n):
        k = window_of[i]
        if k >= 0:
            left, right = windows[k]
            width = float(right - left + 1)
            if detections[i] and i >= probation:
                s = scaled_sigmoid(-(right - i + 1) / width) * a_tp / max_tp
                best[k] = max(best.get(k, -math.inf), s)
            if i == right:
                prev_right, prev_width = right, width
        elif detections[i] and i >= probation:
            if prev_right is None or prev_width <= 1:
                position = FAR_POSITION
            else:
                position = abs(prev_right - i) / (prev_width - 1)
            fp_cost += scaled_sigmoid(position) * a_fp
            fp += 1
    tp = len(best)
    n_windows = len(scored_windows)
    raw = sum(best.values()) - a_fn * (n_windows - tp) + fp_cost
    return NabResult(raw=raw, windows=n_windows, tp=tp, fn=n_windows - tp, fp=fp,
                     null=-a_fn * n_windows, perfect=a_tp * n_windows)
