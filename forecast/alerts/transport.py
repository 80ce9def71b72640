"""One webhook POST, bounded: what :class:`~forecast.alerts.webhooks.WebhookSender` sends with.

- **A deadline per request**: ``timeout`` seconds from the start of the request to the status
  line and headers, in all (httpx's own timeouts bound each read or write, not their sum, so a
  receiver trickling its headers a byte at a time would hold the sender for hours). When the
  deadline passes, a timer shuts the connection's socket down, which ends the blocked read.
- **The status is the answer**: once the status line and headers are in, the attempt is decided;
  the body is never read (the connection is closed instead), so a receiver that drips, floods or
  drops its body cannot turn a 2xx into a failure or hold the sender.
- **Retry-After** in seconds or as an HTTP-date (RFC 9110 section 10.2.3); the caller caps it.
- **Redirects are not followed** (a POST must not turn into a GET elsewhere); the failure says so
  and names where the receiver pointed, host only (paths and queries carry tokens).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from polarwatch.backoff import retry_after_seconds
from polarwatch.redact import url_for_log

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Attempt:
    """What one POST got: a status (None when no answer came), an error text, Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None  # seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.status is None or self.status in RETRY_STATUS)


class Deadline:
    """Shuts the request's socket down ``seconds`` after :meth:`start`, unless :meth:`stop`
    came first. The socket is learnt from httpcore's ``trace`` extension when it connects (and
    again when TLS wraps it)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # the TCP socket, and for https the TLS socket that took its descriptor over (wrapping
        # detaches the first: shutting it down would do nothing)
        if (event.endswith(("connect_tcp.complete", "start_tls.complete"))
                and info.get("return_value") is not None):
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    late = self.fired
                if late:  # connected just as the deadline passed
                    _shutdown(sock)

    def start(self) -> None:
        self._timer.start()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


def redirect_text(url: str, status: int, location: str | None) -> str:
    """``HTTP 307: redirect to https://host/… not followed``, the target cut to its host."""
    if not location:
        return f"HTTP {status}: redirect (no Location) not followed"
    try:
        target = url_for_log(str(httpx.URL(url).join(location)))
    except (httpx.InvalidURL, ValueError):
        target = "an invalid Location"
    return (f"HTTP {status}: redirect to {target} not followed (put the URL that answers the "
            f"POST itself in [alerts] webhooks)")


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
         timeout: float) -> Attempt:
    """One POST, answered within ``timeout`` seconds in all; the answer's body is not read."""
    deadline = Deadline(timeout)
    status: int | None = None
    retry_after = location = None
    deadline.start()
    try:
        with client.stream("POST", url, content=body, headers=headers,
                           extensions={"trace": deadline.trace}) as resp:
            status, retry_after = resp.status_code, resp.headers.get("Retry-After")
            location = resp.headers.get("Location")
            deadline.stop()  # the status is in: closing the response drops the body unread
    except httpx.TransportError as exc:  # refused, timeouts, protocol errors, the deadline
        if status is None:  # once the status is in, hanging up cannot undo it
            if deadline.fired:
                return Attempt(None, f"no answer within the {timeout:g} s deadline "
                                     f"({type(exc).__name__})")
            return Attempt(None, f"{type(exc).__name__}: {exc}".replace(url, url_for_log(url)))
    finally:
        deadline.stop()
    assert status is not None  # without a status the except clause returned
    if 200 <= status < 300:
        return Attempt(status)
    if 300 <= status < 400:
        return Attempt(status, redirect_text(url, status, location))
    return Attempt(status, f"HTTP {status}", retry_after_seconds(retry_after))
