"""Live sources against hostile peers (real local websocket / HTTP servers, no mocks): a frame
websockets refuses (not UTF-8, too big, far too big) is dead-lettered and passed, a replay that
brings nothing new does not reset the backoff, a restart sends no duplicate, Retry-After ``²`` and
``0``, a redirect to http://, a run refused with 429 or redirected away says so, and a Mastodon
catch-up page that is not a list is asked again and then names the gap."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.broker import free_port
from ingest.runs import ingest_live
from ingest.sources.base import SourceError, SourceRecord
from ingest.sources.jetstream import JetstreamSource
from ingest.sources.mastodon import MastodonSource
from ingest.sources.reconnect import Backoff, retry_after_seconds
from polarwatch.backoff import longer_wait
from polarwatch.config import Config
from tests.http_fakes import QuietHandler, serve
from tests.ingest.test_live_sources import T0, Sleeps, js_post


class Relay:
    """A websocket server replaying `events` ((time_us, frame bytes, as text?)) from the cursor
    (inclusive) and then closing, or answering `status` / a redirect to `location`."""

    def __init__(self, events: list[tuple[int, bytes]], *, status: int | None = None,
                 headers: dict[str, str] | None = None, hold: bool = False) -> None:
        from websockets.sync.server import serve as ws_serve

        self.events, self.status, self.headers, self.hold = events, status, headers or {}, hold
        self.cursors: list[int | None] = []
        self.server = ws_serve(self._handle, "127.0.0.1", 0, process_request=self._process,
                               max_size=None)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/subscribe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _process(self, conn: Any, request: Any) -> Any:
        query = parse_qs(urlsplit(request.path).query)
        self.cursors.append(int(query["cursor"][0]) if "cursor" in query else None)
        if self.status is None:
            return None
        response = conn.respond(self.status, "no\n")
        for key, value in self.headers.items():
            response.headers[key] = value
        return response

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        cursor = self.cursors[-1]
        with contextlib.suppress(ConnectionClosed):
            for time_us, frame in self.events:
                if cursor is None or time_us >= cursor:
                    ws.send(frame, text=True)  # bytes as a text frame, valid UTF-8 or not
            if self.hold:
                while True:
                    ws.recv()

    def close(self) -> None:
        self.server.shutdown()


def _frame(i: int, text: str = "gun laws") -> bytes:
    return json.dumps(js_post(i, text)).encode()


def _read(source: JetstreamSource, position: int | None = None,
          seconds: float = 10.0) -> list[SourceRecord]:
    source.deadline = time.monotonic() + seconds
    return [r for r in source.records(position) if r is not None]


def test_refused_frames_are_dead_lettered_and_passed() -> None:
    latin1 = _frame(3, "caf\u00e9 gun laws").replace(b"caf\\u00e9", b"caf\xe9")
    big = _frame(4, "gun " * 1_400_000)  # 5.6 MB: over the 4 MiB websockets limit
    relay = Relay([(T0 + 1, _frame(1)), (T0 + 2, _frame(2)), (T0 + 3, latin1),
                   (T0 + 4, big), (T0 + 5, _frame(5))], hold=True)
    source = JetstreamSource(relay.url, sleep=Sleeps(), idle_tick=0.1)
    try:
        recs = _read(source, seconds=4)
    finally:
        relay.close()
    posts = [r.position - T0 for r in recs if r.post is not None and not r.replayed]
    dead = {r.position - T0: r.error for r in recs if r.error is not None}
    assert set(posts) == {1, 2, 5} and set(dead) == {3, 4}
    assert dead[3] is not None and "can't decode byte 0xe9" in dead[3]
    assert dead[4] is not None and "more than the 262,144 allowed" in dead[4]
    assert source.cursor == T0 + 5 and source.connections == 2  # one wide read for the 5.6 MB
    assert relay.cursors == [None, T0 + 3]  # the non-UTF-8 frame moved the cursor too


def test_a_frame_over_the_wide_limit_is_dead_lettered_as_known_and_skipped() -> None:
    huge = _frame(10, "gun " * 4_300_000)  # 17.2 MB: over the 16 MiB wide limit too
    relay = Relay([(T0 + 1, _frame(1)), (T0 + 2, _frame(2)), (T0 + 10, huge),
                   (T0 + 100, _frame(100)), (T0 + 101, _frame(101))], hold=True)
    source = JetstreamSource(relay.url, sleep=Sleeps(), idle_tick=0.1,
                             backoff=Backoff(initial=0.01))
    try:
        recs = _read(source, seconds=8)
    finally:
        relay.close()
    dead = [r for r in recs if r.error is not None]
    assert len(dead) == 1 and dead[0].position == T0 + 2  # after the cursor it follows
    assert dead[0].error is not None and "close 1009" in dead[0].error
    assert json.loads(dead[0].raw) == {"cursor": T0 + 2, "close_code": 1009, "url": relay.url}
    sent = {r.position - T0 for r in recs if r.post is not None}
    assert {100, 101} <= sent and source.cursor == T0 + 101
    assert [c - T0 for c in relay.cursors if c is not None][-5:] == [3, 4, 6, 10, 18]


def test_a_replay_that_brings_nothing_new_does_not_reset_the_backoff() -> None:
    relay = Relay([(T0 + 1, _frame(1))])  # the cursor's event, then a close, for ever
    sleeps = Sleeps()
    source = JetstreamSource(relay.url, sleep=sleeps, idle_tick=0.1,
                             backoff=Backoff(initial=0.01, maximum=1.0))
    try:
        _read(source, T0 + 1, seconds=1.5)
    finally:
        relay.close()
    # every connection drew a wait (none was reset by the replay); the read may stop between a
    # handshake and its close's wait, so the last connection may not have drawn one yet
    assert source.connections >= 4
    assert source.backoff.attempt in (source.connections - 1, source.connections)
    assert max(sleeps) > 0.1  # 0.01, 0.02, 0.04 ... grew


def test_a_restart_does_not_send_the_event_at_the_saved_cursor_again() -> None:
    relay = Relay([(T0 + i, _frame(i)) for i in (1, 2, 3)], hold=True)
    source = JetstreamSource(relay.url, sleep=Sleeps(), idle_tick=0.1)
    try:
        recs = _read(source, T0 + 2, seconds=1)
    finally:
        relay.close()
    assert [(r.position - T0, r.replayed) for r in recs] == [(2, True), (3, False)]


def test_a_cursor_the_user_names_keeps_its_event() -> None:
    """`ingest jetstream --cursor N` starts at N: the event at N is sent (a review: the replay
    rule for a saved cursor dropped it)."""
    relay = Relay([(T0 + i, _frame(i)) for i in (1, 2, 3)], hold=True)
    source = JetstreamSource(relay.url, sleep=Sleeps(), idle_tick=0.1)
    source.position_was_sent = False  # what ingest_live sets for --cursor
    try:
        recs = _read(source, T0 + 2, seconds=1)
    finally:
        relay.close()
    assert [(r.position - T0, r.replayed) for r in recs] == [(2, False), (3, False)]


@pytest.mark.parametrize("header", ["\u00b2", "0"])
def test_retry_after_superscript_or_zero_waits_the_backoff(header: str) -> None:
    assert retry_after_seconds(header, 2.5) == 2.5 and longer_wait(header, 2.5, 9) == 2.5
    relay = Relay([], status=429, headers={"Retry-After": header})
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # really waits: the number of attempts is the point
        sleeps.append(seconds)
        time.sleep(seconds)

    source = JetstreamSource(relay.url, sleep=sleep, backoff=Backoff(initial=0.4))
    try:
        _read(source, seconds=1.0)
    finally:
        relay.close()
    assert sleeps[0] >= 0.2 and len(relay.cursors) <= 4, (sleeps, relay.cursors)


def test_a_redirect_to_http_stops_with_the_address() -> None:
    relay = Relay([], status=302, headers={"Location": "https://127.0.0.1:1/subscribe"})
    source = JetstreamSource(relay.url, sleep=Sleeps())
    try:
        with pytest.raises(SourceError, match="redirected to https://127.0.0.1:1/subscribe, "
                                              "which is not a websocket address"):
            _read(source, seconds=3)
    finally:
        relay.close()


@pytest.mark.parametrize("case", ["429", "redirect"])
def test_the_summary_says_what_the_server_did(stream_config: Config, tmp_path: Path, case: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    elsewhere = f"ws://127.0.0.1:{free_port()}/subscribe"
    relay = (Relay([], status=429, headers={"Retry-After": "1"}) if case == "429" else
             Relay([], status=302, headers={"Location": elsewhere}))
    try:
        with caplog.at_level(logging.INFO):
            reached = ingest_live(stream_config, JetstreamSource(relay.url), "jetstream",
                                  topic="climate_change", state_dir=tmp_path / "s", duration=1.5)
    finally:
        relay.close()
    assert reached is False
    if case == "429":
        assert "answered HTTP 429 to every attempt in 1.5 s" in caplog.text
    else:
        assert f"redirected to {elsewhere}, which could not be reached" in caplog.text
    assert "check the URL" not in caplog.text


def _status(i: int) -> dict[str, Any]:
    return {"id": str(1000 + i), "created_at": "2024-05-01T00:00:00.000Z", "reblog": None,
            "content": f"<p>gun laws {i}</p>", "account": {"id": "7"}, "language": "en"}


def test_mastodon_catch_up_page_not_a_list_is_asked_again_then_the_gap_is_named(
        caplog: pytest.LogCaptureFixture) -> None:
    timeline: list[str] = []
    streams: list[int] = []

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if "/timelines/" in self.path:
                timeline.append(self.path)
                body, kind = b"<html>checking your browser</html>", "text/html"
            else:
                streams.append(1)
                ids = (1, 2) if len(streams) == 1 else (5,)
                body = b"".join(b"event: update\ndata: " + json.dumps(_status(i)).encode() +
                                b"\n\n" for i in ids)
                kind = "text/event-stream"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = serve(Handler)
    source = MastodonSource(f"http://127.0.0.1:{server.server_address[1]}", tag="guns",
                            sleep=Sleeps(), backoff=Backoff(initial=0.01))
    source.deadline = time.monotonic() + 2
    try:
        with caplog.at_level(logging.INFO):
            ids = [r.position for r in source.records(None) if r is not None and r.post]
    finally:
        server.shutdown()
        server.server_close()
    assert ids[:3] == ["1001", "1002", "1005"]
    assert len([p for p in timeline if "min_id=1002" in p]) == 3  # asked again, 3 in all
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("catch-up after status 1002 gave up" in m and "text/html" in m and
               "statuses after 1002 and before 1005 may be missing" in m and
               "--cursor 1002" in m for m in said), said
