"""Do a topic's stance sides follow its replies' agreement? A label-free check of stance.

An agreeing reply should be on its parent's side and a disagreeing one on the other, when both
take a side. With sides at random, each share is near 0.5: the rule table's half (same side or
opposite) is a coin flip, and the topic's interaction scores then measure hostility, not sides
(expected score 8 for a hostile pair, 3 for any other, agreeing or not). Pure: counts and
shares in (``polarwatch.reads.SIDE_CONSISTENCY_SQL``), a verdict out; the dashboard's
overview and the scheduled report both say it.

On real Reddit reply pairs whose agreement people labelled, the shipped `learned` sides scored
0.46-0.49 balanced against the agreement head's verdicts (0.48 against the people's) and a head
that had learnt those pairs 0.77 (``benchmarks/stance_checks.py --only pairs``,
benchmarks/README.md, issue 20). SIDES_RANDOM_BELOW sits between the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SIDES_RANDOM_BELOW = 0.55  # balanced share under which a topic's sides are called random
SIDES_MIN_PAIRS = 50  # agreeing and as many disagreeing replies with two sides, to tell


@dataclass(frozen=True)
class SideCheck:
    n_agree: int
    agree_same: float  # share of agreeing replies on their parent's side
    n_disagree: int
    disagree_opposite: float  # share of disagreeing replies on the other side

    @property
    def balanced(self) -> float:
        """Mean of the two shares: 0.5 for sides at random, whatever the share that agrees."""
        return (self.agree_same + self.disagree_opposite) / 2

    @property
    def random(self) -> bool:
        return self.balanced < SIDES_RANDOM_BELOW

    @property
    def title(self) -> str:
        return "Sides look random" if self.random else "Sides against agreement"

    @property
    def detail(self) -> str:
        shares = (f"of the stored replies that agree with their parent, {self.agree_same:.0%} of "
                  f"{self.n_agree:,} are on its side; of those that disagree, "
                  f"{self.disagree_opposite:.0%} of {self.n_disagree:,} are on the other side")
        if self.random:
            return (f"{shares} (a coin flip gives 50 % and 50 %). The stance model does not tell "
                    f"this topic's sides apart, so its scores measure hostility, not sides. "
                    f"Check a labelled sample.")
        return f"{shares} (random sides give 50 % and 50 %)."

    @property
    def sentence(self) -> str:
        return f"{self.title}: {self.detail}"


def side_check(row: Any) -> SideCheck | None:
    """The check from one topic's row (``n_agree``, ``agree_same``, ``n_disagree``,
    ``disagree_opposite``: a mapping or a pandas row), or None with fewer than
    ``SIDES_MIN_PAIRS`` agreeing or disagreeing replies to tell from."""
    counts = [row.get("n_agree"), row.get("n_disagree")]
    if any(c is None or (isinstance(c, float) and math.isnan(c)) for c in counts) \
            or min(int(c) for c in counts) < SIDES_MIN_PAIRS:
        return None
    return SideCheck(int(row["n_agree"]), float(row["agree_same"]), int(row["n_disagree"]),
                     float(row["disagree_opposite"]))
