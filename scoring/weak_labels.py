"""Weak stance labels from a topic's cue terms: a topic head without an LLM or annotators.

SemEval-2016's stance tweets were collected by query hashtags that signal a side (#prolife,
#prochoice, ...), which were then removed from the text. ``weak_label_rows`` does the same with a
topic's ``pro_terms`` / ``anti_terms`` (phrases and hashtags from ``topics.toml``) on posts of
that topic: a post that names only pro cues is "pro", only anti cues "anti"; cues of both sides
or none leave it out, or, for a share of the no-cue posts, "unclear". The cues are then removed
from the text, so the head learns what *else* such posts say and generalizes to posts without
cues. ``polarwatch train --task stance --weak-labels`` trains a head on these rows.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from polarwatch.config import Topic
from polarwatch.errors import SchemaError

# No-cue posts labeled "unclear", relative to the mean of the pro and anti counts: 1.0 keeps the
# three classes about balanced (the heads are class-balanced anyway).
UNCLEAR_RATIO = 1.0


def cue_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive regex for the terms; a term matches as a whole word or hashtag."""
    terms = [t.strip() for t in terms if t.strip()]
    if not terms:
        return None
    alts = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"(?<![\w#])(?:{alts})(?!\w)", re.IGNORECASE)


@dataclass
class WeakLabels:
    rows: list[dict[str, Any]]  # text (cues removed), label, topic, index (in the input)
    counts: dict[str, int]  # pro, anti, both (dropped), none, unclear (kept no-cue posts)


def weak_label_rows(texts: Iterable[str], topic: Topic, seed: int = 0,
                    unclear_ratio: float = UNCLEAR_RATIO) -> WeakLabels:
    pro, anti = cue_pattern(topic.pro_terms), cue_pattern(topic.anti_terms)
    if pro is None or anti is None:
        raise SchemaError(f"topic {topic.id!r} needs both pro_terms and anti_terms to weak-label "
                          f"posts (has {len(topic.pro_terms)} pro and {len(topic.anti_terms)} "
                          f"anti terms); add them to its [[topic]] table")
    rows: list[dict[str, Any]] = []
    no_cue: list[tuple[int, str]] = []
    counts = {"pro": 0, "anti": 0, "both": 0, "none": 0, "unclear": 0}
    for i, text in enumerate(texts):
        is_pro, is_anti = bool(pro.search(text)), bool(anti.search(text))
        if is_pro and is_anti:
            counts["both"] += 1
        elif is_pro or is_anti:
            label = "pro" if is_pro else "anti"
            counts[label] += 1
            cleaned = re.sub(r"\s+", " ", anti.sub(" ", pro.sub(" ", text))).strip()
            if cleaned:
                rows.append({"text": cleaned, "label": label, "topic": topic.id, "index": i})
        else:
            counts["none"] += 1
            no_cue.append((i, text))
    n_unclear = min(len(no_cue), int(unclear_ratio * (counts["pro"] + counts["anti"]) / 2))
    for i, text in random.Random(seed).sample(no_cue, n_unclear):
        rows.append({"text": text, "label": "unclear", "topic": topic.id, "index": i})
    counts["unclear"] = n_unclear
    return WeakLabels(rows, counts)
