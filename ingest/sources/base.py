"""The source interface and the one loop that moves records from a source to the producer.

A :class:`Source` yields :class:`SourceRecord`\\ s, each carrying the *position* to resume after
it (a row index, a Jetstream ``time_us``, a Mastodon status id). :func:`pump` routes records to a
topic, hands them to the :class:`~ingest.producer.PostProducer` and, only after
``producer.flush()`` has confirmed delivery, saves the position in a :class:`Checkpoint`. A crash
therefore resumes after the last *confirmed* record: nothing is lost, and at most the records sent
after that checkpoint are sent twice (the DuckDB sink keeps one row per post id).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from ingest.normalize import TopicRouter
from polarwatch.errors import PolarwatchError

Position = Any  # JSON-serializable: int row index, int time_us, str status id, ...
# conversation → topic pairs a live source remembers across restarts (the oldest written are
# forgotten past this; ~100 bytes each on disk)
CONVERSATIONS_SAVED = 2_000_000
LOG = logging.getLogger(__name__)


class SourceError(PolarwatchError):
    """A source cannot be read (bad file, bad mapping, server refuses us)."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One input record. `post` is a post-shaped dict (``created_at`` an ISO string; ``topic``
    may be missing and is then routed), or None when `error` says why it cannot be one. `raw`
    is the original bytes, kept for the dead-letter topic. `replayed` records lie before the
    resume position: they rebuild routing/dedup state but are not sent again."""

    position: Position
    post: dict[str, Any] | None
    raw: bytes
    error: str | None = None
    replayed: bool = False
    raw_size: int | None = None  # the original size when `raw` holds only its start


class Source(ABC):
    """Anything that yields records from a resume position (None = from the start / now).

    A live source may also yield None while idle, so the caller can confirm and checkpoint."""

    name: str = "source"
    # A live source ends at this time.monotonic() value, mid-read too (None: never); set it
    # before records(). `connections` counts the connections that opened, `last_error` says
    # why the last attempt failed: together they tell "unreachable" from "quiet".
    deadline: float | None = None
    connections: int = 0
    last_error: str | None = None
    # the position given to records() is one a run saved (its record was sent), not a
    # --cursor the user named (its record is wanted): a live source replaying it drops it
    position_was_sent: bool = True

    @abstractmethod
    def records(self, position: Position | None) -> Iterator[SourceRecord | None]: ...

    def time_left(self, cap: float) -> float:
        """`cap` seconds, or fewer when the deadline comes sooner (at least 0.1 s)."""
        if self.deadline is None:
            return cap
        return max(0.1, min(cap, self.deadline - time.monotonic()))

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def wait(self, delay: float, sleep: Callable[[float], None]) -> bool:
        """Sleep `delay` seconds of backoff, cut short at the deadline; False once it passed
        (the reconnect loop then ends, and the run with it)."""
        if self.expired():
            return False
        sleep(self.time_left(delay) if self.deadline is not None else delay)
        return not self.expired()

    def checkpoint_key(self) -> str:
        """Identifies this source's progress file (same source → same file)."""
        return self.name

    def cursor_including(self, position: Position) -> Position | None:
        """The cursor whose run starts with the record at `position` (its ``--cursor``):
        where a run goes back to after the broker lost what it sent (live_progress.py); None
        when no cursor says so."""
        return position


class LruMap(LRUCache[str, str]):
    """A bounded str → str map that forgets the least recently used keys; it iterates in the
    order keys were last written (``put``), oldest first."""

    def __init__(self, max_items: int = 500_000) -> None:
        super().__init__(maxsize=max_items)

    def put(self, key: str, value: str) -> None:
        self.pop(key, None)  # re-inserted: iteration order is write order
        self[key] = value


class ThreadIndex:
    """Conversation ids for sources that only name a post's parent (Mastodon, some exports):
    a reply joins its parent's conversation when the parent was seen, else the parent's id
    (the best guess without an API call for the thread)."""

    def __init__(self, max_items: int = 500_000) -> None:
        self._conv = LruMap(max_items)
        self._awaited: LRUCache[str, int] = LRUCache(maxsize=max_items)  # unseen parent: replies
        self.early = 0  # replies read before their parent (counted when the parent comes)

    def conversation(self, post_id: str, parent_id: str | None, known: str | None = None) -> str:
        """`known` (the post's own conversation id, when its row names one) is kept for replies."""
        self.early += self._awaited.pop(post_id, 0)
        if parent_id is not None and parent_id not in self._conv:
            self._awaited[parent_id] = self._awaited.get(parent_id, 0) + 1
        conv = known or (post_id if parent_id is None else self._conv.get(parent_id, parent_id))
        self._conv.put(post_id, conv)
        return conv


