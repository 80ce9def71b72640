"""Accuracy against the analysts (Wilson interval, macro-F1, status) and the labelling quota."""

from __future__ import annotations

import pytest

from scoring.label_accuracy import (
    macro_f1,
    pick_next,
    task_accuracy,
    validation_status,
    wants_random,
    wilson_interval,
)

STANCES = ("pro", "anti", "unclear")


def test_wilson_interval_matches_published_values() -> None:
    # Brown, Cai & DasGupta (2001) / statsmodels proportion_confint(method="wilson")
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and round(wilson_interval(0, 10)[1], 4) == 0.2775
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_macro_f1_agrees_with_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    gold = ["pro", "pro", "anti", "unclear", "anti", "pro"]
    pred = ["pro", "anti", "anti", "pro", "anti", "unclear"]
    assert macro_f1(gold, pred, STANCES) == pytest.approx(metrics.f1_score(
        gold, pred, labels=list(STANCES), average="macro", zero_division=0))


def test_task_accuracy_counts_a_missing_model_label_as_wrong() -> None:
    m = task_accuracy("stance", ["pro", "anti", "pro", "pro"], ["pro", None, "pro", "anti"],
                      STANCES)
    assert (m.n, m.correct, m.accuracy) == (4, 2, 0.5)
    assert m.lower < 0.5 < m.upper
    assert task_accuracy("stance", [], [], STANCES).accuracy is None


def test_status_needs_enough_random_labels_then_the_floor() -> None:
    few = task_accuracy("stance", ["pro"] * 29, ["pro"] * 29, STANCES)
    assert validation_status(few, 30, 0.6) == "not validated"
    assert validation_status(None, 30, 0.6) == "not validated"
    bad = task_accuracy("stance", ["pro"] * 30, ["pro"] * 17 + ["anti"] * 13, STANCES)
    assert validation_status(bad, 30, 0.6) == "unreliable"  # 0.57
    good = task_accuracy("stance", ["pro"] * 30, ["pro"] * 18 + ["anti"] * 12, STANCES)
    assert validation_status(good, 30, 0.6) == "validated"  # 0.60


def test_the_random_share_is_a_quota() -> None:
    n_random = 0
    for n_labelled in range(10):
        n_random += wants_random(n_random, n_labelled, 0.3)
    assert n_random == 3
    assert not any(wants_random(0, n, 0.0) for n in range(5))
    assert all(wants_random(n, n, 1.0) for n in range(5))


def test_pick_next_takes_the_pool_the_quota_asks_for_and_skips_what_was_seen() -> None:
    rand, info = ["r1", "r2", "x"], ["x", "i1", "i2"]
    assert pick_next(rand, info, n_random=0, n_labelled=0, random_share=0.3) == ("r1", "random")
    assert pick_next(rand, info, n_random=1, n_labelled=1, random_share=0.3) == \
        ("x", "informative")
    assert pick_next(rand, info, 1, 1, 0.3, skip={"x"}) == ("i1", "informative")
    # one pool exhausted: the other one, with its own reason
    assert pick_next([], info, 0, 0, 0.3) == ("x", "informative")
    assert pick_next(rand, [], 5, 5, 0.3) == ("r1", "random")
    assert pick_next(["a"], ["a"], 0, 0, 0.3, skip={"a"}) is None
