"""Text normalization and topic routing: pure functions, no I/O.

A post's ``text`` stays exactly as the platform gave it (Mastodon's HTML is converted to plain
text by :func:`html_to_text`, which is format conversion, not normalization). What routing and
the extractors look at is :func:`normalize_text` of it: HTML entities decoded, URLs and @mentions
replaced by placeholder tokens (the TweetEval convention: ``http`` and ``@user``), Unicode
compatibility forms folded (𝗴𝘂𝗻 → gun) and whitespace collapsed. It is deterministic and cheap,
so every stage can recompute it instead of storing a second text column.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from polarwatch.config import Topic

URL_TOKEN = "http"  # TweetEval / cardiffnlp models were trained with this placeholder
MENTION_TOKEN = "@user"

_URL_RE = re.compile(r"""(?:https?://|www\.)[^\s<>"']+""", re.IGNORECASE)
# @name or @name@instance.social (Mastodon), not an e-mail address (a word character before @)
_MENTION_RE = re.compile(r"(?<![\w@])@[\w.\-]+(?:@[\w\-]+(?:\.[\w\-]+)+)?")
_HASHTAG_RE = re.compile(r"(?<![\w#])#(\w+)")
_SPACE_RE = re.compile(r"\s+")
_BREAK_RE = re.compile(r"<br\s*/?>", re.IGNORECASE)
# [^<>]: a match cannot run past the next "<", so an unclosed "<" costs one scan to it, not to
# the end of the text (with [^>] a status of 256 KiB of "<" took 40 s: quadratic)
_PARA_RE = re.compile(r"</p\s*>\s*<p[^<>]*>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^<>]+>")


def html_to_text(content: str) -> str:
    """Plain text of an HTML post body (Mastodon ``content``): line breaks for ``<br>`` and
    paragraphs, tags dropped, entities decoded. URLs and mentions are kept as written."""
    text = _PARA_RE.sub("\n\n", content)
    text = _BREAK_RE.sub("\n", text)
    text = _TAG_RE.sub("", text)
    return html.unescape(text).strip()


def normalize_text(text: str) -> str:
    """The text that routing and scoring look at (see the module docstring)."""
    text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    text = _URL_RE.sub(URL_TOKEN, text)
    text = _MENTION_RE.sub(MENTION_TOKEN, text)
    return _SPACE_RE.sub(" ", text).strip()


def hashtags(text: str) -> list[str]:
    """Lower-cased hashtags (without ``#``) in order of appearance, URLs excluded."""
    return [h.lower() for h in _HASHTAG_RE.findall(_URL_RE.sub(" ", text))]


def _keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    terms = sorted({k.strip().lower() for k in keywords if k.strip()}, key=len, reverse=True)
    if not terms:
        return None
    alternation = "|".join(re.escape(t) for t in terms)
    # word boundaries that also work for "#tag" and "2a": no word character on either side
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class TopicRouter:
    """Assigns a post to the configured topic whose keywords/hashtags it mentions most often
    (ties go to the topic listed first in ``topics.toml``); None when it mentions none."""

    topics: tuple[Topic, ...]
    patterns: tuple[re.Pattern[str] | None, ...]

    @classmethod
    def from_topics(cls, topics: Sequence[Topic]) -> TopicRouter:
        return cls(tuple(topics), tuple(_keyword_pattern(t.keywords) for t in topics))

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def scores(self, text: str) -> dict[str, int]:
        norm = normalize_text(text)
        return {t.id: len(p.findall(norm)) for t, p in zip(self.topics, self.patterns,
                                                           strict=True) if p is not None}

    def route(self, text: str) -> str | None:
        best, best_hits = None, 0
        for topic_id, hits in self.scores(text).items():
            if hits > best_hits:
                best, best_hits = topic_id, hits
        return best
