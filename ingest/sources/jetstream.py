"""Bluesky posts from Jetstream, the JSON websocket view of the AT Protocol firehose.

Each message is ``{"did", "time_us", "kind", "commit": {"operation", "collection", "rkey",
"record": {"text", "createdAt", "langs", "reply": {"root": {"uri"}, "parent": {"uri"}}}}}``.
Created posts become :class:`~polarwatch.records.Post` dicts: the id is the post's ``at://`` URI,
the conversation is the thread root's URI. The position is ``time_us``; a reconnect (after a
dropped connection, with exponential backoff, honouring ``Retry-After`` on HTTP 429/503) asks
for ``cursor=<last time_us>``, so Jetstream replays what was missed. The replayed event at the
cursor itself is dropped again by the producer's de-duplication. With a deadline
(``--duration``) the idle wait ends at it, and the closing handshake then waits at most
``LATE_CLOSE_S`` for a server that stalls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingest.sources.base import (
    Backoff,
    Position,
    Source,
    SourceError,
    SourceRecord,
    retry_after_seconds,
)
from polarwatch.validation import parse_record

DEFAULT_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
POST_COLLECTION = "app.bsky.feed.post"
IDLE_TICK_S = 1.0  # yield an idle marker this often so the caller can confirm and checkpoint
CLOSE_TIMEOUT_S = 2.0  # how long a closing handshake may take ...
LATE_CLOSE_S = 0.5  # ... and once the deadline passed (a stalled server must not hold the run)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
FATAL_STATUSES = (400, 401, 403, 404)  # retrying cannot help
LOG = logging.getLogger(__name__)


def subscribe_url(base: str, cursor: int | None,
                  collections: tuple[str, ...] = (POST_COLLECTION,)) -> str:
    """`base` with ``wantedCollections`` and ``cursor`` set (other query parameters kept)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("wantedCollections",
                                                                     "cursor")]
    query += [("wantedCollections", c) for c in collections]
    if cursor is not None:
        query.append(("cursor", str(cursor)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _created_at(record: dict[str, Any], time_us: int | None) -> str | None:
    """The post's time: the earlier of the client's ``createdAt`` and the relay's ``time_us``.
    A client writes anything in createdAt; one dated later than the relay saw it would move
    windows and the watermark ahead, so the relay's clock caps it (a backdated post, e.g. an
    import, keeps its date)."""
    relay = None
    if time_us is not None:
        try:
            relay = datetime.fromtimestamp(time_us / 1e6, UTC)
        except (OverflowError, OSError, ValueError):
            relay = None
    value = record.get("createdAt")
    client = None
    if isinstance(value, str):
        try:
            client = datetime.fromisoformat(value)
        except ValueError:
            client = None
        if client is not None and client.tzinfo is None:
            client = None
    if client is not None and relay is not None:
        try:
            return min(client, relay).isoformat()
        except OverflowError:
            return relay.isoformat()
    chosen = client or relay
    return chosen.isoformat() if chosen is not None else None  # None: the contract dead-letters


def parse_message(raw: bytes) -> SourceRecord:
    """One Jetstream message → a record (a post, ignored, or an error for the dead letters)."""
    msg, reason = parse_record(raw)  # never raises: size, UTF-8, JSON and nesting checked
    if reason is not None:
        return SourceRecord(None, None, raw, reason)
    if not isinstance(msg, dict):
        return SourceRecord(None, None, raw, f"expected a JSON object, got {type(msg).__name__}")
    time_us = msg.get("time_us") if isinstance(msg.get("time_us"), int) else None
    commit = msg.get("commit")
    if msg.get("kind") != "commit" or not isinstance(commit, dict) or \
            commit.get("operation") != "create" or commit.get("collection") != POST_COLLECTION:
        return SourceRecord(time_us, None, raw)  # identity/account events, deletes, likes...
    record, did, rkey = commit.get("record"), msg.get("did"), commit.get("rkey")
    if not isinstance(record, dict) or not isinstance(did, str) or not isinstance(rkey, str):
        return SourceRecord(time_us, None, raw, "commit: missing record, did or rkey")
    text = record.get("text")
    if not isinstance(text, str):
        return SourceRecord(time_us, None, raw, "commit.record.text: missing or not a string")
    if not text.strip():
        return SourceRecord(time_us, None, raw)  # image-only post: nothing to score
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    reply: dict[str, Any] = record["reply"] if isinstance(record.get("reply"), dict) else {}
    root, parent = (ref.get("uri") if isinstance(ref := reply.get(k), dict) else None
                    for k in ("root", "parent"))
    langs = record.get("langs")
    post = {
        "id": uri, "platform": "bluesky", "author_id": did, "text": text,
        "created_at": _created_at(record, time_us),
        "conversation_id": root if isinstance(root, str) and root else uri,
        "parent_id": parent if isinstance(parent, str) and parent else None,
        "lang": langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str)
        else None,
    }
    return SourceRecord(time_us, post, raw)


class JetstreamSource(Source):
    """Posts from a Jetstream instance, reconnecting and resuming from the last ``time_us``."""

    def __init__(self, url: str = DEFAULT_URL, *, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep, idle_tick: float = IDLE_TICK_S,
                 open_timeout: float = 10.0) -> None:
        self.url, self.backoff = url, backoff or Backoff()
        self.sleep = sleep
        self.idle_tick, self.open_timeout = idle_tick, open_timeout
        self.name = f"jetstream:{url}"
        self.connections = 0  # successful handshakes, for tests and logs
        self.last_error: str | None = None
        self.cursor: int | None = None

    def checkpoint_key(self) -> str:
        return self.url

    def records(self, position: Position | None) -> Iterator[SourceRecord | None]:
        from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
        from websockets.sync.client import connect

        self.cursor = int(position) if position is not None else None
        while True:
            url = subscribe_url(self.url, self.cursor)
            try:
                with connect(url, open_timeout=self.time_left(self.open_timeout),
                             close_timeout=CLOSE_TIMEOUT_S, max_size=MAX_MESSAGE_BYTES) as ws:
                    self.connections += 1
                    LOG.info("jetstream connected: %s", url)
                    try:
                        yield from self._messages(ws)
                        return
                    finally:  # also when the caller stops reading (at its deadline)
                        if self.expired():
                            ws.close_timeout = LATE_CLOSE_S
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.last_error = f"HTTP {status}"
                if status in FATAL_STATUSES:
                    raise SourceError(f"jetstream at {url} refused the subscription with HTTP "
                                      f"{status}") from exc
                delay = self.backoff.next_delay()
                if status in (429, 503):
                    delay = retry_after_seconds(exc.response.headers.get("Retry-After"), delay)
                LOG.warning("jetstream answered HTTP %d; retrying in %.1f s", status, delay)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self.backoff.next_delay()
                LOG.warning("jetstream connection lost (%s: %s); reconnecting from cursor %s in "
                            "%.1f s", type(exc).__name__, exc, self.cursor, delay)
            if not self.wait(delay, self.sleep):
                return

    def _messages(self, ws: Any) -> Iterator[SourceRecord | None]:
        """Records of one connection, an idle None every `idle_tick` (and at the deadline,
        where it ends: a silent or stalled server cannot hold the run past it)."""
        while True:
            try:
                msg = ws.recv(timeout=self.time_left(self.idle_tick))
            except TimeoutError:
                yield None
                if self.expired():
                    return
                continue
            self.backoff.reset()
            rec = parse_message(msg.encode() if isinstance(msg, str) else msg)
            if rec.position is not None:
                self.cursor = rec.position
            yield rec
