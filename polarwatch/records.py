"""The one record contract.

`Post`, `Labels` and `Interaction` are the only definitions of what flows through polarwatch,
with the domain of every field (the limits below) and the dead-letter headers. Two modules are
built on it and nothing else defines a record:

- :mod:`polarwatch.schemas` generates the ingest JSON Schema, the Spark ``StructType`` and the
  DuckDB columns from these dataclasses, so a field added here appears everywhere at once
  (``tests/polarwatch/test_records.py`` asserts they agree);
- :mod:`polarwatch.validation` checks incoming bytes against that JSON Schema and the limits,
  and turns a valid JSON object into a :class:`Post`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from polarwatch.errors import SchemaError

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 10_000  # longer texts are dead-lettered as oversize

# The domain of every field (polarwatch.schemas.json_schema states it; anything outside is
# dead-lettered with a reason).
MAX_ID_CHARS = 256  # ids, author ids, conversation ids: platform ids are < 100 characters
MAX_NAME_CHARS = 64  # platform, topic, lang (a BCP-47 tag is at most 35)
MAX_TIMESTAMP_CHARS = 64  # an ISO-8601 string with offset and nanoseconds is ~35
FIELD_MAX_CHARS: dict[str, int] = {
    "id": MAX_ID_CHARS, "author_id": MAX_ID_CHARS, "conversation_id": MAX_ID_CHARS,
    "parent_id": MAX_ID_CHARS, "platform": MAX_NAME_CHARS, "topic": MAX_NAME_CHARS,
    "lang": MAX_NAME_CHARS, "text": MAX_TEXT_CHARS, "created_at": MAX_TIMESTAMP_CHARS}
# Characters no field may hold: NUL and lone UTF-16 surrogates (not encodable as UTF-8, so
# Kafka, Arrow and DuckDB cannot carry them). Ids, names and timestamps also exclude every
# other control character; texts keep tab, newline and carriage return and the rest of C0/DEL.
TEXT_FORBIDDEN = "[\\x00\\ud800-\\udfff]"
NAME_FORBIDDEN = "[\\x00-\\x1f\\x7f\\ud800-\\udfff]"
# Oldest accepted created_at: before the social platforms we read, and far inside the range
# pandas (1677..2262) and Spark can hold.
MIN_CREATED_AT = datetime(2000, 1, 1, tzinfo=UTC)
# Newest accepted created_at = the ingest clock + this skew (clocks differ; a post from the
# future would move the stream's watermark past every real post). [ingest] max_future_skew_hours.
DEFAULT_MAX_FUTURE_SKEW = timedelta(days=1)
MAX_RECORD_BYTES = 256 * 1024  # one encoded record (a 10,000-character text is <= 40 KiB)
MAX_NESTING = 64  # JSON depth of an input row (posts are flat; exports nest a few levels)
MAX_DEAD_LETTER_BYTES = 64 * 1024  # raw bytes kept per dead letter (the original size is kept)
MAX_REASON_CHARS = 500  # a dead-letter reason longer than this is cut
# What makes two records of one post id (platform, id) the same post: every field of the record
# contract except the key and schema_version (ingest's producer and the stream's sink compare it)
POST_CONTENT = ("author_id", "text", "created_at", "topic", "conversation_id", "parent_id", "lang")

# Kafka headers of a dead-letter record (written by ingest, read by the stream's drain)
DEAD_LETTER_REASON_HEADER = "polarwatch-reason"
DEAD_LETTER_SIZE_HEADER = "polarwatch-original-size"  # bytes of the record before it was cut
# where the record came from + its bytes, hashed: the same record sent again is one dead letter
DEAD_LETTER_KEY_HEADER = "polarwatch-dead-letter-key"

Stance = Literal["pro", "anti", "unclear"]
Affect = Literal["yes", "no", "unclear"]
Agreement = Literal["agree", "disagree", "unclear"]
Emotion = Literal["anger", "joy", "optimism", "sadness", "neutral"]

STANCES: tuple[str, ...] = get_args(Stance)
AFFECTS: tuple[str, ...] = get_args(Affect)
AGREEMENTS: tuple[str, ...] = get_args(Agreement)
# The tasks an analyst labels (``tables.AnalystLabel.task``) and the values each may take
LABEL_TASKS: dict[str, tuple[str, ...]] = {"stance": STANCES, "affect": AFFECTS,
                                           "agreement": AGREEMENTS}
EMOTIONS: tuple[str, ...] = get_args(Emotion)


@dataclass(frozen=True, slots=True)
class Post:
    """One social-media post as it arrives at ingest."""

    id: str
    platform: str
    author_id: str
    text: str
    created_at: datetime  # timezone-aware
    topic: str
    conversation_id: str
    parent_id: str | None = None  # None for a conversation root
    lang: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise SchemaError(f"Post {self.id!r}: created_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Labels:
    """What an extractor says about one post (and, for replies, about its parent link)."""

    post_id: str
    stance: Stance
    affect: Affect
    agreement: Agreement | None  # None for conversation roots
    emotion: Emotion
    intensity: float  # 0..1, strength of the expressed sentiment
    stance_conf: float
    affect_conf: float
    agreement_conf: float | None
    emotion_conf: float
    backend: str
    explanation: str | None = None


@dataclass(frozen=True, slots=True)
class Interaction:
    """A scored reply→parent pair (the paper's rule table)."""

    post_id: str
    parent_id: str
    conversation_id: str
    topic: str
    created_at: datetime
    score: int  # 0..10
    rule: str  # which row of the rule table fired, e.g. "same|hostile|agree"
    platform: str = ""  # the reply's (and its parent's) platform: ids are unique per platform


RECORDS: dict[str, type] = {"post": Post, "labels": Labels, "interaction": Interaction}


def parent_or_root(post_id: Any, parent_id: Any) -> str | None:
    """The parent a post names, or None for a conversation root: ``parent_id`` absent, empty or
    the post's own id (a post cannot reply to itself). The stream, ``ingest file`` and ``label``
    apply this one rule (:func:`polarwatch.validation.parent_of` for a record object)."""
    return None if not parent_id or parent_id == post_id else str(parent_id)


def post_to_dict(post: Post) -> dict[str, Any]:
    """The JSON object of a post (``created_at`` as ISO-8601 with its offset)."""
    data = dataclasses.asdict(post)
    data["created_at"] = post.created_at.isoformat()
    return data
