"""Mastodon statuses from the streaming API (Server-Sent Events over HTTP).

``GET /api/v1/streaming/hashtag?tag=…`` (or ``/public``) with ``Authorization: Bearer <token>``
answers ``event: update`` / ``data: <status JSON>`` blocks, ``delete`` and ``status.update``
events we ignore, and ``:thump`` heartbeat comments. The position is the highest status id seen.
SSE has no replay, so after a dropped connection (exponential backoff; on HTTP 429/503 the longer
of it and ``Retry-After``) the source first catches up through the timeline API with
``min_id=<position>`` and then reopens the stream; statuses seen twice are dropped by the
producer's de-duplication. A catch-up page that is not a JSON list (an HTML page, an error
object, an empty or oversized body) is asked again with backoff, ``CATCH_UP_TRIES`` times in all;
if it never is one, the stream reopens and one warning names the gap (the statuses after the
position and before the first one the stream brings) and the ``--cursor`` that fetches it; a run
that ends before the stream brings one keeps the position, so the next run catches up.
HTTP goes through httpx: a redirect is followed for these GETs, but the access token is never
sent to another host (httpx drops ``Authorization`` on a cross-origin redirect), and reads are
bounded (a catch-up page by ``CATCH_UP_MAX_BYTES``, an event-stream line by ``MAX_LINE_BYTES``).
With a deadline (``--duration``) each read times out by it, and an answer that stalls or trickles
is cut there (:mod:`ingest.sources.deadline`); without one, 60 s of silence is a dead link.

Post ids are ``mastodon:<host>:<status id>`` (status ids are per instance); the text is the HTML
``content`` converted to plain text; a reply joins its parent's conversation when the parent was
seen, else the parent id stands in for the conversation (the stream does not name thread roots).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from ingest.normalize import html_to_text
from ingest.sources.base import (
    Position,
    Source,
    SourceError,
    SourceRecord,
    ThreadIndex,
)
from ingest.sources.deadline import DeadlineCut
from ingest.sources.reconnect import Backoff, retry_after_seconds
from polarwatch.http_limits import refuse_compressed
from polarwatch.validation import parse_record

READ_TIMEOUT_S = 60.0  # Mastodon sends a heartbeat every ~15 s: silence this long = dead link
CATCH_UP_PAGE = 40  # the API's maximum page size
CATCH_UP_MAX_BYTES = 8 * 1024 * 1024  # a page of 40 statuses is ~100 KB; more is not a page
CATCH_UP_MAX_PAGES = 25  # 1,000 statuses; a longer gap is logged as lost
CATCH_UP_TRIES = 3  # asks for a page that is not a JSON list before the gap is given up
FATAL_STATUSES = (400, 401, 403, 404, 410, 422)
USER_AGENT = "polarwatch-ingest (+https://github.com/polarwatch)"
MAX_LINE_BYTES = 4 * 1024 * 1024  # one SSE line carries one status (a few KB, 500 KB at most)
MAX_REDIRECTS = 5
LOG = logging.getLogger(__name__)


def bounded_lines(chunks: Iterable[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """Lines (with their ``\n``) of a byte stream; ValueError for a line longer than `limit`
    (a server that never sends a newline cannot make the reader hold more)."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            yield buf[start:end + 1]
            start = end + 1
        buf = buf[start:]
        if len(buf) > limit:
            raise ValueError(f"an event-stream line over {limit:,} bytes")
    if buf:
        yield buf


