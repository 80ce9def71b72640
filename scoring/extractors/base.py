"""The tiny backend interface every extractor implements, and what every backend says of a post
with no text."""

from __future__ import annotations

import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels

NO_TEXT = "no text: nothing to label"  # the explanation of a blank post's labels
# Characters that show nothing, besides whitespace and the format characters (Unicode category
# Cf: zero-width space and joiners, BOM, word joiner, soft hyphen, bidi marks, U+180E, tags):
# the combining grapheme joiner, the Hangul fillers and the braille blank, used as invisible
# "text" where an empty post is refused.
INVISIBLE = frozenset("\u034f\u115f\u1160\u3164\uffa0\u2800")
VARIATION_SELECTORS = (range(0xFE00, 0xFE10), range(0xE0100, 0xE01F0))


@dataclass(frozen=True, slots=True)
class PostPair:
    """What an extractor sees: a post, its topic and (for replies) its parent's text."""

    post_id: str
    text: str
    topic: str
    parent_text: str | None = None  # None for a root, or when the parent is not known yet


@dataclass(frozen=True, slots=True)
class Bounds:
    """The finite range a backend's numeric option must fall in (checked by the registry for
    ``-O BACKEND.KEY=VALUE`` and ``[extractor]`` alike); ``what`` says what the number is."""

    low: float
    high: float
    what: str
    above_low: bool = False  # `low` itself is refused (a timeout of 0 s)

    def holds(self, value: float) -> bool:
        """Whether `value` is in range (NaN and infinities never are)."""
        return (self.low < value if self.above_low else self.low <= value) and value <= self.high

    def __str__(self) -> str:
        low = f"above {number(self.low)}" if self.above_low else f"from {number(self.low)}"
        return (f"{low} {'and at most' if self.above_low else 'to'} {number(self.high)} "
                f"({self.what})")


def number(x: float) -> str:
    """`x` as a person writes it: 1,000,000 and 0.5 (not 1e+06)."""
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


class OverBudget(BackendError):
    """A call the caller's budget (the cascade's ``llm_calls_per_minute``) did not allow: the
    post was not sent."""


class Extractor(ABC):
    """Labels a batch of posts. Implementations load their model once, in ``__init__``.

    Instances are built inside each Spark executor iterator, so constructor arguments must be
    picklable (topics and plain options), never loaded models.
    """

    name: str = "base"
    # True for a backend that asks ``call_gate`` before each call it makes (each HTTP attempt,
    # retries included) and raises OverBudget when refused; the cascade then charges its
    # budget per call instead of per post.
    counts_calls: bool = False
    call_gate: Callable[[], bool] | None = None
    # The range of each numeric keyword option (every int and float one has an entry).
    option_bounds: ClassVar[dict[str, Bounds]] = {}

    def __init__(self, topics: Sequence[Topic]) -> None:
        self.topics = {t.id: t for t in topics}

    @abstractmethod
    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        """Return one Labels per input, in order. Roots get ``agreement=None``."""


def invisible(ch: str) -> bool:
    """Whether the character `ch` shows nothing (see ``INVISIBLE``)."""
    return (ch.isspace() or ch in INVISIBLE or unicodedata.category(ch) == "Cf"
            or any(ord(ch) in r for r in VARIATION_SELECTORS))


def no_text(text: str) -> bool:
    """Whether `text` is empty once whitespace and invisible characters are removed.
    Punctuation is text: "." is not blank."""
    return all(invisible(ch) for ch in text.strip())  # stops at the first visible character


def blank(pair: PostPair) -> bool:
    """A post with no text (empty, or only whitespace and invisible characters such as a
    zero-width space or a BOM): there is nothing to label."""
    return no_text(pair.text)


def no_text_labels(pair: PostPair, backend: str) -> Labels:
    """What every backend says of a blank post: no stance, no hostility, no emotion, and no
    confidence claimed (0.0), so nothing is read into an empty string."""
    reply = pair.parent_text is not None
    return Labels(post_id=pair.post_id, stance="unclear", affect="no",
                  agreement="unclear" if reply else None, emotion="neutral", intensity=0.0,
                  stance_conf=0.0, affect_conf=0.0, agreement_conf=0.0 if reply else None,
                  emotion_conf=0.0, backend=backend, explanation=NO_TEXT)


def with_blank_posts(backend: str, batch: Sequence[PostPair],
                     label: Callable[[Sequence[PostPair]], list[Labels]]) -> list[Labels]:
    """`label` on the posts that have text; blank posts get :func:`no_text_labels`, in order."""
    texts = [p for p in batch if not blank(p)]
    done = iter(label(texts) if texts else [])
    return [no_text_labels(p, backend) if blank(p) else next(done) for p in batch]
