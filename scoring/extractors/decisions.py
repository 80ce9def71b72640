"""Turning a head's probabilities into the label reported: when "unclear" may win for stance,
and how sure a head must be before a post is called hostile."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# A stance head's "unclear" wins only with at least this probability, else the likelier side is
# reported: fewer unclear stances, so more replies get an interaction score (49% -> 64% of
# real Reddit replies). Chosen on the SemEval validation tweets as the largest value whose F_avg
# stays within 0.005 of the plain argmax's (0) with topic and generic heads alike
# (benchmarks/stance_coverage.py, curve in benchmarks/README.md).
STANCE_UNCLEAR_ABOVE = 0.55
# Affect is "yes" only when the head gives hostility at least this probability (else "no"). The
# OffensEval head answers "offensive", which over-fires on swearing and anger at third parties;
# the paper's affect is hostility toward the other side. On a hand-labelled sample of 200 real
# r/democrats and r/Republican posts (benchmarks/hostility_sample.py) the threshold picked on
# either subreddit's 100 posts was 0.70 both times, and on the other subreddit it raised F1 for
# "hostile to the other side" 0.536 -> 0.619 and 0.478 -> 0.536; OffensEval val macro-F1 0.775 ->
# 0.764 (benchmarks/README.md, issue 20). A head file may set its own ``yes_at``.
AFFECT_YES_AT = 0.70


def abstain(probs: np.ndarray, classes: Sequence[str], unclear_above: float) -> int:
    """Index of the stance to report: "unclear" only when the head gives it at least
    ``unclear_above`` (and it is the most probable class), else the likelier of pro and anti.
    ``unclear_above`` = 0 is the plain argmax. When pro and anti are exactly as likely, neither
    side is reported: "unclear" (argmax picks the side listed first: "anti" in the shipped
    heads)."""
    k = int(probs.argmax())
    sides = [j for j, c in enumerate(classes) if c != "unclear"]
    if classes[k] == "unclear" and probs[k] < unclear_above and sides:
        k = max(sides, key=lambda j: probs[j])
    if classes[k] != "unclear" and "unclear" in classes and sum(
            probs[j] == probs[k] for j in sides) > 1:
        return list(classes).index("unclear")
    return k


def affect_choice(probs: np.ndarray, classes: Sequence[str], yes_at: float) -> int:
    """Index of the affect to report: "yes" only with probability at least ``yes_at``, else the
    likelier of the other classes."""
    k = int(probs.argmax())
    if classes[k] != "yes" or probs[k] >= yes_at:
        return k
    rest = [j for j, c in enumerate(classes) if c != "yes"]
    return max(rest, key=lambda j: probs[j]) if rest else k


def cross_sides(classes: Sequence[str]) -> tuple[str, ...]:
    """``classes`` with pro and anti swapped: how a crossed head's columns read."""
    swap = {"pro": "anti", "anti": "pro"}
    return tuple(swap.get(c, c) for c in classes)
