"""How a head's probabilities become the reported label (scoring/extractors/decisions.py)."""

import numpy as np

from scoring.extractors.decisions import abstain, affect_choice


def test_unclear_only_when_the_head_is_confident_of_it() -> None:
    classes = ("unclear", "anti", "pro")
    probs = np.array([0.5, 0.2, 0.3])
    assert abstain(probs, classes, 0.0) == 0  # the plain argmax
    assert abstain(probs, classes, 0.55) == 2  # not sure enough: the likelier side
    assert abstain(np.array([0.6, 0.1, 0.3]), classes, 0.55) == 0
    assert abstain(np.array([0.2, 0.5, 0.3]), classes, 0.99) == 1  # a side wins as before
    assert abstain(np.array([0.7, 0.3]), ("unclear", "pro"), 0.9) == 1


def test_an_exact_tie_between_the_sides_is_unclear() -> None:
    classes = ("unclear", "anti", "pro")  # the shipped heads' order: anti before pro
    for unclear_above in (0.0, 0.55, 0.99):
        assert abstain(np.array([0.1, 0.45, 0.45]), classes, unclear_above) == 0
        assert abstain(np.array([0.4, 0.3, 0.3]), classes, unclear_above) == 0
    assert abstain(np.array([0.0999, 0.45, 0.4501]), classes, 0.55) == 2  # no tie: a side
    assert abstain(np.array([0.39, 0.31, 0.3]), classes, 0.55) == 1
    assert abstain(np.array([0.5, 0.5]), ("anti", "pro"), 0.55) == 0  # nothing else to say


def test_hostile_only_when_the_head_is_sure_enough() -> None:
    classes = ("no", "yes")
    assert affect_choice(np.array([0.4, 0.6]), classes, 0.5) == 1  # the plain argmax
    assert affect_choice(np.array([0.4, 0.6]), classes, 0.7) == 0  # not sure enough: "no"
    assert affect_choice(np.array([0.2, 0.8]), classes, 0.7) == 1
    assert affect_choice(np.array([0.9, 0.1]), classes, 0.0) == 0  # "no" wins as before
    three = ("no", "unclear", "yes")
    assert affect_choice(np.array([0.1, 0.3, 0.6]), three, 0.7) == 1  # the likelier of the rest