class Checkpoint:
    """Progress file ``<state_dir>/<kind>-<sha1 of key>.json`` written atomically. A key's
    non-UTF-8 file name (surrogates, ``\\udce9``) is hashed as its bytes, escaped in JSON."""

    def __init__(self, state_dir: Path, kind: str, key: str) -> None:
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.path = Path(state_dir) / f"{kind}-{digest}.json"
        self.key = key

    def load(self) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise SourceError(f"progress file {self.path} is corrupt ({exc}); delete it or pass "
                              f"--restart") from exc
        return data

    def save(self, position: Position, **extra: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"key": self.key, "position": position,
                "updated_at": datetime.now(UTC).isoformat(), **extra}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def resume_live(self, extra: Callable[[], dict[str, Any]] | None = None,
                    saved: dict[str, Any] | None = None
                    ) -> tuple[Position | None, TopicMemory, Callable[[Position], None]]:
        """For live sources: the saved position, the conversation → topic map kept next to the
        progress file (so replies to threads routed before a restart keep their topic, however
        old the thread) and a `save` function for :func:`pump` that commits the map, then the
        position with the fields `extra()` gives. `saved`: the progress file's content when the
        caller has read it already."""
        saved = saved if saved is not None else self.load() or {}
        conversations = TopicMemory(self.path.with_suffix(".conversations.sqlite"))
        for conv, topic in (saved.get("conversation_topics") or {}).items():  # older files
            conversations.put(conv, topic)

        def save(position: Position) -> None:
            conversations.commit()
            self.save(position, **(extra() if extra is not None else {}))

        return saved.get("position"), conversations, save


class TopicMemory:
    """A conversation → topic map in SQLite: every pair is written once, committed with the
    position, and the oldest-written are forgotten past `max_items`."""

    def __init__(self, path: Path, max_items: int = CONVERSATIONS_SAVED) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_items = max_items
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute("CREATE TABLE IF NOT EXISTS topics (conversation TEXT PRIMARY KEY, "
                         "topic TEXT NOT NULL)")
        self._cache = LruMap(100_000)  # hot threads without a query

    def get(self, key: str, default: str | None = None) -> str | None:
        if key in self._cache:
            return self._cache[key]
        row = self._db.execute("SELECT topic FROM topics WHERE conversation = ?",
                               [key]).fetchone()
        if row is None:
            return default
        self._cache.put(key, row[0])
        return str(row[0])

    def put(self, key: str, value: str) -> None:
        if self._cache.get(key) == value:
            return
        self._cache.put(key, value)
        self._db.execute("INSERT OR REPLACE INTO topics VALUES (?, ?)", [key, value])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM topics").fetchone()[0])

    def commit(self) -> None:
        over = len(self) - self.max_items
        if over > 0:  # rowid grows with every write: the smallest are the oldest
            self._db.execute("DELETE FROM topics WHERE rowid IN (SELECT rowid FROM topics "
                             "ORDER BY rowid LIMIT ?)", [over])
        self._db.commit()


@dataclass
class PumpStats:
    read: int = 0
    replayed: int = 0  # before the resume position: not sent again
    sent: int = 0
    dead_lettered: int = 0
    duplicates: int = 0  # same id and content as a post sent before: dropped
    resent_changed: int = 0  # an id sent before, with other content: sent (the stream decides)
    ignored: int = 0  # not posts (deletes, reposts, blank lines, removed texts): skipped
    no_topic: int = 0  # matched no configured topic: skipped
    checkpoints: int = 0
    position: Position = None  # last confirmed position


@dataclass
class Replay:
    """Sleeps so that records go out `speed`× as fast as their timestamps say (None = no
    sleeping). The first record sent fixes the origin of both clocks."""

    speed: float | None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _origin: tuple[float, float] | None = None

    def wait_time(self, created_at: str) -> float:
        if not self.speed:
            return 0.0
        try:
            ts = datetime.fromisoformat(created_at).timestamp()
        except (TypeError, ValueError):
            return 0.0
        if self._origin is None:
            self._origin = (ts, self.clock())
            return 0.0
        due = self._origin[1] + (ts - self._origin[0]) / self.speed
        return max(0.0, due - self.clock())


