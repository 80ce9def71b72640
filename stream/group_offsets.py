"""The stream's consumed position, copied to a Kafka consumer group for broker retention."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

LOG = logging.getLogger(__name__)
STREAM_GROUP = "polarwatch-stream"  # consumer group the stream reports its progress under


class GroupCommitter:
    """Copies a reader's committed position to a Kafka consumer group.

    The stream's progress lives in Spark's checkpoint and the sink's batch markers; this copy only
    tells the broker what has been consumed, so ``polarwatch broker prune`` (ingest/retention.py)
    may delete record batches below it. It is written after the data is stored, so it never runs
    ahead of DuckDB. A failure is logged and retried with the next commit, never raised.
    """

    def __init__(self, bootstrap: str, group: str, topic: str,
                 security: dict[str, Any] | None = None) -> None:
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.security = security or {}  # [broker] security settings, kafka-python keywords
        self._consumer: Any = None

    def commit(self, offsets: dict[Any, int]) -> None:
        """`offsets`: next offset to read, per partition."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata

        todo = {TopicPartition(self.topic, int(p)): OffsetAndMetadata(int(o), "", -1)
                for p, o in offsets.items() if int(o) > 0}
        if not todo:
            return
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self.bootstrap, group_id=self.group,
                    enable_auto_commit=False, request_timeout_ms=30000, **self.security)
            self._consumer.commit(todo)
        except Exception as exc:  # the broker may be down: the next commit carries it
            LOG.warning(f"could not record the consumed offsets of {self.topic!r} in consumer "
                        f"group {self.group!r} (broker retention waits for them): {exc}")
            self.close()

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
