"""A live feed of synthetic posts in real time (what the demo streams while the dashboard runs)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from ingest.producer import PostProducer
from ingest.sources.synthetic import generate
from polarwatch.config import Topic
from polarwatch.records import Post

LOG = logging.getLogger(__name__)
LIVE_RATE = 120.0  # conversation-rate multiplier: ≈ 0.4 new threads/s (≈ 2–3 posts/s) on two topics


class LiveFeed:
    """Produces synthetic threads whose ``created_at`` is the wall clock, in a daemon thread."""

    def __init__(self, bootstrap: str, topic: str, dead_letter_topic: str,
                 topics: Sequence[Topic], rate: float = LIVE_RATE, seed: int = 1234) -> None:
        self.args = (bootstrap, topic, dead_letter_topic)
        self.topics, self.rate, self.seed = list(topics), rate, seed
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="polarwatch-live-feed",
                                        daemon=True)

    def start(self) -> LiveFeed:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        start = datetime.now(UTC)
        offset = start - start.replace(minute=0, second=0, microsecond=0)
        posts = generate(self.topics, days=7, seed=self.seed, rate=self.rate,
                         start=start.replace(minute=0, second=0, microsecond=0))
        with PostProducer(*self.args, linger_ms=5) as producer:
            for post in posts:
                due = post.created_at + offset  # shift the hour so the feed starts "now"
                while not self._stop.is_set():
                    wait = (due - datetime.now(UTC)).total_seconds()
                    if wait <= 0:
                        break
                    time.sleep(min(wait, 0.5))
                if self._stop.is_set():
                    break
                producer.send_post(_retime(post, due))
                self.sent += 1
                if self.sent % 50 == 0:
                    producer.flush()
        LOG.info("live feed stopped after %s posts", f"{self.sent:,}")


def _retime(post: Post, when: datetime) -> Post:
    """Move a post to `when`, with ids of its own so it never collides with the backfill."""
    return replace(post, created_at=when, id=f"live-{post.id}",
                   conversation_id=f"live-{post.conversation_id}",
                   parent_id=post.parent_id and f"live-{post.parent_id}")
