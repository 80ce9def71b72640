"""The paper's heuristic rule table: a reply–parent pair → an interaction score (0–10).

Source: "Measuring Social Media Polarization Using Large Language Models and Heuristic Rules",
Table of interaction scores. Stances are compared (same / opposite); *affect* is "yes" when the
reply or the parent is hostile toward people holding the opposing view; *agreement* is "yes" when
the reply agrees with its parent. "unclear" affect or agreement counts as "no". A pair where either
stance is "unclear" has no score (the table does not define one) and is counted, not scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polarwatch.config import DEFAULT_EXTREME_THRESHOLD

# (same_stance, affect, agrees) -> score, straight from the paper's table.
RULE_TABLE: dict[tuple[bool, bool, bool], int] = {
    (True, True, True): 10,
    (True, True, False): 8,
    (True, False, True): 6,
    (True, False, False): 2,
    (False, True, True): 6,
    (False, True, False): 8,
    (False, False, True): 0,
    (False, False, False): 4,
}

# The paper: a conversation whose mean score is above 7 is "extreme". Defined once, in the
# config contract, as the default of `[aggregate] extreme_threshold`; at run time the configured
# value is passed down.
EXTREME_THRESHOLD = DEFAULT_EXTREME_THRESHOLD


def rule_name(same: bool, affect: bool, agrees: bool) -> str:
    return "|".join(("same" if same else "opposite", "hostile" if affect else "civil",
                     "agree" if agrees else "no-agree"))


def score_pair(reply_stance: str, parent_stance: str, reply_affect: str, parent_affect: str,
               agreement: str | None) -> tuple[int, str] | None:
    """Score one reply→parent pair; None when a stance is unclear."""
    if "unclear" in (reply_stance, parent_stance):
        return None
    same = reply_stance == parent_stance
    affect = reply_affect == "yes" or parent_affect == "yes"
    agrees = agreement == "agree"
    return RULE_TABLE[(same, affect, agrees)], rule_name(same, affect, agrees)


def score_pairs(reply_stance: Sequence[str], parent_stance: Sequence[str],
                reply_affect: Sequence[str], parent_affect: Sequence[str],
                agreement: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`score_pair`: returns (scores as float with NaN for unscored, rule names).

    Used on whole micro-batches; equals :func:`score_pair` row by row (tested).
    """
    rs, ps = np.asarray(reply_stance, dtype=object), np.asarray(parent_stance, dtype=object)
    scorable = (rs != "unclear") & (ps != "unclear")
    same = rs == ps
    affect = (np.asarray(reply_affect, dtype=object) == "yes") | (
        np.asarray(parent_affect, dtype=object) == "yes")
    agrees = np.asarray(agreement, dtype=object) == "agree"
    # index into the table: 4*same + 2*affect + agrees
    lut_scores = np.array([RULE_TABLE[(bool(i & 4), bool(i & 2), bool(i & 1))] for i in range(8)],
                          dtype=float)
    lut_names = np.array([rule_name(bool(i & 4), bool(i & 2), bool(i & 1)) for i in range(8)],
                         dtype=object)
    idx = same.astype(int) * 4 + affect.astype(int) * 2 + agrees.astype(int)
    scores = np.where(scorable, lut_scores[idx], np.nan)
    names = np.asarray(np.where(scorable, lut_names[idx], None), dtype=object)
    return scores, names


def conversation_score(scores: Sequence[float]) -> float | None:
    """Mean of a conversation's interaction scores (None when it has none)."""
    vals = [s for s in scores if s is not None and not np.isnan(s)]
    return float(np.mean(vals)) if vals else None
