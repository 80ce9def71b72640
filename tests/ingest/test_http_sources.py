"""Mastodon's HTTP against real local servers: the access token never follows a redirect to
another host, and an event-stream line that never ends is a reconnect, not memory growth."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.sources.base import SourceError
from ingest.sources.mastodon import MAX_LINE_BYTES, MastodonSource, bounded_lines

TOKEN = "s3cret"


class _Server:
    """GET handler chosen by name; records each request's Authorization header."""

    def __init__(self, behaviour: str, target: str = "") -> None:
        self.auth: list[str | None] = []
        self.sent = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                outer.auth.append(self.headers.get("Authorization"))
                with contextlib.suppress(OSError):  # the client hung up
                    getattr(outer, behaviour)(self, target)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def redirect(self, h: BaseHTTPRequestHandler, target: str) -> None:
        h.send_response(302)
        h.send_header("Location", target + h.path)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def needs_token(self, h: BaseHTTPRequestHandler, _target: str) -> None:
        ok = h.headers.get("Authorization") == f"Bearer {TOKEN}"
        body = b"" if ok else b'{"error":"The access token is invalid"}'
        h.send_response(200 if ok else 401)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def no_newline(self, h: BaseHTTPRequestHandler, _target: str) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"data: " + b"x" * 65536
        while self.sent < 50 * MAX_LINE_BYTES:  # 200 MB unless the reader stops first
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sent += len(chunk)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[_Server]]:
    made: list[_Server] = []
    yield made
    for s in made:
        s.close()


class _Stop(Exception):
    pass


def _stop_at_first_sleep(_seconds: float) -> None:
    raise _Stop


def test_the_token_does_not_follow_a_redirect_to_another_host(servers: list[_Server]) -> None:
    other = _Server("needs_token")
    home = _Server("redirect", target=other.url)
    servers.extend([other, home])
    source = MastodonSource(home.url, tag="guncontrol", token=TOKEN, catch_up=False,
                            sleep=_stop_at_first_sleep, read_timeout=5)
    with pytest.raises(SourceError, match="HTTP 401"):
        next(iter(source.records(None)))
    assert home.auth == [f"Bearer {TOKEN}"]
    assert other.auth == [None]  # redirected, but without the token


def test_an_endless_line_is_a_reconnect_not_memory(servers: list[_Server],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    server = _Server("no_newline")
    servers.append(server)
    source = MastodonSource(server.url, tag="guncontrol", catch_up=False,
                            sleep=_stop_at_first_sleep, read_timeout=5)
    with caplog.at_level(logging.WARNING, logger="ingest.sources.mastodon"), \
            pytest.raises(_Stop):
        next(iter(source.records(None)))
    assert f"line over {MAX_LINE_BYTES:,} bytes" in caplog.text
    assert "reconnecting" in caplog.text
    assert server.sent < 5 * MAX_LINE_BYTES  # the reader stopped soon after the cap


def test_bounded_lines_keeps_line_ends_and_the_last_partial_line() -> None:
    chunks = [b"event: up", b"date\r\ndata: 1\n", b"\n:thump\ndata: cut"]
    assert list(bounded_lines(chunks)) == [b"event: update\r\n", b"data: 1\n", b"\n",
                                           b":thump\n", b"data: cut"]
    with pytest.raises(ValueError, match="over 10 bytes"):
        list(bounded_lines([b"0123456789", b"abc"], limit=10))
