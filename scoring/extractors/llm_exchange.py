"""One HTTP exchange of the `llm` backend (:mod:`scoring.extractors.llm_http`): a POST and its
JSON answer, bounded whatever the server does.

- **In time**: ``timeout`` seconds from the request to the last byte of the answer, in all
  (:class:`polarwatch.http_limits.Deadline`: a server trickling its headers or its body one byte
  at a time is cut there, not after each byte's read timeout). Each request opens its own
  connection, so the deadline can shut its socket down; a batch's requests in flight end at
  once when the batch is cancelled (SIGTERM, Ctrl-C: :class:`polarwatch.http_limits.InFlight`).
- **In bytes**: at most ``max_response_bytes`` as sent (the raw bytes are counted); an answer
  compressed although ``Accept-Encoding: identity`` was asked for is refused unread (a few KB of
  ``gzip, gzip`` inflate to GBs).
- **No redirect is followed** (a POST to another address would re-send the post and the key).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from polarwatch.backoff import retry_after_seconds
from polarwatch.http_limits import Deadline, InFlight, refuse_compressed
from polarwatch.redact import url_for_log
from scoring.extractors.base import OverBudget
from scoring.extractors.llm_prompt import quote_body, redact

# A chat completion of max_tokens=400 is 2-5 KB of JSON; 1 MB leaves room for any sane server
# and bounds what a broken or hostile one can make a worker hold.
MAX_RESPONSE_BYTES = 1_000_000
ERROR_DETAIL_BYTES = 4_096  # of an error answer's body, read to quote its start in the error
NOT_RETRIED = (400, 401, 403, 404, 422)  # our request is wrong: asking again cannot help
DROPPED = "the connection was dropped"  # a failed attempt's `hung`, beside a timeout's


class Failed(Exception):
    """One failed attempt. `retry`: another attempt may help; `hung`: what went wrong when it
    was a timeout or a dropped connection (after the last attempt it trips the breaker);
    `retry_after`: the seconds the server asked to wait (Retry-After)."""

    def __init__(self, message: str, retry: bool = True, hung: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry, self.hung, self.retry_after = retry, hung, retry_after


def refused(exc: BaseException) -> BaseException | None:
    """The ConnectionRefusedError (TCP) or FileNotFoundError (unix socket) behind `exc`."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None or isinstance(seen, ConnectionRefusedError | FileNotFoundError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Exchange:
    """The HTTP half of :class:`~scoring.extractors.llm_http.LLMExtractor` (a mixin)."""

    base_url: str
    shown_url: str  # the server as messages show it
    timeout: float
    concurrency: int
    max_tokens: int
    max_response_bytes: int
    max_retry_after: float
    stats: dict[str, int]
    call_gate: Any
    _api_key: str | None
    _lock: threading.Lock
    _http: httpx.Client | None

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:  # one client, shared by the request threads; a connection
                # per request (no keep-alive), so each request's Deadline learns its socket
                self._http = httpx.Client(
                    timeout=self.timeout, follow_redirects=False,
                    limits=httpx.Limits(max_connections=self.concurrency,
                                        max_keepalive_connections=0),
                    event_hooks={"response": [refuse_compressed]})
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _post(self, path: str, payload: dict[str, Any], flight: InFlight) -> Any:
        """The JSON answer of one POST; Failed for an HTTP error, a redirect, a compressed
        answer, one over ``max_response_bytes`` or one not complete ``timeout`` seconds after
        the request."""
        url, shown = self.base_url + path, self.shown_url + path
        headers = {"Accept-Encoding": "identity"}  # the byte cap counts what the server sent
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        gate = self.call_gate
        if gate is not None and not gate():
            raise OverBudget("the cascade's budget of LLM calls for this minute is spent "
                             "(llm_calls_per_minute, label --llm-budget)")
        with self._lock:
            self.stats["requests"] += 1
        with flight.deadline(self.timeout) as deadline:  # the whole exchange, not each read
            try:
                with self._client().stream("POST", url, json=payload, headers=headers,
                                           extensions={"trace": deadline.trace}) as resp:
                    ctype = resp.headers.get("content-type", "")
                    if resp.is_redirect:
                        raise Failed(
                            f"HTTP {resp.status_code} from {shown} redirects to "
                            f"{self._redact(url_for_log(resp.headers.get('location', '')))!r}, "
                            f"which is not followed (it would re-send the post and the API "
                            f"key); set base_url or POLARWATCH_EXTRACTOR_LLM_BASE_URL to the "
                            f"final address", retry=False)
                    if resp.status_code >= 400:
                        raise self._http_error(resp, shown, self._read(
                            resp, shown, deadline, ERROR_DETAIL_BYTES), ctype)
                    body = self._read(resp, shown, deadline)
            except httpx.DecodingError as exc:  # refuse_compressed: asking again is futile
                raise Failed(f"unusable answer from {shown}: {exc}; it is not inflated (a few "
                             f"KB can inflate to GBs): turn compression off in the server or "
                             f"the proxy in front of it", retry=False) from None
            except httpx.TransportError as exc:
                if deadline.fired:  # the deadline shut the socket down (or the batch ended)
                    raise self._too_late(deadline, "the answer not complete") from exc
                raise
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:  # not JSON: a login page, a proxy's notice (asking again is futile)
            raise Failed(f"the server at {shown} answered "
                         f"{ctype.split(';')[0] or 'no Content-Type'}, not JSON: "
                         f"{self._redact(quote_body(body, ctype))}", retry=False) from None

    def _too_late(self, deadline: Deadline, got: str) -> Failed:
        """The failure of an exchange whose deadline passed, or whose batch was cancelled."""
        if deadline.cancelled:
            return Failed(f"the request to {self.shown_url} was cancelled ({got})", retry=False)
        return Failed(f"no answer from {self.shown_url} within {self.timeout:g} s ({got})",
                      hung=self._late)

    def _http_error(self, resp: httpx.Response, url: str, detail: bytes, ctype: str) -> Failed:
        """An HTTP error status as a failed attempt; Retry-After honoured up to its cap."""
        status, wait = resp.status_code, retry_after_seconds(resp.headers.get("retry-after"))
        quoted = f": {self._redact(quote_body(detail, ctype))}" if detail.strip() else ""
        retry = status not in NOT_RETRIED
        if retry and wait is not None and wait > self.max_retry_after:
            return Failed(f"HTTP {status} from {url} asks to retry after {wait:g} s, longer "
                          f"than llm max_retry_after ({self.max_retry_after:g} s), so it is "
                          f"not asked again{quoted}", retry=False)
        return Failed(f"HTTP {status} from {url}{quoted}", retry=retry, retry_after=wait)

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _read(self, resp: httpx.Response, url: str, deadline: Deadline,
              cut: int | None = None) -> bytes:
        """The body, at most ``max_response_bytes`` (an error beyond); with `cut`, its first
        `cut` bytes (for an error message). Raw bytes: nothing is inflated."""
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_raw():
                size += len(chunk)
                chunks.append(chunk)
                if cut is not None and size >= cut:
                    return b"".join(chunks)[:cut]
                if size > self.max_response_bytes:
                    raise Failed(f"the answer from {url} is over {self.max_response_bytes:,} "
                                 f"bytes (llm max_response_bytes); a chat completion of "
                                 f"max_tokens={self.max_tokens} is a few KB: check the server",
                                 retry=False)
                if deadline.passed:
                    raise self._too_late(deadline, f"{size:,} bytes received, still sending")
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            if deadline.fired:
                raise self._too_late(deadline, f"{size:,} bytes received, still sending") from exc
            if cut is not None:  # an error body: its start is enough to quote
                return b"".join(chunks)[:cut]
            raise Failed(f"{url} dropped the connection after {size:,} bytes of its answer "
                         f"(HTTP {resp.status_code}, {type(exc).__name__})",
                         hung=DROPPED) from exc
        return b"".join(chunks)

    @property
    def _late(self) -> str:
        return f"no answer within {self.timeout:g} s"
