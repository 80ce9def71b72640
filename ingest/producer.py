"""The only kafka-python producer in polarwatch.

Every record is checked against the record contract (:mod:`polarwatch.records`: the JSON
Schema generated from :class:`~polarwatch.records.Post` plus size, nesting and ``created_at``
range, the latter against the wall clock + ``max_future_skew``) before it is sent. Valid posts
go to the posts topic keyed by conversation id (a thread stays in one partition); invalid input
goes to the dead-letter topic with the reason and the original size in headers and the original
bytes, cut to ``MAX_DEAD_LETTER_BYTES`` (kafka-python refuses requests over 1 MB), as the value.
A dead letter whose origin is known (a source and a position in it, e.g. a file's path and row)
also carries a key (:func:`dead_letter_key`) in a header: the stream stores one dead letter per
key, so a record sent again after ``--restart`` or a crash is not stored twice.
No input makes the producer raise; :meth:`PostProducer.flush` waits for the broker to confirm
delivery (and raises when it cannot), and keeps in :attr:`PostProducer.delivered` the highest
offset confirmed per topic and partition with a digest of the value stored there
(:func:`value_digest`): a progress file saves them, so that a resume can tell whether the broker
still holds what it says was delivered (ingest/sources/progress.py).

With ``dedup=True`` a post already sent (or marked seen with :meth:`PostProducer.mark_seen`) in
this producer's lifetime is not sent again when it comes with the same content
(:data:`~polarwatch.records.POST_CONTENT`, compared as the stream compares it: ``created_at`` as
an instant, ``parent_id`` after the root rule); the last ``dedup_max_ids`` ids are remembered. A post
id that comes again with other content is sent (counted in ``resent_changed``): the stream keeps
the first version and dead-letters the other with the fields that differ, so no version is lost
without a trace. Across processes, duplicates are removed downstream (the sink keys posts by id).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cachetools import LRUCache

from polarwatch.errors import BrokerError
from polarwatch.records import (
    DEAD_LETTER_KEY_HEADER,
    DEAD_LETTER_REASON_HEADER,
    DEAD_LETTER_SIZE_HEADER,
    DEFAULT_MAX_FUTURE_SKEW,
    MAX_RECORD_BYTES,
    POST_CONTENT,
    Post,
    parent_or_root,
    post_to_dict,
)
from polarwatch.validation import cut_reason, parse_record, truncate_raw, validate_post

LOG = logging.getLogger(__name__)
FLUSH_EVERY = 50_000  # confirm delivery at least this often (bounds memory of pending futures)
DEDUP_MAX_IDS = 1_000_000  # ids remembered for de-duplication (~100 MB at worst)

SendResult = Literal["sent", "dead_letter", "duplicate"]
# Where a record came from: (the source, e.g. a file's resolved path; the position in it)
Origin = tuple[str, Any]


def value_digest(value: bytes | None) -> str:
    """What identifies a record's value (16 hex digits): compared with the record the broker
    holds at a confirmed offset."""
    return hashlib.blake2b(value or b"", digest_size=8).hexdigest()


def dead_letter_key(origin: Origin, raw: bytes) -> str:
    """The identity of a dead letter: a sha256 of its origin and its bytes. The same record
    sent again has the same key; two equal records at two positions have two."""
    where = json.dumps(list(origin), ensure_ascii=True, default=str).encode()
    return hashlib.sha256(where + b"\n" + raw).hexdigest()


@dataclass
class ProduceStats:
    sent: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # valid posts not sent again: the same id and content was already sent
    resent_changed: int = 0  # ids sent again with other content (the stream dead-letters them)
    reasons: dict[str, int] = field(default_factory=dict)


def encode(post: Post) -> bytes:
    return json.dumps(post_to_dict(post), ensure_ascii=False, separators=(",", ":")).encode()


class PostProducer:
    """Validating producer: ``send_post``/``send_raw`` then ``flush`` (or use as a context)."""

    def __init__(self, bootstrap: str, topic: str, dead_letter_topic: str,
                 compression: str | None = "zstd", *, dedup: bool = False,
                 dedup_max_ids: int = DEDUP_MAX_IDS,
                 max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
                 **kafka_options: Any) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.topic, self.dead_letter_topic = topic, dead_letter_topic
        self.max_future_skew = max_future_skew
        self.stats = ProduceStats()
        try:
            # Not idempotent: a retry after a Tansu restart was answered "duplicate sequence"
            # for a batch the broker had not stored (acknowledged posts lost), and its producer
            # state broke later produces. A plain retry may store a post twice in the topic;
            # the stream keys posts by id, so it is stored once.
            options = {"acks": "all", "linger_ms": 20, "batch_size": 256 * 1024, "retries": 5,
                       "enable_idempotence": False,
                       **kafka_options}  # callers may override any default
            self._producer = KafkaProducer(bootstrap_servers=bootstrap,
                                           compression_type=compression, **options)
        except KafkaError as exc:
            raise BrokerError(f"cannot connect a producer to {bootstrap}: {exc}; start the "
                              f"broker with `polarwatch broker start`") from exc
        self._pending: list[tuple[Any, str]] = []  # (future, value_digest)
        # topic -> partition -> (highest offset the broker confirmed, value_digest there)
        self.delivered: dict[str, dict[int, tuple[int, str]]] = {}
        self._restarted: set[str] = set()  # topics seen beginning again (warned once)
        self.dedup = dedup
        # (platform, id) -> digest of the content last sent under it
        self._seen: LRUCache[tuple[str, str], bytes] = LRUCache(maxsize=max(1, dedup_max_ids))

    def send_post(self, post: Post) -> None:
        self.send_obj(post_to_dict(post))

    def send_raw(self, raw: bytes, origin: Origin | None = None) -> bool:
        """Validate raw JSON bytes; send to the posts topic or dead-letter it (keyed by
        `origin`, when known). True when valid (a valid duplicate skipped under ``dedup`` is
        also True)."""
        obj, reason = parse_record(raw)
        if reason is not None:
            self.dead_letter(raw, reason, origin=origin)
            return False
        return self._send_valid(obj, raw, raw, origin) != "dead_letter"

    def send_obj(self, obj: Any, original: bytes | None = None,
                 origin: Origin | None = None) -> SendResult:
        """Validate a post-shaped JSON object (e.g. mapped from a CSV row); send it, or
        dead-letter `original` (the bytes as they came in; default: `obj` as JSON)."""
        return self._send_valid(obj, None, original, origin)

    def _send_valid(self, obj: Any, value: bytes | None, original: bytes | None,
                    origin: Origin | None = None) -> SendResult:
        reason = validate_post(obj, max_future_skew=self.max_future_skew)
        if reason is None and value is None:
            value, reason = _encode(obj)
        if reason is not None or value is None:
            self.dead_letter(original if original is not None else _escaped(obj),
                             reason or "record cannot be encoded", origin=origin)
            return "dead_letter"
        if self.dedup:
            key = (obj["platform"], obj["id"])
            digest, before = _digest(obj), self._seen.get(key)
            if before == digest:
                self.stats.duplicates += 1
                return "duplicate"
            if before is not None:
                self.stats.resent_changed += 1
            self._seen[key] = digest
        self._pending.append((self._producer.send(
            self.topic, key=str(obj["conversation_id"]).encode(), value=value),
            value_digest(value)))
        self.stats.sent += 1
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
        return "sent"

    def dead_letter(self, raw: bytes, reason: str, original_size: int | None = None, *,
                    origin: Origin | None = None) -> None:
        """Send the original bytes (cut to MAX_DEAD_LETTER_BYTES) to the dead-letter topic with
        the reason, the original size (`original_size` when `raw` is only the start of the
        record, as a source kept it) and, when `origin` is known, the key in headers."""
        raw = raw if isinstance(raw, bytes) else _escaped(raw)
        value, size = truncate_raw(raw)
        size = max(size, original_size or 0)
        reason = cut_reason(reason)
        headers = [(DEAD_LETTER_REASON_HEADER, reason.encode()),
                   (DEAD_LETTER_SIZE_HEADER, str(size).encode())]
        if origin is not None:
            headers.append((DEAD_LETTER_KEY_HEADER, dead_letter_key(origin, raw).encode()))
        self._pending.append((self._producer.send(
            self.dead_letter_topic, value=value, headers=headers), value_digest(value)))
        self.stats.dead_lettered += 1
        kind = reason.split(":")[0]
        self.stats.reasons[kind] = self.stats.reasons.get(kind, 0) + 1

    def mark_seen(self, post: Mapping[str, Any]) -> None:
        """Remember `post` (a post-shaped mapping) as sent with its content (used when resuming:
        rows before the cursor). Ids are unique per platform only."""
        # the least recently sent is forgotten past dedup_max_ids
        self._seen[(str(post.get("platform")), str(post.get("id")))] = _digest(post)

    def send_many(self, posts: Iterable[Post]) -> None:
        for post in posts:
            self.send_post(post)

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every record sent so far is confirmed by the broker (raises otherwise);
        :attr:`delivered` then holds the highest offsets confirmed."""
        self._producer.flush(timeout=timeout)
        failed = []
        # compared with the offsets of earlier flushes only: within one, a batch the producer
        # retried may be stored after one sent later (kafka-python re-queues it first), so
        # its lower offset is confirmed last on a healthy broker (review)
        before = {(t, p): o for t, parts in self.delivered.items() for p, (o, _) in parts.items()}
        for future, digest in self._pending:
            if future.failed():
                failed.append(future)
            elif future.succeeded():
                meta = future.value  # RecordMetadata: topic, partition, offset
                parts = self.delivered.setdefault(meta.topic, {})
                if meta.offset >= 0 and meta.offset >= parts.get(meta.partition, (-1, ""))[0]:
                    parts[meta.partition] = (meta.offset, digest)
                earlier = before.get((meta.topic, meta.partition), -1)
                if 0 <= meta.offset < earlier:  # the old marks stay: the next resume compares
                    self._began_again(meta.topic, meta.partition, earlier, meta.offset)
        self._pending.clear()
        if failed:
            raise BrokerError(f"{len(failed)} record(s) were not confirmed by the broker: "
                              f"{failed[0].exception}")

    def _began_again(self, topic: str, partition: int, highest: int, offset: int) -> None:
        """A confirmed offset below one confirmed before: the topic began again under this
        run (a memory broker restarted, the topic made anew). Said once per topic."""
        if topic in self._restarted:
            return
        self._restarted.add(topic)
        LOG.warning(f"topic {topic!r} began again while this run sent to it (partition "
                    f"{partition}: offset {offset:,} confirmed after {highest:,}): the broker "
                    f"restarted without its storage, and what it held that the stream had not "
                    f"read is lost to it. This run goes on into the new topic; run this ingest "
                    f"again afterwards to send the lost posts (a live source goes back by "
                    f"itself, `ingest file` needs --restart), and `polarwatch stream --reset`")

    def close(self) -> None:
        self.flush()
        self._producer.close()

    def __enter__(self) -> PostProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(obj: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """A validated object as compact JSON bytes, or None and why it cannot be sent."""
    try:
        value = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    except (UnicodeError, ValueError, TypeError, RecursionError) as exc:
        return None, f"record cannot be encoded as JSON: {exc}"
    if len(value) > MAX_RECORD_BYTES:
        return None, f"record: {len(value):,} bytes, more than the {MAX_RECORD_BYTES:,} allowed"
    return value, None


def _digest(post: Mapping[str, Any]) -> bytes:
    """16 bytes that differ (but for a 2**-64 chance) when a post's content differs, compared
    as the stream compares it: ``created_at`` as an instant (12:00+00:00 is 14:00+02:00) and
    ``parent_id`` after the root rule (``""`` or the post's own id is no parent)."""
    values = {name: post.get(name) for name in POST_CONTENT}
    values["created_at"] = _instant(values["created_at"])
    values["parent_id"] = parent_or_root(post.get("id"), values["parent_id"])
    content = json.dumps(list(values.values()), ensure_ascii=False,
                         default=str).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(content, digest_size=16).digest()


def _instant(value: Any) -> Any:
    """An ISO-8601 time with offset as the UTC instant it names; anything else as it is (a row
    marked seen before the resume point was never validated)."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    except (TypeError, ValueError, OverflowError):
        return value


def _escaped(obj: Any) -> bytes:
    """Any value as ASCII JSON (lone surrogates escaped), for a dead letter; never raises."""
    try:
        return json.dumps(obj, ensure_ascii=True, default=repr).encode()
    except (ValueError, TypeError, RecursionError):
        pass
    try:
        return repr(obj).encode("utf-8", "backslashreplace")
    except (ValueError, RecursionError):
        return f"<a {type(obj).__name__} that cannot be shown>".encode()
