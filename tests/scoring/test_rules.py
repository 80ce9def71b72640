"""The paper's rule table: every row, the "unclear" conventions, and the vectorised twin."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from scoring.rules import (
    RULE_TABLE,
    conversation_score,
    score_pair,
    score_pairs,
)

# (reply stance, parent stance, reply affect, parent affect, agreement) -> score.
# Rows in the paper's order: same/opposite × affect yes/no × agree/other.
PAPER_ROWS = [
    (("pro", "pro", "yes", "no", "agree"), 10, "same|hostile|agree"),
    (("pro", "pro", "yes", "no", "disagree"), 8, "same|hostile|no-agree"),
    (("anti", "anti", "no", "no", "agree"), 6, "same|civil|agree"),
    (("anti", "anti", "no", "no", "disagree"), 2, "same|civil|no-agree"),
    (("pro", "anti", "no", "yes", "agree"), 6, "opposite|hostile|agree"),
    (("anti", "pro", "no", "yes", "disagree"), 8, "opposite|hostile|no-agree"),
    (("pro", "anti", "no", "no", "agree"), 0, "opposite|civil|agree"),
    (("anti", "pro", "no", "no", "disagree"), 4, "opposite|civil|no-agree"),
]

STANCES = ("pro", "anti", "unclear")
AFFECTS = ("yes", "no", "unclear")
AGREEMENTS = ("agree", "disagree", "unclear", None)


def test_rule_table_is_the_papers() -> None:
    assert RULE_TABLE == {
        (True, True, True): 10, (True, True, False): 8,
        (True, False, True): 6, (True, False, False): 2,
        (False, True, True): 6, (False, True, False): 8,
        (False, False, True): 0, (False, False, False): 4,
    }


@pytest.mark.parametrize(("args", "score", "rule"), PAPER_ROWS, ids=[r[2] for r in PAPER_ROWS])
def test_each_row_of_the_table(args: tuple, score: int, rule: str) -> None:
    assert score_pair(*args) == (score, rule)


def test_the_eight_rows_give_the_papers_scores_in_order() -> None:
    results = [score_pair(*args) for args, _, _ in PAPER_ROWS]
    assert [r[0] if r else None for r in results] == [10, 8, 6, 2, 6, 8, 0, 4]


@pytest.mark.parametrize(("reply_affect", "parent_affect"), [("yes", "no"), ("no", "yes"),
                                                             ("yes", "yes"), ("yes", "unclear"),
                                                             ("unclear", "yes")])
def test_affect_counts_when_either_side_is_hostile(reply_affect: str, parent_affect: str) -> None:
    assert score_pair("pro", "pro", reply_affect, parent_affect, "agree") == \
        (10, "same|hostile|agree")
    assert score_pair("pro", "anti", reply_affect, parent_affect, "disagree") == \
        (8, "opposite|hostile|no-agree")


def test_unclear_affect_counts_as_no() -> None:
    assert score_pair("pro", "pro", "unclear", "unclear", "agree") == (6, "same|civil|agree")
    assert score_pair("pro", "anti", "unclear", "no", "agree") == (0, "opposite|civil|agree")


@pytest.mark.parametrize("agreement", ["unclear", None, "disagree"])
def test_anything_but_agree_counts_as_no(agreement: str | None) -> None:
    assert score_pair("pro", "pro", "no", "no", agreement) == (2, "same|civil|no-agree")
    assert score_pair("anti", "pro", "no", "no", agreement) == (4, "opposite|civil|no-agree")
    assert score_pair("anti", "pro", "yes", "no", agreement) == (8, "opposite|hostile|no-agree")


@pytest.mark.parametrize(("reply", "parent"), [("unclear", "pro"), ("anti", "unclear"),
                                               ("unclear", "unclear")])
def test_unclear_stance_is_not_scored(reply: str, parent: str) -> None:
    for affect, agreement in itertools.product(AFFECTS, AGREEMENTS):
        assert score_pair(reply, parent, affect, affect, agreement) is None


def test_score_pairs_equals_score_pair_on_every_combination() -> None:
    combos = list(itertools.product(STANCES, STANCES, AFFECTS, AFFECTS, AGREEMENTS))
    assert len(combos) == 3 * 3 * 3 * 3 * 4
    columns = [list(col) for col in zip(*combos, strict=True)]
    scores, names = score_pairs(*columns)
    assert scores.shape == names.shape == (len(combos),)
    assert scores.dtype == float
    n_scored = 0
    for i, combo in enumerate(combos):
        expected = score_pair(*combo)
        if expected is None:
            assert math.isnan(scores[i]), combo
            assert names[i] is None, combo
        else:
            n_scored += 1
            assert (scores[i], names[i]) == (float(expected[0]), expected[1]), combo
    assert n_scored == 2 * 2 * 3 * 3 * 4  # both stances clear


def test_score_pairs_empty_batch() -> None:
    scores, names = score_pairs([], [], [], [], [])
    assert len(scores) == 0 and len(names) == 0


def test_score_pairs_accepts_numpy_object_arrays() -> None:
    cols: list[Any] = [np.array(c, dtype=object) for c in (["pro", "unclear"], ["pro", "anti"],
                                                ["yes", "no"], ["no", "no"], ["agree", None])]
    scores, names = score_pairs(*cols)
    assert scores[0] == 10.0 and names[0] == "same|hostile|agree"
    assert math.isnan(scores[1]) and names[1] is None


def test_conversation_score_is_the_mean_of_scored_interactions() -> None:
    assert conversation_score([10, 8, 6]) == 8.0
    assert conversation_score([4.0, float("nan"), None, 8.0]) == 6.0  # type: ignore[list-item]
    assert conversation_score([]) is None
    assert conversation_score([float("nan")]) is None
    batch: Any = np.array([2.0, 4.0])  # what a pandas UDF hands over
    assert isinstance(conversation_score(batch), float)
