"""`--duration` ends a live ingest on time while its server is connected but stalls: silent after
some posts, trickling half a line (or half its headers) a byte at a time, or never answering a
websocket's close. What was sent before is confirmed on the broker and the cursor saved, so the
next run goes on from there; a silent stream without a deadline is still reopened after the read
timeout. Real local servers, the real producer, broker and CLI; wall time measured."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.broker import EmbeddedBroker
from ingest.runs import ingest_live
from ingest.sources.base import Checkpoint, SourceRecord
from ingest.sources.jetstream import JetstreamSource
from ingest.sources.mastodon import MastodonSource
from polarwatch.cli import main
from polarwatch.config import Config
from tests.http_fakes import QuietHandler, serve
from tests.ingest.test_live_sources import js_post, status
from tests.kafka_helpers import consume, stream_env

REPO = Path(__file__).resolve().parents[2]
DURATION = 3.0
LATE = 1.5  # how much past its deadline a run may end
STALL_MAX_S = 20.0  # a stalled server gives up after this (ends the test even without the fix)
# fixed ports (a server restarted at the same URL keeps its port); each pytest-xdist worker its
# own fifty, so a worker's server never takes a port another worker's test expects to be its own
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
PORTS = range(19600 + 50 * _WORKER, 19650 + 50 * _WORKER)
TOPIC = "gun_control"
STATUSES = [status(n, f"#GunControl now ({n})") for n in range(1, 13)]
JS_MESSAGES = [js_post(i, f"Gun control is overdue #guncontrol ({i})") for i in range(1, 11)]


def _bind(sock: socket.socket, port: int | None = None) -> int:
    """The first free port of PORTS, or `port` (a server started again at the same URL)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for candidate in PORTS if port is None else [port]:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", candidate))
            return candidate
    raise RuntimeError(f"no free port in {PORTS}")


