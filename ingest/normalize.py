"""Text normalization and topic routing: pure functions, no I/O.

A post's ``text`` stays exactly as the platform gave it (Mastodon's HTML is converted to plain
text by :func:`html_to_text`, which is format conversion, not normalization). What routing and
the extractors look at is :func:`normalize_text` of it: HTML entities decoded, URLs and @mentions
replaced by placeholder tokens (the TweetEval convention: ``http`` and ``@user``), Unicode
compatibility forms folded (𝗴𝘂𝗻 → gun) and whitespace collapsed. It is deterministic and cheap,
so every stage can recompute it instead of storing a second text column.

Routing keywords go through the same normalization (:func:`normalize_keyword`), so a keyword
pasted decomposed (macOS "réforme") or full-width ("ｇｕｎ") matches the text it spells. A
keyword holding an @mention (``@POTUS``) is matched against the text with its mentions kept
(everything else normalized), since in the normalized text every mention is ``@user``; a
keyword holding a link is refused (:class:`~polarwatch.errors.ConfigError`): every link in a
post is ``http``, so it could match nothing but every link.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from polarwatch.config import Topic
from polarwatch.errors import ConfigError
from polarwatch.terms import whole_words

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


def normalize_text(text: str, *, mentions: bool = True) -> str:
    """The text that routing and scoring look at (see the module docstring); with
    ``mentions=False`` the @mentions are kept as written (what @mention keywords match)."""
    text = html.unescape(text)
    text = unicodedata.normalize("NFKC", text)
    text = _URL_RE.sub(URL_TOKEN, text)
    if mentions:
        text = _MENTION_RE.sub(MENTION_TOKEN, text)
    return _SPACE_RE.sub(" ", text).strip()


def normalize_keyword(keyword: str, topic: str = "?") -> tuple[str, bool]:
    """``keyword`` normalized as a post's text is, and whether it holds an @mention (then it
    is matched against the text with mentions kept). A keyword with a link is a ConfigError
    naming ``topic``: routing sees every link as ``http``."""
    norm = normalize_text(keyword, mentions=False)
    if _URL_RE.search(keyword) or _URL_RE.sub(URL_TOKEN, norm) != norm:
        raise ConfigError(f"topics.toml: topic {topic!r}: keyword {keyword!r} is a link, and "
                          f"routing reads every link in a post as {URL_TOKEN!r}, so it can "
                          f"never match; remove it, or route by a word or #hashtag instead")
    return norm, _MENTION_RE.search(norm) is not None


def hashtags(text: str) -> list[str]:
    """Lower-cased hashtags (without ``#``) in order of appearance, URLs excluded."""
    return [h.lower() for h in _HASHTAG_RE.findall(_URL_RE.sub(" ", text))]


def _keyword_pattern(terms: Iterable[str], exact: bool = False) -> re.Pattern[str] | None:
    """One pattern of normalized keywords (duplicates up to case dropped, longest first;
    `exact`: only identical ones, so that no keyword's own match is lost: the pattern's
    case-insensitive match does not equate all that casefold() does, e.g. ß and SS)."""
    unique = {(t if exact else t.casefold()): t for t in terms if t}
    terms = sorted(unique.values(), key=len, reverse=True)
    if not terms:
        return None
    # whole words that also work for "#tag", "2a" and Chinese inside unspaced text
    return re.compile(whole_words(terms), re.IGNORECASE)


@dataclass(frozen=True)
class TopicRouter:
    """Assigns a post to the configured topic whose keywords/hashtags it mentions most often
    (ties go to the topic listed first in ``topics.toml``); None when it mentions none."""

    topics: tuple[Topic, ...]
    patterns: tuple[re.Pattern[str] | None, ...]  # on normalize_text(post)
    mention_patterns: tuple[re.Pattern[str] | None, ...] = ()  # on it with mentions kept
    # every topic's keywords in one pattern each: a text neither finds matches no topic's
    # pattern (same boundaries and flags, so one alternative matching somewhere is found),
    # and is answered without a scan per topic (most of a live firehose matches none)
    any_word: re.Pattern[str] | None = None
    any_mention: re.Pattern[str] | None = None

    @classmethod
    def from_topics(cls, topics: Sequence[Topic]) -> TopicRouter:
        """The router of ``topics``; a ConfigError for a keyword that is a link."""
        words, mentions = [], []
        every: list[tuple[str, bool]] = []
        for t in topics:
            normed = [normalize_keyword(k, t.id) for k in t.keywords]
            words.append(_keyword_pattern(k for k, mention in normed if not mention))
            mentions.append(_keyword_pattern(k for k, mention in normed if mention))
            every += normed
        return cls(tuple(topics), tuple(words), tuple(mentions),
                   _keyword_pattern((k for k, mention in every if not mention), exact=True),
                   _keyword_pattern((k for k, mention in every if mention), exact=True))

    @property
    def ids(self) -> list[str]:
        return [t.id for t in self.topics]

    def unknown(self, topic: str) -> str | None:
        """Why a post naming `topic` is a dead letter (the stream's reason, known ids listed);
        None when topics.toml has it."""
        known = self.ids
        if topic in known:
            return None
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        return (f"topic {topic[:80]!r} is not in topics.toml (known: {shown}); add a [[topic]] "
                f"with that id and send these posts again (`polarwatch ingest file FILE "
                f"--restart`), or assign posts a known topic with `ingest file --topic ID`")

    def scores(self, text: str) -> dict[str, int]:
        norm = normalize_text(text)
        kept = normalize_text(text, mentions=False) if any(self.mention_patterns) else ""
        if self._finds_none(norm, kept):
            return {t.id: 0 for t, p, m in zip(self.topics, self.patterns,
                                                self.mention_patterns, strict=True)
                    if p is not None or m is not None}
        out = {}
        for i, (t, p) in enumerate(zip(self.topics, self.patterns, strict=True)):
            m = self.mention_patterns[i] if i < len(self.mention_patterns) else None
            if p is not None or m is not None:
                out[t.id] = ((len(p.findall(norm)) if p is not None else 0)
                             + (len(m.findall(kept)) if m is not None else 0))
        return out

    def _finds_none(self, norm: str, kept: str) -> bool:
        """Whether no keyword of any topic is in the text (False without the joint patterns:
        a router not made by :meth:`from_topics` scans every topic)."""
        if self.any_word is None and self.any_mention is None:
            return False
        return not ((self.any_word is not None and self.any_word.search(norm))
                    or (self.any_mention is not None and self.any_mention.search(kept)))

    def route(self, text: str) -> str | None:
        best, best_hits = None, 0
        for topic_id, hits in self.scores(text).items():
            if hits > best_hits:
                best, best_hits = topic_id, hits
        return best
