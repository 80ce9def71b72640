"""What the tests' fake HTTP servers share: a quiet HTTP/1.1 handler base and a threaded server
on 127.0.0.1 that serves until it is closed. Each test module keeps its own handler logic."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 (as the servers faked speak it), and no request log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler],
          bind: Callable[[socket.socket], object] | None = None) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer for `handler` on 127.0.0.1 serving on a daemon thread; `bind`
    binds its socket (default: to any free port). Close it with
    ``shutdown()`` and ``server_close()``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=bind is None)
    server.daemon_threads = True
    if bind is not None:
        bind(server.socket)
        server.server_address = server.socket.getsockname()[:2]  # as server_bind sets it
        server.server_activate()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
