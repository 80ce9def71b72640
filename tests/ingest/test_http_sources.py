"""Mastodon's HTTP against real local servers: the access token never follows a redirect to
another host, and an event-stream line that never ends is a reconnect, not memory growth."""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from ingest.sources.mastodon import MAX_LINE_BYTES, MastodonSource, bounded_lines
from tests.http_fakes import QuietHandler, serve

TOKEN = "s3cret"


def _gzip_bomb(size: int = 1 << 30) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as f:
        block = b"data: " + b"0" * ((1 << 20) - 6)
        for _ in range(size >> 20):
            f.write(block)
    return out.getvalue()


GZIP_BOMB = _gzip_bomb()  # ~1 MB on the wire


class _Server:
    """GET handler chosen by name; records each request's Authorization header."""

    def __init__(self, behaviour: str, target: str = "") -> None:
        self.auth: list[str | None] = []
        self.encodings: list[str | None] = []
        self.sent = 0
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                outer.auth.append(self.headers.get("Authorization"))
                outer.encodings.append(self.headers.get("Accept-Encoding"))
                with contextlib.suppress(OSError):  # the client hung up
                    getattr(outer, behaviour)(self, target)

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

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

    def endless_event(self, h: BaseHTTPRequestHandler, _target: str) -> None:
        """One event of ever more short ``data:`` lines, never dispatched by a blank line."""
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = b"data: " + b"x" * 100 + b"\n"
        chunk *= 600
        while self.sent < 50 * MAX_LINE_BYTES:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sent += len(chunk)

    def gzip_bomb(self, h: BaseHTTPRequestHandler, _target: str) -> None:
        """A small gzip body that inflates to 1 GiB, sent although identity was asked for."""
        body = GZIP_BOMB
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

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


def test_a_redirect_to_another_host_is_not_followed(servers: list[_Server],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    other = _Server("needs_token")
    home = _Server("redirect", target=other.url)
    servers.extend([other, home])
    source = MastodonSource(home.url, tag="guncontrol", token=TOKEN, catch_up=False,
                            sleep=_stop_at_first_sleep, read_timeout=5)
    with caplog.at_level(logging.WARNING, logger="ingest.sources.mastodon"), \
            pytest.raises(_Stop):
        next(iter(source.records(None)))
    assert home.auth == [f"Bearer {TOKEN}"]
    assert other.auth == []  # never asked, with or without the token
    assert f"redirected off {home.url} to {other.url}: not followed" in caplog.text
    assert home.encodings == ["identity"]  # nothing the client would inflate unchecked


def _reconnect_reason(server: _Server, caplog: pytest.LogCaptureFixture) -> str:
    source = MastodonSource(server.url, tag="guncontrol", catch_up=False,
                            sleep=_stop_at_first_sleep, read_timeout=5)
    with caplog.at_level(logging.WARNING, logger="ingest.sources.mastodon"), \
            pytest.raises(_Stop):
        next(iter(source.records(None)))
    assert "reconnecting" in caplog.text
    return caplog.text


def test_many_short_data_lines_cannot_grow_one_event(servers: list[_Server],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    server = _Server("endless_event")
    servers.append(server)
    assert f"event over {MAX_LINE_BYTES:,} bytes" in _reconnect_reason(server, caplog)
    assert server.sent < 3 * MAX_LINE_BYTES


def test_a_compressed_answer_is_refused_before_it_is_inflated(
        servers: list[_Server], caplog: pytest.LogCaptureFixture) -> None:
    server = _Server("gzip_bomb")
    servers.append(server)
    text = _reconnect_reason(server, caplog)
    assert "Content-Encoding 'gzip' although only identity was accepted" in text


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