class StallingMastodon:
    """A Mastodon streaming API: a heartbeat and the `stream` statuses `pace` s apart, then
    (`then`) ``stall``: nothing more; ``trickle``: half an event, a byte every 0.2 s; ``beat``:
    a heartbeat every 0.1 s; ``headers``: its response headers trickled instead of all that.
    Its timeline API (the catch-up) has the `timeline` statuses. It gives up, and hangs up,
    after STALL_MAX_S."""

    def __init__(self, stream: list[dict[str, Any]], then: str = "stall", pace: float = 0.0,
                 timeline: list[dict[str, Any]] | None = None, port: int | None = None) -> None:
        self.requests: list[str] = []
        self.stop = threading.Event()
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                if "/timelines/" in self.path:
                    min_id = int(parse_qs(urlsplit(self.path).query)["min_id"][0])
                    body = json.dumps([s for s in (timeline or [])
                                       if int(s["id"]) > min_id][::-1]).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                with contextlib.suppress(OSError):
                    self._stream()
                self.close_connection = True  # given up: hang up

            def _drip(self, first: bytes, byte: bytes) -> None:
                self.wfile.write(first)
                self.wfile.flush()
                while not outer.stop.wait(0.2) and time.monotonic() < until:
                    self.wfile.write(byte)
                    self.wfile.flush()

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _stream(self) -> None:
                if then == "headers":
                    return self._drip(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a")
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(b":)\n")  # a heartbeat, as Mastodon says first
                for s in stream:
                    self._chunk(b"event: update\ndata: %s\n\n" % json.dumps(s).encode())
                    outer.stop.wait(pace)
                if then == "trickle":
                    self._chunk(b"event: update\ndata: {")
                    return self._drip(b"", b"1\r\nx\r\n")  # one-byte chunks
                while not outer.stop.wait(0.1 if then == "beat" else STALL_MAX_S) and \
                        time.monotonic() < until:
                    self._chunk(b":thump\n")

        until = time.monotonic() + STALL_MAX_S
        self.server = serve(Handler, lambda sock: _bind(sock, port))
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


class StallingJetstream:
    """A Jetstream by hand: it completes the websocket handshake, sends the `messages` from the
    ``cursor`` asked for (inclusive) `pace` s apart, then stalls: it reads nothing more, so a
    client's close frame is never answered."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, messages: list[dict[str, Any]], pace: float = 0.0,
                 port: int | None = None) -> None:
        self.messages, self.pace = messages, pace
        self.attempts: list[str] = []  # request paths
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.port = _bind(self.sock, port)
        self.url = f"ws://127.0.0.1:{self.port}/subscribe"
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.sock.accept()
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            lines = request.split(b"\r\n")
            self.attempts.append(lines[0].split()[1].decode())
            query = parse_qs(urlsplit(self.attempts[-1]).query)
            cursor = int(query["cursor"][0]) if "cursor" in query else 0
            key = next(line.split(b":", 1)[1].strip() for line in lines
                       if line.lower().startswith(b"sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key + self.GUID).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            for msg in (m for m in self.messages if m["time_us"] >= cursor):
                data = json.dumps(msg).encode()
                conn.sendall(b"\x81\x7e" + len(data).to_bytes(2, "big") + data)  # text frame
                self.stop.wait(self.pace)
            self.stop.wait(STALL_MAX_S)

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):  # wakes the accept() (a close alone would not)
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@contextlib.contextmanager
def serving(server: StallingMastodon | StallingJetstream) -> Iterator[str]:
    try:
        yield server.url
    finally:
        server.close()


def _timed_run(cfg: Config, source: Any, kind: str, state: Path,
               duration: float = DURATION) -> tuple[bool, float]:
    started = time.monotonic()
    reached = ingest_live(cfg, source, kind, topic=TOPIC, state_dir=state, duration=duration)
    return reached, time.monotonic() - started


def _saved(cfg: Config, kind: str, source: Any, state: Path) -> Any:
    saved = Checkpoint(state, kind, f"{source.checkpoint_key()}|{cfg.topics.posts}").load()
    return None if saved is None else saved["position"]


def _sent_ids(cfg: Config, expected: int) -> Counter[str]:
    records = consume(cfg.broker.bootstrap_servers, cfg.topics.posts, expected)
    return Counter(json.loads(r.value)["id"] for r in records)


@pytest.mark.parametrize("then", ["stall", "trickle", "headers"])
def test_mastodon_ends_at_its_duration_while_connected(stream_config: Config, tmp_path: Path,
                                                       then: str) -> None:
    """Five statuses 0.5 s apart, then silence (the last read waited its whole read timeout,
    which was the time left when the stream opened), half an event trickled (each byte came
    within the read timeout: no end), or headers trickled (the same, before the answer)."""
    sent = [] if then == "headers" else STATUSES[:5]
    state = tmp_path / "state"
    with serving(StallingMastodon(sent, then, pace=0.5)) as url:
        source = MastodonSource(url, tag="guncontrol")
        reached, took = _timed_run(stream_config, source, "mastodon", state)
    assert DURATION - 0.1 <= took < DURATION + LATE, f"{then}: ran {took:.2f} s"
    host = urlsplit(url).netloc
    if then == "headers":  # never answered: the run says so, with the reason
        assert reached is False and source.last_error == "no complete answer before the deadline"
        return
    assert reached is True
    assert _saved(stream_config, "mastodon", source, state) == STATUSES[4]["id"]
    assert _sent_ids(stream_config, 5) == Counter(f"mastodon:{host}:{s['id']}" for s in sent)


def test_mastodon_resumes_after_a_stalled_run_without_loss_or_duplicates(
        stream_config: Config, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = StallingMastodon(STATUSES[:5], "stall", pace=0.5)
    with serving(first) as url:
        _, took = _timed_run(stream_config, MastodonSource(url, tag="guncontrol"), "mastodon",
                             state)
    assert took < DURATION + LATE
    # the instance again: 6-8 were published meanwhile (catch-up), 9-12 come on the stream
    server = StallingMastodon(STATUSES[8:], "beat", timeline=STATUSES[:8], port=first.port)
    with serving(server) as url:
        source = MastodonSource(url, tag="guncontrol")
        reached, took = _timed_run(stream_config, source, "mastodon", state, duration=2.0)
    assert reached is True and took < 2.0 + LATE
    assert f"min_id={STATUSES[4]['id']}" in server.requests[0]  # after the saved cursor
    assert _saved(stream_config, "mastodon", source, state) == STATUSES[-1]["id"]
    host = urlsplit(url).netloc
    assert _sent_ids(stream_config, 12) == Counter(f"mastodon:{host}:{s['id']}"
                                                   for s in STATUSES)  # each exactly once


@pytest.mark.parametrize("sent", [0, 5])
def test_jetstream_ends_at_its_duration_while_connected(stream_config: Config, tmp_path: Path,
                                                        sent: int) -> None:
    """Silent from the start or after five posts, and deaf to the close frame: the closing
    handshake waits less once the deadline passed (it waited 2 s, after an idle tick of up
    to 1 s)."""
    state = tmp_path / "state"
    with serving(StallingJetstream(JS_MESSAGES[:sent], pace=0.4)) as url:
        source = JetstreamSource(url)
        reached, took = _timed_run(stream_config, source, "jetstream", state)
    assert reached is True and source.connections == 1
    assert DURATION - 0.1 <= took < DURATION + LATE, f"{sent} posts, then stalled: {took:.2f} s"
    if sent:
        assert _saved(stream_config, "jetstream", source, state) == JS_MESSAGES[sent - 1][
            "time_us"]
        assert set(_sent_ids(stream_config, sent)) == \
            {f"at://did:plc:alice/app.bsky.feed.post/r{i}" for i in range(1, sent + 1)}


def test_jetstream_resumes_after_a_stalled_run(stream_config: Config, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = StallingJetstream(JS_MESSAGES[:5], pace=0.4)
    with serving(first) as url:
        _, took = _timed_run(stream_config, JetstreamSource(url), "jetstream", state)
    assert took < DURATION + LATE
    server = StallingJetstream(JS_MESSAGES, port=first.port)  # the relay again, stalling again
    with serving(server) as url:
        source = JetstreamSource(url)
        reached, took = _timed_run(stream_config, source, "jetstream", state, duration=2.0)
    assert reached is True and took < 2.0 + LATE
    assert parse_qs(urlsplit(server.attempts[0]).query)["cursor"] == [str(JS_MESSAGES[4]
                                                                          ["time_us"])]
    assert _saved(stream_config, "jetstream", source, state) == JS_MESSAGES[-1]["time_us"]
    got = _sent_ids(stream_config, 10)
    # each once: Jetstream replays the event at the cursor, and the resumed run knows it as sent
    assert got == Counter({f"at://did:plc:alice/app.bsky.feed.post/r{i}": 1
                           for i in range(1, 11)})


def test_a_silent_stream_without_duration_is_reopened_after_the_read_timeout() -> None:
    """No deadline: nothing is cut, the read timeout alone tells a dead link (the stream says
    one heartbeat, then nothing) and the source reconnects after it."""
    read_timeout = 1.0
    with serving(StallingMastodon([], "stall")) as url:
        source = MastodonSource(url, tag="guncontrol", read_timeout=read_timeout,
                                sleep=lambda s: None)
        records = cast(Generator[SourceRecord | None], source.records(None))
        beats = []
        for rec in records:  # one heartbeat per connection
            assert rec is None
            beats.append(time.monotonic())
            if len(beats) == 2:
                break
        records.close()
    assert source.connections == 2
    assert read_timeout <= beats[1] - beats[0] < read_timeout + LATE
    assert source.last_error is not None and source.last_error.startswith("ReadTimeout")


def test_the_cli_ends_a_trickling_mastodon_stream_at_its_duration(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in stream_env(broker.bootstrap, tmp_path).items():
        monkeypatch.setenv(key, value)
    with serving(StallingMastodon(STATUSES[:4], "trickle", pace=0.2)) as url:
        started = time.monotonic()
        rc = main(["--config", str(REPO / "polarwatch.toml"), "ingest", "mastodon", "--instance",
                   url, "--tag", "guncontrol", "--topic", TOPIC, "--state-dir",
                   str(tmp_path / "state"), "--duration", "3s"])
        took = time.monotonic() - started
    assert rc == 0
    assert took < DURATION + LATE + 2, f"ran {took:.2f} s"  # + config, imports, topic creation
    assert "4 posts sent" in capsys.readouterr().err
