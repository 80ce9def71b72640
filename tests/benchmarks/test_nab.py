"""NAB scorer (benchmarks/nab.py) against hand-computed cases."""

from __future__ import annotations

import math

import pytest

from benchmarks import nab

N = 1000  # probation = floor(0.15 * 1000) = 150 rows
WINDOW = (450, 550)  # width 101


def det(*at: int) -> list[bool]:
    flags = [False] * N
    for i in at:
        flags[i] = True
    return flags


def test_scaled_sigmoid_reference_points() -> None:
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.0) == -1.0


def test_label_windows_like_nab_labeler() -> None:
    assert nab.label_windows(N, [500]) == [(450, 550)]  # 10 % of 1000 = 100 points
    assert nab.label_windows(N, [100, 900]) == [(75, 125), (875, 925)]  # 50 each
    assert nab.label_windows(N, [500, 520]) == [(475, 545)]  # overlapping: merged
    assert nab.label_windows(N, [0]) == [(0, 50)]
    with pytest.raises(ValueError, match="labels must be in"):
        nab.label_windows(N, [N])


def test_null_and_perfect_detectors() -> None:
    null = nab.score(det(), [WINDOW])
    assert (null.raw, null.tp, null.fn, null.fp) == (-1.0, 0, 1, 0)
    assert null.normalized() == 0.0
    perfect = nab.score(det(450), [WINDOW])
    assert perfect.raw == pytest.approx(1.0)
    assert perfect.normalized() == pytest.approx(100.0)


def test_late_detection_and_only_best_counts() -> None:
    late = nab.score(det(550), [WINDOW])  # right edge: position -(1/101)
    expected = (2 / (1 + math.exp(-5 / 101)) - 1) / nab.scaled_sigmoid(-1.0)
    assert late.raw == pytest.approx(expected)
    assert late.normalized() == pytest.approx(100 * (expected + 1) / 2)
    both = nab.score(det(500, 550), [WINDOW])  # the earlier one counts, the later is free
    mid = nab.scaled_sigmoid(-(550 - 500 + 1) / 101) / nab.scaled_sigmoid(-1.0)
    assert both.raw == pytest.approx(mid) and both.fp == 0


def test_false_positives_before_after_and_in_probation() -> None:
    before = nab.score(det(200), [WINDOW])  # no window before it: full A_FP
    assert before.raw == pytest.approx(-1.0 - 0.11) and before.fp == 1
    after = nab.score(det(551), [WINDOW])  # just after: |550 - 551| / (101 - 1) = 0.01
    assert after.raw == pytest.approx(-1.0 + 0.11 * nab.scaled_sigmoid(0.01))
    far = nab.score(det(900), [WINDOW])  # 3.5 widths after: full cost
    assert far.raw == pytest.approx(-1.11)
    probation = nab.score(det(100), [WINDOW])  # first 150 rows are not scored
    assert probation.raw == -1.0 and probation.fp == 0


def test_corpus_normalization_sums_series() -> None:
    a = nab.score(det(450), [WINDOW])  # +1 of [-1, 1]
    b = nab.score(det(200), [WINDOW])  # -1.11
    assert nab.normalize([a, b]) == pytest.approx(100 * (1 - 1.11 + 2) / 4)
    total = a + b
    assert (total.windows, total.tp, total.fp) == (2, 1, 1)
    with pytest.raises(ValueError, match="no scored windows"):
        nab.normalize([nab.score(det(), [])])
    with pytest.raises(ValueError, match="overlap"):
        nab.score(det(), [(10, 20), (15, 30)])
