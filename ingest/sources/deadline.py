"""A live source's reads end at its deadline, whatever the server does.

A socket read waits until bytes come or its timeout passes. A server that accepted the
connection and then stalls keeps a reader there for the whole read timeout (60 s for Mastodon);
one that trickles bytes that never complete a line (or headers) keeps it there for ever, each
read ending in time. :class:`DeadlineCut` shuts the socket in use down at the deadline from a
timer thread: the blocked read returns at once with the end of the stream, the source sees a
connection that ended, its deadline passed, and stops; the caller then confirms and saves what
was sent, as at any end. Without a deadline nothing is cut (the read timeout alone tells a dead
link, which is then reopened).

The socket comes from httpx's documented ``trace`` request extension: each new connection
(``connection.connect_tcp.complete``, then ``connection.start_tls.complete`` for TLS) hands over
its network stream, whose ``get_extra_info("socket")`` is the socket.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from types import TracebackType
from typing import Any

LOG = logging.getLogger(__name__)


class DeadlineCut:
    """Shuts down the latest watched socket at `deadline` (a ``time.monotonic()`` value; None:
    never). Use as a context manager around the reads; `fired` says whether it cut."""

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.fired = False
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None

    def __enter__(self) -> DeadlineCut:
        if self.deadline is not None:
            self._timer = threading.Timer(max(0.0, self.deadline - time.monotonic()), self.cut)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._sock = None

    def watch(self, sock: socket.socket | None) -> None:
        """Reads go through `sock` from now on; past the deadline it is cut at once (a
        connection opened while the timer fired)."""
        self._sock = sock
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.cut()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """The httpx ``trace`` extension: watch each new connection's socket."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                self.watch(stream.get_extra_info("socket"))

    def cut(self) -> None:
        sock = self._sock
        if sock is None:
            return
        # set before the shutdown: the reader it wakes asks at once whether the deadline cut
        # (set after, a reader sometimes saw False and blamed the server: "Server disconnected
        # without sending a response", in CI twice)
        self.fired = True
        try:
            # the descriptor itself, also under TLS (ssl.SSLSocket.shutdown would first drop
            # the TLS object a reader in another thread is using)
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # closed meanwhile: nothing was cut
            self.fired = False
            return
        LOG.debug("deadline reached: the connection was shut down")
