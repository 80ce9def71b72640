"""Which topic-specific stance head serves a configured topic, when its descriptions are not
word for word the ones the head was trained with (``learned`` uses the head's own descriptions as
features then, since the head was fitted on those).

Topics and heads are compared by the embeddings of their name, pro and anti descriptions from the
*base* all-MiniLM-L6-v2 (a paraphrase model; the fine-tuned encoder scatters paraphrases of one
description), plus a guard on named people and places.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scoring.extractors.encoder import CachedEncoder
    from scoring.extractors.learned import Head

# Mean cosine (base encoder) of a topic's name, pro and anti descriptions to a topic head's above
# which that head serves the topic: the midpoint between paraphrases of the five SemEval targets
# and unrelated or near-miss topics in benchmarks/topic_heads.py (see benchmarks/README.md).
HEAD_MATCH_MIN = 0.59
# How much better a head's sides must match a topic's one way (as named, or crossed: the topic's
# pro is the head's anti) than the other before the head serves it (crossed: its answers
# swapped): half the usual margin of the paraphrases that chose HEAD_MATCH_MIN (0.06;
# benchmarks/topic_heads.py set A). Descriptions that name both sides' words ("atheism" and "God"
# in each) can match nearly as well either way (set A's atheism: 0.693 as named, 0.696
# crossed); those get the generic head. The rule is symmetric, so swapping a topic's pro and
# anti swaps its labels whichever head serves it.
SIDES_MARGIN = 0.03


@dataclass(frozen=True)
class Described:
    """A topic or a topic head as the matcher sees it: name, pro and anti embeddings (unit norm,
    from the base encoder) and the proper nouns its descriptions name (e.g. Hillary, Clinton)."""

    name: np.ndarray | None
    pro: np.ndarray
    anti: np.ndarray
    text: str
    proper_nouns: frozenset[str]


def proper_nouns(*texts: str) -> frozenset[str]:
    """Capitalized words that do not start a sentence: the people and places a stance is about."""
    found: set[str] = set()
    for text in texts:
        for sentence in re.split(r"[.;:!?]\s*", text):
            found.update(w.lower() for w in re.findall(r"(?<=\s)[A-Z][a-z]+", sentence))
    return frozenset(found)


def describe(encoder: CachedEncoder, name: str, pro: str, anti: str) -> Described:
    texts = [pro, anti] + ([name] if name else [])
    emb = encoder.encode(texts)
    return Described(emb[2] if name else None, emb[0], emb[1], f"{name} {pro} {anti}".lower(),
                     proper_nouns(pro, anti))


def head_similarity(topic: Described, head: Described) -> tuple[float, float]:
    """(similarity, crossed similarity): mean cosine of name, pro and anti to the head's (name
    only when both have one); crossed pairs pro with the head's anti and vice versa."""
    names = ([float(topic.name @ head.name)]
             if topic.name is not None and head.name is not None else [])
    sim = names + [float(topic.pro @ head.pro), float(topic.anti @ head.anti)]
    crossed = names + [float(topic.pro @ head.anti), float(topic.anti @ head.pro)]
    return float(np.mean(sim)), float(np.mean(crossed))


@dataclass(frozen=True)
class HeadMatch:
    """A topic head that serves a topic; ``crossed``: the topic names the head's sides the other
    way round (its pro is the head's anti), so the head's pro and anti answers are swapped."""

    head: Head
    similarity: float
    crossed: bool = False


@dataclass(frozen=True)
class Matching:
    """The head serving a topic (``best``, None: the generic head serves it) and, for each topic
    head that does not, why (one clause, its figures included)."""

    best: HeadMatch | None
    passed_over: tuple[tuple[Head, str], ...] = ()

    def why_not(self, head: Head) -> str | None:
        """Why `head` does not serve the topic; None when it does or was not compared."""
        return next((why for h, why in self.passed_over if h is head), None)


def _passed_over(topic: Described, head: Described, threshold: float
                 ) -> str | tuple[float, bool]:
    """Rules (1) and (2) of ``match_topic_heads`` for one head: why it cannot serve `topic`,
    else (similarity, crossed) of the match it would be (rule 3 compares those)."""
    missing = sorted(head.proper_nouns)
    if missing and not any(re.search(rf"\b{re.escape(w)}\b", topic.text) for w in missing):
        return (f"the topic's name and descriptions name none of {', '.join(missing)}, which "
                f"the head's descriptions name")
    sim, crossed = head_similarity(topic, head)
    if max(sim, crossed) < threshold:
        return (f"its descriptions are too unlike the topic's (similarity {max(sim, crossed):.3f}"
                f", below the minimum {threshold:.2f})")
    if abs(sim - crossed) < SIDES_MARGIN:  # which of the topic's sides is which is unclear
        return (f"the topic's sides cannot be told apart from the descriptions it was trained "
                f"on (similarity {sim:.3f} as named, {crossed:.3f} crossed: less than "
                f"{SIDES_MARGIN} apart)")
    return max(sim, crossed), crossed > sim


def match_topic_heads(topic: Described, heads: Sequence[tuple[Head, Described]],
                      min_similarity: float | None = None) -> Matching:
    """The topic head whose descriptions mean what this topic's do, if any, and why each other
    head does not serve the topic.

    A head serves the topic when (1) a topic about a named person or place names it too (a head
    trained on "Hillary Clinton" never serves "Donald Trump", whose descriptions are otherwise
    the same sentence), (2) ``head_similarity`` reaches ``min_similarity`` (default
    ``HEAD_MATCH_MIN``) with the sides as named, or crossed (the topic names its sides the other
    way round), whichever pairing is more similar by at least ``SIDES_MARGIN``, and (3) no other
    head is more similar. Rules (1) and (2) are checked in that order for the reason given; a
    head failing either does not serve, whichever is checked first.
    """
    threshold = HEAD_MATCH_MIN if min_similarity is None else min_similarity
    best: HeadMatch | None = None
    passed: list[tuple[Head, str]] = []
    eligible: list[HeadMatch] = []
    for head, desc in heads:
        verdict = _passed_over(topic, desc, threshold)
        if isinstance(verdict, str):
            passed.append((head, verdict))
            continue
        found = HeadMatch(head, *verdict)
        eligible.append(found)
        if best is None or found.similarity > best.similarity:
            best = found
    for found in eligible:
        if best is not None and found is not best:
            passed.append((found.head, f"{best.head.name} matches the topic better (similarity "
                                       f"{best.similarity:.3f}, this head {found.similarity:.3f})"))
    return Matching(best, tuple(passed))


def match_topic_head(topic: Described, heads: Sequence[tuple[Head, Described]],
                     min_similarity: float | None = None) -> HeadMatch | None:
    """The topic head serving `topic` (``match_topic_heads``' rules), if any."""
    return match_topic_heads(topic, heads, min_similarity).best
