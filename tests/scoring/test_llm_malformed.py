"""A real HTTP server answering the llm backend with malformed chat completions: the backend
raises its own BackendError (which the fallback chain catches), never AttributeError & co."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from scoring.extractors import PostPair
from scoring.extractors.llm_http import LLMExtractor
from scoring.fallback import build_extractor

REPO = Path(__file__).resolve().parents[2]
MALFORMED = {
    "message null": {"choices": [{"message": None}]},
    "content is a list": {"choices": [{"message": {"content": ["x"]}}]},
    "choices empty": {"choices": []},
    "choices null": {"choices": None},
    "choice is a string": {"choices": ["hello"]},
    "body is a list": [1, 2],
    "body is a string": "hello",
    "deeply nested": "DEEP",
}


class _Malformed(BaseHTTPRequestHandler):
    body: bytes = b""

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass



@pytest.fixture(params=sorted(MALFORMED))
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    shape = MALFORMED[request.param]
    body = (b'{"choices": ' + b"[" * 100_000 + b"]" * 100_000 + b"}" if shape == "DEEP"
            else json.dumps(shape).encode())
    handler = type("Handler", (_Malformed,), {"body": body})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


def test_a_malformed_reply_raises_the_backends_own_error(topics: list[Topic], server: str
                                                         ) -> None:
    llm = LLMExtractor(topics, base_url=server, retries=1, backoff=0.0)
    with pytest.raises(BackendError, match="unusable answer"):
        llm.extract([PostPair("a", "Ban assault weapons now!", "gun_control")])


def test_the_fallback_chain_labels_the_post_with_the_next_backend(topics: list[Topic],
                                                                  server: str) -> None:
    chain = build_extractor("llm", topics, ["lexicon"],
                            options={"llm": {"base_url": server, "retries": 0}})
    labels = chain.extract([PostPair("a", "Ban assault weapons now!", "gun_control"),
                            PostPair("b", "No.", "gun_control", "Ban them!")])
    assert [lab.backend for lab in labels] == ["lexicon", "lexicon"]
