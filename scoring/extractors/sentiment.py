"""VADER's compound score on a bounded prefix of a post: the one place any backend asks VADER.

VADER's ``polarity_scores`` is super-linear in the number of words (its ``but`` and negation
checks rescan the whole word list for each sentiment word): a 49 KB "no but no but ..." post
took 34 s, a 1 MB one more than 10 minutes. So VADER reads at most ``VADER_MAX_CHARS``.
"""

from __future__ import annotations

# At most this many characters of a post reach VADER, cut at a word boundary. Measured worst
# case (a repeated "no but " / "NO BUT " / ":( but ", the patterns that trip VADER's rescans):
# 23-27 ms at 1,000 characters, 46-55 ms at 1,500, 77 ms at 2,000; ordinary text takes under
# 2 ms at 1,000. 1,000 characters is more than three tweets (280 each) and more than the
# `learned` encoder itself reads (at most 128 word pieces, by default 96: its first 70 and
# last 24, about 500-700 characters of English), so no label of an ordinary post changes.
VADER_MAX_CHARS = 1_000


def vader_text(text: str) -> str:
    """`text` itself if it has at most ``VADER_MAX_CHARS`` characters, else its longest prefix
    of at most that many that ends at a word boundary (a single word longer than that is cut
    at the limit)."""
    if len(text) <= VADER_MAX_CHARS:
        return text
    head = text[:VADER_MAX_CHARS + 1]  # a space just past the limit ends the last whole word
    for i in range(VADER_MAX_CHARS, 0, -1):
        if head[i].isspace() and head[:i].strip():
            return head[:i].rstrip()
    return head[:VADER_MAX_CHARS]


class Vader:
    """VADER's sentiment analyser, reading at most :data:`VADER_MAX_CHARS` of each text."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def compound(self, text: str) -> float:
        """VADER's compound score (-1 to 1) of the bounded prefix of `text`."""
        return float(self._analyzer.polarity_scores(vader_text(text))["compound"])
