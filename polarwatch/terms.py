"""Whole-word matching of the words a topic is given in ``topics.toml`` (routing keywords, the
lexicon's stance terms), in any script.

A term matches as a whole word: no word character right before or after it, so "gun" is not
found in "begun". Scripts written without spaces between words (Chinese, Japanese, Thai, Lao,
Khmer, Myanmar) have no such edges: "枪支" must be found in "我支持枪支管制". So the edge of a
term that is a character of one of those scripts needs no boundary there; Korean, whose
particles attach to the word before them ("총기를"), is treated the same way. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Hangul, kana, CJK ideographs (with extensions and compatibility forms), Thai, Lao, Myanmar, Khmer
UNSPACED = ("\u0e00-\u0eff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u3040-\u30ff\u3130-\u318f"
            "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f")
_UNSPACED = re.compile(f"[{UNSPACED}]")


def whole_words(terms: Sequence[str], not_after: str = "") -> str:
    """A regular expression matching any of `terms` (longest first within each kind of edge)
    as a whole word: no word character right before or after it, and none of the characters
    `not_after` right before it (the lexicon's "#"); a term's edge in a script written without
    spaces needs no boundary. Terms must be non-empty."""
    groups: dict[tuple[bool, bool], list[str]] = {}
    for term in terms:
        edges = (not _UNSPACED.match(term[0]), not _UNSPACED.match(term[-1]))
        groups.setdefault(edges, []).append(re.escape(term))
    before, after = rf"(?<![\w{re.escape(not_after)}])", r"(?!\w)"
    return "|".join(f"{before if lead else ''}(?:{'|'.join(alts)}){after if trail else ''}"
                    for (lead, trail), alts in groups.items())