def pump(source: Iterable[SourceRecord | None], producer: Any, *,
         router: TopicRouter | None = None, topic: str | None = None,
         checkpoint: Callable[[Position], None] | None = None,
         confirm_every: int = 5_000, confirm_seconds: float = 2.0,
         replay: Replay | None = None, max_posts: int | None = None,
         deadline: float | None = None,
         clock: Callable[[], float] = time.monotonic,
         conversations: LruMap | TopicMemory | None = None,
         origin: str | None = None) -> PumpStats:
    """Route, send and checkpoint every record of `source` (see the module docstring).

    A post gets `topic` when given; else keeps the ``topic`` it came with; else the topic of its
    conversation (once any post of it was routed); else :meth:`TopicRouter.route` of its text;
    else it is skipped and counted in ``no_topic``. A post whose topic `router` does not know is
    dead-lettered, as the stream would (the known ids named). `max_posts` / `deadline` (a
    `clock` value) stop early; the position reached is still confirmed and saved. `conversations` (conversation
    id → topic) carries routing state across runs (see :meth:`Checkpoint.resume_live`).
    `origin` names the source (a file's resolved path, a stream's URL): a dead letter with a
    position is keyed by (origin, position, bytes), so one sent again is stored once."""
    stats = PumpStats()
    conv_topic = LruMap() if conversations is None else conversations
    since_confirm, last_confirm = 0, clock()
    position: Position = None
    base = (producer.stats.sent, producer.stats.dead_lettered, producer.stats.duplicates,
            producer.stats.resent_changed)

    def confirm() -> None:
        nonlocal since_confirm, last_confirm
        producer.flush()
        stats.sent = producer.stats.sent - base[0]
        stats.dead_lettered = producer.stats.dead_lettered - base[1]
        stats.duplicates = producer.stats.duplicates - base[2]
        stats.resent_changed = producer.stats.resent_changed - base[3]
        if position is not None and checkpoint is not None:
            checkpoint(position)
            stats.checkpoints += 1
        stats.position = position
        since_confirm, last_confirm = 0, clock()

    stopped: BaseException | None = None
    try:
        for rec in source:
            if rec is not None:
                stats.read += 1
                if rec.replayed:
                    stats.replayed += 1
                post, error = rec.post, rec.error
                if post is not None:
                    chosen = _topic_for(post, topic, router, conv_topic)
                    if chosen is None:
                        if not rec.replayed:
                            stats.no_topic += 1
                        post = None
                    elif router is not None and (error := router.unknown(chosen)) is not None:
                        post = None  # the stream would dead-letter it: say so now, not "sent"
                    else:
                        post = {**post, "topic": chosen} if post.get("topic") != chosen else post
                keyed = ({"origin": (origin, rec.position)}
                         if origin and rec.position is not None else {})
                if rec.replayed:
                    if post is not None and isinstance(post.get("id"), str):
                        producer.mark_seen(post)
                elif error is not None:
                    producer.dead_letter(rec.raw, error, rec.raw_size, **keyed)
                elif rec.post is None:
                    stats.ignored += 1
                elif post is not None:
                    wait = replay.wait_time(post.get("created_at", "")) if replay else 0.0
                    if wait > 0.5:  # about to idle: confirm what was sent so far first
                        confirm()
                    if wait > 0 and replay is not None:
                        replay.sleep(wait)
                    producer.send_obj(post, rec.raw, **keyed)
                if not rec.replayed:  # replayed rows never move the checkpoint back
                    position = rec.position if rec.position is not None else position
                    since_confirm += 1
            if since_confirm >= confirm_every or (since_confirm and
                                                  clock() - last_confirm >= confirm_seconds):
                confirm()
                LOG.debug("confirmed up to %s: %s sent, %s dead-lettered, %s without topic",
                          position, f"{stats.sent:,}", f"{stats.dead_lettered:,}",
                          f"{stats.no_topic:,}")
            if (max_posts is not None and producer.stats.sent - base[0] >= max_posts) or \
                    (deadline is not None and clock() >= deadline):
                break
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, SIGTERM: confirm and save, stop
        stopped = exc
    except SourceError as exc:  # the source cannot be read on: keep what was sent, then say so
        confirm()
        raise SourceError(f"{exc} (before it: {stats.sent:,} posts sent, "
                          f"{stats.dead_lettered:,} dead-lettered, progress saved)") from None
    confirm()
    if stopped is not None:
        raise stopped
    return stats


def _topic_for(post: dict[str, Any], topic: str | None, router: TopicRouter | None,
               conv_topic: LruMap | TopicMemory) -> str | None:
    if topic is not None:
        return topic
    if post.get("topic"):
        return str(post["topic"])
    conv = post.get("conversation_id")
    conv_key = conv if isinstance(conv, str) else None
    chosen = conv_topic.get(conv_key) if conv_key else None
    if chosen is None and router is not None and isinstance(post.get("text"), str):
        chosen = router.route(post["text"])
    if chosen is not None and conv_key:
        conv_topic.put(conv_key, chosen)
    return chosen
