"""The only kafka-python producer in polarwatch.

Every record is validated against the JSON Schema generated from :class:`polarwatch.records.Post`
before it is sent. Valid posts go to the posts topic keyed by conversation id (a thread stays in
one partition); invalid input goes to the dead-letter topic with the reason in a header and the
original bytes as the value. :meth:`PostProducer.flush` waits for the broker to confirm delivery.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from polarwatch.errors import BrokerError
from polarwatch.records import Post, post_to_dict, validate_post

DEAD_LETTER_REASON_HEADER = "polarwatch-reason"
FLUSH_EVERY = 50_000  # confirm delivery at least this often (bounds memory of pending futures)


@dataclass
class ProduceStats:
    sent: int = 0
    dead_lettered: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


def encode(post: Post) -> bytes:
    return json.dumps(post_to_dict(post), ensure_ascii=False, separators=(",", ":")).encode()


class PostProducer:
    """Validating producer: ``send_post``/``send_raw`` then ``flush`` (or use as a context)."""

    def __init__(self, bootstrap: str, topic: str, dead_letter_topic: str,
                 compression: str | None = "zstd", **kafka_options: Any) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        self.topic, self.dead_letter_topic = topic, dead_letter_topic
        self.stats = ProduceStats()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap, acks="all", compression_type=compression,
                linger_ms=20, batch_size=256 * 1024, retries=5, **kafka_options)
        except KafkaError as exc:
            raise BrokerError(f"cannot connect a producer to {bootstrap}: {exc}; start the "
                              f"broker with `polarwatch broker start`") from exc
        self._pending: list[Any] = []

    def send_post(self, post: Post) -> None:
        self.send_raw(encode(post))

    def send_raw(self, raw: bytes) -> bool:
        """Validate raw JSON bytes; send to the posts topic or dead-letter it. True when valid."""
        reason: str | None
        obj: Any = None
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            reason = f"malformed JSON: {exc}"
        else:
            reason = validate_post(obj)
        if reason is not None:
            self._pending.append(self._producer.send(
                self.dead_letter_topic, value=raw,
                headers=[(DEAD_LETTER_REASON_HEADER, reason.encode())]))
            self.stats.dead_lettered += 1
            kind = reason.split(":")[0]
            self.stats.reasons[kind] = self.stats.reasons.get(kind, 0) + 1
            return False
        key = str(obj["conversation_id"]).encode()
        self._pending.append(self._producer.send(self.topic, key=key, value=raw))
        self.stats.sent += 1
        if len(self._pending) >= FLUSH_EVERY:
            self.flush()
        return True

    def send_many(self, posts: Iterable[Post]) -> None:
        for post in posts:
            self.send_post(post)

    def flush(self, timeout: float = 60.0) -> None:
        """Block until every record sent so far is confirmed by the broker (raises otherwise)."""
        self._producer.flush(timeout=timeout)
        failed = [f for f in self._pending if f.failed()]
        self._pending.clear()
        if failed:
            raise BrokerError(f"{len(failed)} record(s) were not confirmed by the broker: "
                              f"{failed[0].exception}")

    def close(self) -> None:
        self.flush()
        self._producer.close()

    def __enter__(self) -> PostProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