def read_at_most(resp: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of a streamed body (the rest is never read)."""
    chunks, size = [], 0
    for chunk in resp.iter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def sse_events(lines: Iterable[bytes],
               limit: int = MAX_LINE_BYTES) -> Iterator[tuple[str, str] | None]:
    """(event, data) per dispatched Server-Sent Event, None for each comment (heartbeat).
    An event cut off by the end of the stream (no blank line yet) is not dispatched; one whose
    ``data:`` lines add up to more than `limit` bytes is a ValueError (the connection is
    dropped and reopened), so many short lines cannot grow one event without bound."""
    event, data, size = "", list[str](), 0
    for raw in lines:
        if raw.startswith(b"data"):
            size += len(raw)
            if size > limit:
                raise ValueError(f"an event-stream event over {limit:,} bytes")
        else:
            size = 0 if not raw.strip(b"\r\n") else size
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            if data:
                yield event or "message", "\n".join(data)
            event, data, size = "", list[str](), 0
            continue
        if line.startswith(":"):
            yield None
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def newer(a: str | None, b: str | None) -> str | None:
    """The larger of two status ids (numeric when both are, as Mastodon's are)."""
    if a is None or b is None:
        return a if b is None else b
    if a.isdigit() and b.isdigit():
        return a if (len(a), a) >= (len(b), b) else b
    return max(a, b)


class MastodonSource(Source):
    """Statuses of a hashtag (or the public timeline) of one instance."""

    def __init__(self, instance: str, *, tag: str | None = None, local: bool = False,
                 token: str | None = None, catch_up: bool = True, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 read_timeout: float = READ_TIMEOUT_S) -> None:
        if "://" not in instance:
            instance = f"https://{instance}"
        self.instance = instance.rstrip("/")
        self.host = urlsplit(self.instance).netloc
        self.tag = tag.lstrip("#") if tag else None
        self.local, self.token, self.catch_up = local, token, catch_up
        self.backoff, self.sleep = backoff or Backoff(), sleep
        self.read_timeout = read_timeout
        self._http: httpx.Client | None = None
        self.threads = ThreadIndex()
        self.name = f"mastodon:{self.stream_url()}"
        self.connections = 0
        self.last_error: str | None = None
        self.last_id: str | None = None
        self.gap: tuple[str, str] | None = None  # (status id, why) a failed catch-up began after
        self._cut: DeadlineCut | None = None  # while records() runs with a deadline

    def checkpoint_key(self) -> str:
        return self.stream_url()

    def cursor_including(self, position: Position) -> Position | None:
        """The id before `position` (a run resumes *after* its cursor): a numeric id, as
        Mastodon's are, less one; None for another (flake ids of Pleroma, Akkoma)."""
        text = str(position)
        if text.isascii() and text.isdigit() and int(text) > 0:  # not "²" (isdigit alone)
            return str(int(text) - 1)
        return None

    def stream_url(self) -> str:
        suffix = "/local" if self.local else ""
        if self.tag:
            return f"{self.instance}/api/v1/streaming/hashtag{suffix}?{urlencode({'tag': self.tag})}"
        return f"{self.instance}/api/v1/streaming/public{suffix}"

    def timeline_url(self, min_id: str) -> str:
        query: dict[str, str] = {"min_id": min_id, "limit": str(CATCH_UP_PAGE)}
        if self.local:
            query["local"] = "true"
        if self.tag:
            return f"{self.instance}/api/v1/timelines/tag/{quote(self.tag)}?{urlencode(query)}"
        return f"{self.instance}/api/v1/timelines/public?{urlencode(query)}"

    def _client(self) -> httpx.Client:
        if self._http is None:
            # identity: a compressed answer would be inflated before any size cap applies
            self._http = httpx.Client(timeout=self.read_timeout, follow_redirects=True,
                                      max_redirects=MAX_REDIRECTS,
                                      headers={"User-Agent": USER_AGENT,
                                               "Accept-Encoding": "identity"},
                                      event_hooks={"request": [self._same_host],
                                                   "response": [refuse_compressed]})
        return self._http

    def _same_host(self, request: httpx.Request) -> None:
        """Every request, redirects included, stays on the configured instance."""
        home = httpx.URL(self.instance)
        if (request.url.scheme, request.url.host, request.url.port) != (home.scheme, home.host,
                                                                         home.port):
            port = f":{request.url.port}" if request.url.port else ""
            raise httpx.UnsupportedProtocol(
                f"redirected off {self.instance} to {request.url.scheme}://{request.url.host}"
                f"{port}: not followed", request=request)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _open(self, url: str, accept: str) -> Any:
        """A streamed GET; raises httpx.HTTPStatusError for an error status."""
        headers = {"Accept": accept}
        if self.token:  # httpx drops it when a redirect leaves this host
            headers["Authorization"] = f"Bearer {self.token}"
        # each read times out by the deadline; a stalled or trickling answer is cut there
        extensions = {"trace": self._cut.trace} if self._cut is not None else None
        return self._client().stream("GET", url, headers=headers, extensions=extensions,
                                     timeout=self.time_left(self.read_timeout))

    def parse_status(self, raw: bytes) -> SourceRecord:
        status, reason = parse_record(raw)  # never raises
        if reason is not None:
            return SourceRecord(None, None, raw, reason)
        if not isinstance(status, dict) or not isinstance(status.get("id"), str):
            return SourceRecord(None, None, raw, "status: not an object with a string id")
        sid = status["id"]
        if status.get("reblog") or not isinstance(status.get("content"), str):
            return SourceRecord(sid, None, raw)  # a boost repeats someone else's post
        text = html_to_text(status["content"])
        if not text:
            return SourceRecord(sid, None, raw)
        post_id = f"mastodon:{self.host}:{sid}"
        reply_to = status.get("in_reply_to_id")
        parent = f"mastodon:{self.host}:{reply_to}" if isinstance(reply_to, str) else None
        account: dict[str, Any] = status["account"] if isinstance(status.get("account"),
                                                                   dict) else {}
        post = {
            "id": post_id, "platform": "mastodon",
            "author_id": f"mastodon:{self.host}:{account.get('id', '')}", "text": text,
            "created_at": status.get("created_at"),
            "conversation_id": self.threads.conversation(post_id, parent), "parent_id": parent,
            "lang": status.get("language") if isinstance(status.get("language"), str) else None,
        }
        return SourceRecord(sid, post, raw)

    def _catch_up(self) -> Iterator[SourceRecord]:
        for _page in range(CATCH_UP_MAX_PAGES):
            assert self.last_id is not None
            before = self.last_id
            statuses = self._page(before)
            if not statuses:
                return
            dicts = sorted((s for s in statuses if isinstance(s, dict)),
                           key=lambda s: (len(str(s.get("id"))), str(s.get("id"))))
            for status in [s for s in statuses if not isinstance(s, dict)] + dicts:
                yield from self._emit(json.dumps(status).encode())  # not an object: dead letter
            if len(statuses) < CATCH_UP_PAGE:
                return
            if self.last_id == before:  # a full page and no newer id: asking again is no use
                self.gap = (before, "a page without a status newer than it")
                return
        LOG.warning("mastodon catch-up stopped after %d pages; older statuses after %s are not "
                    "fetched", CATCH_UP_MAX_PAGES, self.last_id)

    def _page(self, min_id: str) -> list[Any] | None:
        """The timeline page after `min_id`, asked up to CATCH_UP_TRIES times while it is not a
        JSON list; None (and `self.gap` set) when it never is, or when the run's deadline came."""
        why = "no answer"
        for attempt in range(1, CATCH_UP_TRIES + 1):
            with self._open(self.timeline_url(min_id), "application/json") as resp:
                resp.raise_for_status()
                page, reason = parse_record(read_at_most(resp, CATCH_UP_MAX_BYTES + 1),
                                            max_bytes=CATCH_UP_MAX_BYTES)
                kind = resp.headers.get("Content-Type", "no Content-Type")[:60]
            if reason is None and isinstance(page, list):
                return page
            why = f"{reason or f'a JSON {type(page).__name__}, not a list'}, {kind}"
            if attempt < CATCH_UP_TRIES:
                delay = self.backoff.next_delay()
                LOG.info("mastodon catch-up page after status %s is not a list of statuses "
                         "(%s); asking again in %.1f s", min_id, why, delay)
                if not self.wait(delay, self.sleep):
                    return None  # the run ends with the position kept: the next run catches up
        self.gap = (min_id, f"{why}; asked {CATCH_UP_TRIES} times")
        return None

    def _emit(self, raw: bytes) -> Iterator[SourceRecord]:
        rec = self.parse_status(raw)
        if rec.position is not None and self.gap is not None and newer(rec.position,
                                                                        self.gap[0]) != self.gap[0]:
            LOG.warning("mastodon catch-up after status %s gave up (%s): statuses after %s and "
                        "before %s may be missing; run again with --cursor %s once the timeline "
                        "API answers to fetch them", self.gap[0], self.gap[1], self.gap[0],
                        rec.position, self.gap[0])
            self.gap = None
        if rec.position is not None:
            self.last_id = newer(self.last_id, rec.position)
            rec = SourceRecord(self.last_id, rec.post, rec.raw, rec.error)
        yield rec

    def records(self, position: Position | None) -> Iterator[SourceRecord | None]:
        self.last_id = str(position) if position is not None else None
        with DeadlineCut(self.deadline) as self._cut:
            try:
                yield from self._reconnecting()
            finally:
                self._cut = None
                self.close()

    def _reconnecting(self) -> Iterator[SourceRecord | None]:
        while True:
            try:
                if self.catch_up and self.last_id is not None:
                    yield from self._catch_up()
                    if self.expired():  # mid catch-up: the position is kept for the next run
                        return
                with self._open(self.stream_url(), "text/event-stream") as resp:
                    resp.raise_for_status()
                    self.connections += 1
                    LOG.info("mastodon stream open: %s", self.stream_url())
                    for event in sse_events(bounded_lines(resp.iter_bytes())):
                        if event is None:
                            yield None  # heartbeat
                            continue
                        self.backoff.reset()
                        if event[0] == "update":
                            yield from self._emit(event[1].encode())
                if self.expired():  # the deadline ended the answer: the run is over
                    return
                delay = self.backoff.next_delay()
                LOG.warning("mastodon stream ended; reconnecting in %.1f s", delay)
            except httpx.HTTPStatusError as exc:
                code = exc.response.status_code
                self.last_error = f"HTTP {code}"
                if code in FATAL_STATUSES:
                    raise SourceError(f"mastodon at {self.instance} answered HTTP {code} "
                                      f"({exc.response.reason_phrase}); check the instance, the "
                                      f"tag and $POLARWATCH_INGEST_MASTODON_TOKEN") from exc
                delay = self.backoff.next_delay()
                if code in (429, 503):
                    delay = retry_after_seconds(exc.response.headers.get("Retry-After"), delay)
                LOG.warning("mastodon answered HTTP %d; retrying in %.1f s", code, delay)
            except (httpx.RequestError, OSError, ValueError) as exc:
                # refused, resets, timeouts, a chunked stream cut short, too many redirects,
                # bad catch-up JSON, an endless line; or our own cut at the deadline
                self.last_error = ("no complete answer before the deadline"
                                   if self._cut is not None and self._cut.fired
                                   else f"{type(exc).__name__}: {exc}")
                if self.expired():
                    return
                delay = self.backoff.next_delay()
                LOG.warning("mastodon connection lost (%s: %s); reconnecting after status %s in "
                            "%.1f s", type(exc).__name__, exc, self.last_id, delay)
            if not self.wait(delay, self.sleep):
                return
