"""Limits for polarwatch's httpx clients, so that what a server sends is bounded in time and in
bytes whatever the server does.

- :func:`refuse_compressed`, a response hook: a client that asks for ``Accept-Encoding:
  identity`` caps the bytes it reads, but httpx inflates any Content-Encoding the server declares
  before the caller sees a byte (``gzip, gzip``: 6.7 KB sent, 4 GB inflated in one step). The
  hook refuses such an answer before its body is read.
- :class:`Deadline`, one request's total deadline, from the connect to the last byte of the
  body. httpx's timeouts bound each read or write, not their sum, so a server sending its
  headers one byte a second holds a request for minutes. When the deadline passes, or at once on
  :meth:`Deadline.fire`, a timer shuts the request's socket down, which ends the blocked read.
  The socket is learnt from httpcore's ``trace`` extension when the connection is made, so the
  client must open a connection per request (``httpx.Limits(max_keepalive_connections=0)``): a
  reused pooled connection makes no connect to learn it from.
- :class:`InFlight`, the deadlines of one batch of requests, to end them all at once (SIGTERM).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

__all__ = ["Deadline", "InFlight", "refuse_compressed"]

_CONNECTED = ("connect_tcp.complete", "connect_unix_socket.complete", "start_tls.complete")


def refuse_compressed(response: httpx.Response) -> None:
    """Refuse an answer compressed although identity was asked for (httpx would inflate it
    before the caller's size caps see a byte): an ``event_hooks={"response": [...]}`` entry."""
    encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise httpx.DecodingError(f"the server sent Content-Encoding {encoding[:40]!r} although "
                                  f"only identity was accepted", request=response.request)


class Deadline:
    """Shuts the request's socket down ``seconds`` after :meth:`start` (or at :meth:`fire`),
    unless :meth:`stop` came first. Pass :meth:`trace` as the request's ``trace`` extension."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self.cancelled = False  # fired by InFlight.cancel, not by the clock
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        self._ends = float("inf")
        self._timer = threading.Timer(max(0.0, seconds), self.fire)
        self._timer.daemon = True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        # the TCP socket, and for https the TLS socket that took its descriptor over (wrapping
        # detaches the first: shutting it down would do nothing)
        if event.endswith(_CONNECTED) and info.get("return_value") is not None:
            sock = info["return_value"].get_extra_info("socket")
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
                    late = self.fired
                if late:  # connected just as the deadline passed
                    _shutdown(sock)

    def start(self) -> None:
        self._ends = time.monotonic() + self.seconds
        self._timer.start()

    @property
    def passed(self) -> bool:
        """Whether the deadline has passed (or was fired), checked between reads."""
        return self.fired or time.monotonic() > self._ends

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        self._timer.cancel()

    def fire(self, cancel: bool = False) -> None:
        with self._lock:
            if self._stopped:
                return
            self.fired, self.cancelled = True, cancel
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed
        sock.shutdown(socket.SHUT_RDWR)


class InFlight:
    """The deadlines of the requests in flight for one batch: :meth:`cancel` fires them all and
    every one started afterwards, so a SIGTERM or Ctrl-C in the caller's thread ends the worker
    threads' requests at once instead of after their timeouts."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self._live: set[Deadline] = set()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[Deadline]:
        """A started :class:`Deadline` for one request, stopped when the block ends."""
        deadline = Deadline(seconds)
        with self._lock:
            self._live.add(deadline)
        deadline.start()
        if self.cancelled.is_set():
            deadline.fire(cancel=True)
        try:
            yield deadline
        finally:
            deadline.stop()
            with self._lock:
                self._live.discard(deadline)

    def cancel(self) -> None:
        self.cancelled.set()
        with self._lock:
            live = list(self._live)
        for deadline in live:
            deadline.fire(cancel=True)
