"""The verdict on a topic's sides against its replies' agreement (scoring/side_check.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from scoring.side_check import SIDES_MIN_PAIRS, SIDES_RANDOM_BELOW, side_check

ENOUGH = {"n_agree": SIDES_MIN_PAIRS, "n_disagree": SIDES_MIN_PAIRS}


def test_coin_flip_sides_are_called_random_and_say_what_the_scores_measure() -> None:
    check = side_check({**ENOUGH, "agree_same": 0.55, "disagree_opposite": 0.42})
    assert check is not None and check.balanced == pytest.approx(0.485) and check.random
    assert check.sentence.startswith("Sides look random: of the stored replies that agree "
                                     "with their parent, 55% of 50 are on its side; of those "
                                     "that disagree, 42% of 50 are on the other side")
    assert "hostility, not sides" in check.sentence


def test_sides_that_follow_agreement_are_not_called_random() -> None:
    check = side_check({**ENOUGH, "agree_same": 0.9, "disagree_opposite": 0.7})
    assert check is not None and not check.random
    assert check.sentence.startswith("Sides against agreement: of the stored replies")


def test_the_bar_is_on_the_mean_of_the_two_shares() -> None:
    """A model that calls every pair "same side" gets every agreeing reply right and every
    disagreeing one wrong: random, however many replies agree."""
    always_same = side_check({**ENOUGH, "agree_same": 1.0, "disagree_opposite": 0.0})
    assert always_same is not None and always_same.random
    just = SIDES_RANDOM_BELOW + 0.001
    just_above = side_check({**ENOUGH, "agree_same": just, "disagree_opposite": just})
    assert just_above is not None and not just_above.random


def test_too_few_pairs_of_either_kind_say_nothing() -> None:
    row = {**ENOUGH, "agree_same": 0.5, "disagree_opposite": 0.5}
    assert side_check(row) is not None
    assert side_check({**row, "n_disagree": SIDES_MIN_PAIRS - 1}) is None
    assert side_check({**row, "n_agree": SIDES_MIN_PAIRS - 1}) is None
    assert side_check({"n_agree": None, "n_disagree": None}) is None
    # a topic the query found no pairs for, as the pages' joined frames carry it: NaN
    frame = pd.DataFrame([{"topic": "t", "n_agree": float("nan"), "n_disagree": float("nan")}])
    assert side_check(frame.iloc[0]) is None
