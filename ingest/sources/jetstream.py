"""Bluesky posts from Jetstream, the JSON websocket view of the AT Protocol firehose.

Each message is ``{"did", "time_us", "kind", "commit": {"operation", "collection", "rkey",
"record": {"text", "createdAt", "langs", "reply": {"root": {"uri"}, "parent": {"uri"}}}}}``.
Created posts become :class:`~polarwatch.records.Post` dicts: the id is the post's ``at://`` URI,
the conversation is the thread root's URI. The position is ``time_us``; a reconnect (after a
dropped connection, with exponential backoff; on HTTP 429/503 the longer of it and
``Retry-After``) asks for ``cursor=<last time_us>``, so Jetstream replays what was missed, from
the cursor's own event on (inclusive). Within a run the producer's de-duplication drops that
event; a run that resumes from a saved cursor treats an event at exactly that ``time_us`` as
already sent (replayed: not sent, not counted), so a restart sends no duplicate. Only a
connection that brings an event past its cursor resets the backoff.

A message websockets refuses cannot loop the source: a text frame that is not UTF-8 is read as
bytes and dead-lettered like any malformed message (its ``time_us``, read from the start of the
raw bytes, moves the cursor past it); a message over ``MAX_MESSAGE_BYTES`` (close 1009) is read
once more on a connection allowing ``WIDE_MESSAGE_BYTES`` and dead-lettered; one over that too
is dead-lettered as what is known (the cursor before it, the close code) and skipped by asking
for cursor + 1, + 2, + 4 ... until an event comes first (events in the skipped range are lost and
logged). A redirect is followed (websockets allows ws ↔ ws, wss → wss); one to an ``http(s)://``
address stops the run with the address to use. With a deadline (``--duration``) the idle wait
ends at it, and the closing handshake then waits at most ``LATE_CLOSE_S`` for a server that
stalls.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ingest.sources.base import (
    Position,
    Source,
    SourceError,
    SourceRecord,
)
from ingest.sources.reconnect import Backoff, retry_after_seconds
from polarwatch.validation import parse_record

DEFAULT_URL = "wss://jetstream2.us-east.bsky.network/subscribe"
POST_COLLECTION = "app.bsky.feed.post"
IDLE_TICK_S = 1.0  # yield an idle marker this often so the caller can confirm and checkpoint
CLOSE_TIMEOUT_S = 2.0  # how long a closing handshake may take ...
LATE_CLOSE_S = 0.5  # ... and once the deadline passed (a stalled server must not hold the run)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
WIDE_MESSAGE_BYTES = 16 * 1024 * 1024  # one connection after a 1009, to read the message once
REFUSED = {1007: "not UTF-8", 1009: "too big"}  # close codes for a message websockets refused
# the top-level "time_us" in a message's first KiB (Jetstream writes it before "commit")
_TOP_TIME_US = re.compile(rb'\s*\{(?:[^{}\[\]"]|"(?:[^"\\]|\\.)*")*?"time_us"\s*:\s*(\d{1,19})\s*[,}]')
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


def time_us_hint(raw: bytes) -> int | None:
    """The top-level ``time_us`` of a message that cannot be parsed (not UTF-8, too big), read
    from its first 4 KiB, so that its dead letter still moves the cursor past it."""
    found = _TOP_TIME_US.match(raw[:4096])
    return int(found.group(1)) if found else None


def parse_message(raw: bytes) -> SourceRecord:
    """One Jetstream message → a record (a post, ignored, or an error for the dead letters)."""
    msg, reason = parse_record(raw)  # never raises: size, UTF-8, JSON and nesting checked
    if reason is not None:
        return SourceRecord(time_us_hint(raw), None, raw, reason)
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
        self.redirected_to: str | None = None  # where the last failed attempt's redirect led
        self._replay_at: int | None = None
        self._widen = False  # read the next connection with WIDE_MESSAGE_BYTES
        self._skip: tuple[int, int] | None = None  # (cursor before a refused message, step)

    def checkpoint_key(self) -> str:
        return self.url

    def records(self, position: Position | None) -> Iterator[SourceRecord | None]:
        from websockets.exceptions import (
            ConnectionClosed,
            InvalidHandshake,
            InvalidStatus,
            InvalidURI,
        )
        from websockets.sync.client import connect

        self.cursor = int(position) if position is not None else None
        # the saved cursor's event was sent by the run that saved it (--cursor's is wanted)
        self._replay_at = self.cursor if self.position_was_sent else None
        self._widen, self._skip = False, None
        while True:
            start, wide = self.cursor, self._widen or self._skip is not None
            self._widen = False
            url = subscribe_url(self.url, start)
            # legacy=False: a connecter whose `uri` says where a redirect led
            connecter = connect(url, legacy=False, open_timeout=self.time_left(self.open_timeout),
                                close_timeout=CLOSE_TIMEOUT_S,
                                max_size=WIDE_MESSAGE_BYTES if wide else MAX_MESSAGE_BYTES)
            try:
                with connecter as ws:
                    self.connections += 1
                    LOG.info("jetstream connected: %s", connecter.uri)
                    try:
                        yield from self._messages(ws, start)
                        return
                    finally:  # also when the caller stops reading (at its deadline)
                        if self.expired():
                            ws.close_timeout = LATE_CLOSE_S
            except InvalidURI as exc:  # a redirect to http(s)://: retrying cannot help
                raise SourceError(f"jetstream at {self.url} redirected to {exc.uri}, which is not "
                                  f"a websocket address; pass --url with the ws:// or wss:// "
                                  f"address of the Jetstream endpoint") from None
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.last_error = f"HTTP {status}"
                self._redirected(url, connecter.uri)
                if status in FATAL_STATUSES:
                    raise SourceError(f"jetstream at {connecter.uri} refused the subscription "
                                      f"with HTTP {status}") from exc
                delay = self.backoff.next_delay()
                if status in (429, 503):  # the longer of our backoff and the server's wish
                    delay = retry_after_seconds(exc.response.headers.get("Retry-After"), delay)
                LOG.warning("jetstream answered HTTP %d; retrying in %.1f s", status, delay)
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                self._redirected(url, connecter.uri)
                code = getattr(getattr(exc, "sent", None), "code", None)
                refused = self._refused(code, wide) if code in REFUSED else None
                if refused is not None:
                    yield refused
                delay = self.backoff.next_delay() if self._skip is None else self.backoff.initial
                LOG.warning("jetstream connection lost (%s: %s); reconnecting from cursor %s in "
                            "%.1f s", type(exc).__name__, exc, self.cursor, delay)
            if not self.wait(delay, self.sleep):
                return

    def _redirected(self, url: str, reached: str) -> None:
        """Name where a followed redirect led, in the last error (what the run's summary says)."""
        self.redirected_to = reached if reached != url else None
        if self.redirected_to:
            self.last_error = f"{self.last_error} after a redirect to {reached}"

    def _refused(self, code: int, wide: bool) -> SourceRecord | None:
        """After websockets refused the message following `self.cursor` (close `code`): read it
        again with the wide limit; refused with that too (or not UTF-8 in a way bytes cannot
        carry), dead-letter what is known once and skip ahead by a doubling step."""
        if code == 1009 and not wide:
            self._widen = True
            LOG.warning("jetstream sent a message over %s bytes after cursor %s (close 1009); "
                        "reading it again with a %s-byte limit to dead-letter it",
                        f"{MAX_MESSAGE_BYTES:,}", self.cursor, f"{WIDE_MESSAGE_BYTES:,}")
            return None
        record = None
        if self._skip is None:
            after = self.cursor if self.cursor is not None else 0
            self._skip = (after, 1)
            known = {"cursor": self.cursor, "close_code": code, "url": self.url}
            record = SourceRecord(self.cursor, None, json.dumps(known).encode(), (
                f"jetstream message after cursor {self.cursor} refused by websockets (close "
                f"{code}, {REFUSED[code]}, limit {WIDE_MESSAGE_BYTES:,} bytes); its content is "
                f"unknown, and it is skipped"))
        else:
            self._skip = (self._skip[0], self._skip[1] * 2)
        self.cursor = self._skip[0] + self._skip[1]
        LOG.warning("jetstream: skipping the refused message after cursor %s: asking from "
                    "cursor %s", self._skip[0], self.cursor)
        return record

    def _messages(self, ws: Any, start: int | None) -> Iterator[SourceRecord | None]:
        """Records of one connection, an idle None every `idle_tick` (and at the deadline,
        where it ends: a silent or stalled server cannot hold the run past it)."""
        while True:
            try:  # bytes, text frames too: a non-UTF-8 one is a dead letter, not a close 1007
                msg = ws.recv(timeout=self.time_left(self.idle_tick), decode=False)
            except TimeoutError:
                yield None
                if self.expired():
                    return
                continue
            rec = parse_message(msg)
            if self._skip is not None:  # an event came first: the refused message is behind
                LOG.warning("jetstream: past the refused message; events from cursor %s to %s "
                            "were skipped", self._skip[0] + 1, start)
                self._skip = None
            if rec.position is not None:
                if start is None or rec.position > start:
                    self.backoff.reset()  # progress, not the replay of the cursor's event
                if rec.position == self._replay_at:
                    rec = SourceRecord(rec.position, rec.post, rec.raw, rec.error,
                                       replayed=True)
                else:
                    self._replay_at = None
                self.cursor = rec.position
            yield rec
