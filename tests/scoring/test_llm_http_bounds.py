"""The llm backend against a real local HTTP server that misbehaves: reads are bounded (a 50 MB
answer, an answer that never ends, one that trickles forever) and a redirect is never followed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from scoring.extractors import PostPair
from scoring.extractors.llm_http import MAX_RESPONSE_BYTES, LLMExtractor

REPO = Path(__file__).resolve().parents[2]
POST = [PostPair("p1", "We need stricter gun laws.", "gun_control")]
CHUNK = b"x" * 65536


class _Server:
    """A ThreadingHTTPServer whose POST handler is `behaviour(handler)`; counts bytes sent."""

    def __init__(self, behaviour: str, target: str = "") -> None:
        self.sent = 0
        self.requests: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(dict(self.headers))
                with contextlib.suppress(OSError):  # the client hung up: a bounded reader
                    getattr(outer, behaviour)(self, target)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def huge(self, h: BaseHTTPRequestHandler, _target: str) -> None:  # 50 MB, with a length
        total = 50 * 1024 * 1024
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(total))
        h.end_headers()
        while self.sent < total:
            h.wfile.write(CHUNK)
            self.sent += len(CHUNK)

    def endless(self, h: BaseHTTPRequestHandler, _target: str) -> None:  # chunked, no end
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        while True:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
            self.sent += len(CHUNK)

    def trickle(self, h: BaseHTTPRequestHandler, _target: str) -> None:  # a byte every 50 ms
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        while True:
            h.wfile.write(b"1\r\n \r\n")
            h.wfile.flush()
            self.sent += 1
            time.sleep(0.05)

    def redirect(self, h: BaseHTTPRequestHandler, target: str) -> None:
        h.send_response(307)
        h.send_header("Location", target + "/chat/completions")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()



@pytest.fixture
def serve() -> Iterator[list[_Server]]:
    servers: list[_Server] = []
    yield servers
    for s in servers:
        s.close()


@pytest.mark.parametrize("behaviour", ["huge", "endless"])
def test_an_oversized_answer_is_an_error_not_memory(topics: list[Topic], serve: list[_Server],
                                                    behaviour: str) -> None:
    server = _Server(behaviour)
    serve.append(server)
    llm = LLMExtractor(topics, base_url=server.url, retries=2, backoff=0.01, timeout=30)
    with pytest.raises(BackendError, match=r"over 1,000,000 bytes \(llm max_response_bytes\)"):
        llm.extract(POST)
    assert llm.stats["requests"] == 1  # a server that sends too much is not asked again
    # the reader stopped at the cap: the server could not push the whole 50 MB (or forever)
    assert server.sent < 20 * MAX_RESPONSE_BYTES, server.sent


def test_an_answer_that_never_finishes_times_out_and_trips_the_breaker(
        topics: list[Topic], serve: list[_Server]) -> None:
    server = _Server("trickle")
    serve.append(server)
    llm = LLMExtractor(topics, base_url=server.url, retries=0, timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"no answer from .* within 1 s .*still sending"):
        llm.extract(POST)
    assert time.monotonic() - t0 < 10  # each byte came within the read timeout: the whole
    # answer is what is bounded
    results = llm.extract_each([PostPair("p2", "other text", "gun_control")])
    assert isinstance(results[0], BackendError) and "no answer within 1 s" in str(results[0])
    assert llm.stats["requests"] == 1


def test_a_redirect_is_not_followed_and_the_key_stays_home(topics: list[Topic],
                                                          serve: list[_Server]) -> None:
    other = _Server("huge")
    here = _Server("redirect", target=other.url)
    serve.extend([other, here])
    llm = LLMExtractor(topics, base_url=here.url, api_key="sk-secret", retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=r"HTTP 307 .* not followed .*_EXTRACTOR_LLM_BASE_URL"):
        llm.extract(POST)
    assert here.requests[0]["Authorization"] == "Bearer sk-secret"
    assert other.requests == []  # neither the post nor the key went to the other address
    assert llm.stats["requests"] == 1 and llm.stats["retries"] == 0
