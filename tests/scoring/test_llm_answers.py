"""The llm backend against a real local HTTP server whose answers are wrong in ways a real
server's are: an error body echoing the API key, an answer without emotion or intensity, a
429 with Retry-After, an HTML page, a connection dropped mid-answer. What the errors say, what
the fallback labels, and how many calls the cascade's budget lets through."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels
from scoring.extractors import PostPair, get_extractor
from scoring.extractors.llm_http import LLMExtractor
from scoring.fallback import CascadeExtractor, FallbackExtractor, build_extractor

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-SECRET123"
POST = PostPair("p1", "We need stricter gun laws.", "gun_control")
GOOD = {"stance": {"label": "pro", "explanation": "s"}, "affect": {"label": "no",
        "explanation": "a"}, "emotion": "anger", "intensity": "low"}


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    ctype: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    drop: bool = False  # send half the body, then hang up


def completion(content: object) -> Answer:
    text = content if isinstance(content, str) else json.dumps(content)
    return Answer(body=json.dumps({"choices": [{"message": {"content": text}}]}).encode())


@dataclass
class Server:
    """Answers each POST with the next of `answers` (the last one repeats)."""

    answers: list[Answer]
    seen: list[tuple[float, str | None]] = field(default_factory=list)  # (time, Authorization)
    url: str = ""



@pytest.fixture
def serve() -> Iterator[list[Server]]:
    """serve[0] is set by the test; the server runs while the test does."""
    holder: list[Server] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            srv = holder[0]
            srv.seen.append((time.monotonic(), self.headers.get("Authorization")))
            ans = srv.answers[min(len(srv.seen), len(srv.answers)) - 1]
            self.send_response(ans.status)
            self.send_header("Content-Type", ans.ctype)
            self.send_header("Content-Length", str(len(ans.body)))
            for k, v in ans.headers:
                self.send_header(k, v)
            self.end_headers()
            if ans.drop:
                self.wfile.write(ans.body[: len(ans.body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(ans.body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    holder.append(Server([], url=f"http://127.0.0.1:{httpd.server_port}/v1"))
    try:
        yield holder
    finally:
        httpd.shutdown()
        httpd.server_close()


def _use(serve: list[Server], *answers: Answer) -> Server:
    serve[0].answers = list(answers)
    return serve[0]


def _error(llm: LLMExtractor) -> str:
    with pytest.raises(BackendError) as info:
        llm.extract([POST])
    return str(info.value)


def test_the_api_key_an_error_body_echoes_is_redacted(topics: list[Topic], serve: list[Server],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    srv = _use(serve, Answer(401, json.dumps({"error": f"invalid api key: Bearer {KEY}; "
                                                       f"key={KEY}"}).encode()))
    llm = LLMExtractor(topics, base_url=srv.url, api_key=KEY, retries=0)
    msg = _error(llm)
    assert srv.seen[0][1] == f"Bearer {KEY}"  # it was sent, and echoed back
    assert "HTTP 401" in msg and "invalid api key" in msg
    assert "SECRET" not in msg and msg.count("[redacted]") == 2
    chain = FallbackExtractor(topics, [llm, get_extractor("lexicon", topics)])
    assert chain.extract([POST])[0].backend == "lexicon"
    assert "SECRET" not in caplog.text + " ".join(chain.last_errors)


@pytest.mark.parametrize("answer", [
    {k: v for k, v in GOOD.items() if k not in ("emotion", "intensity")},  # both missing
    GOOD | {"emotion": "rage"},  # not an emotion
    GOOD | {"intensity": "extreme"},  # not an intensity
    GOOD | {"emotion": None},
])
def test_an_answer_without_emotion_or_intensity_is_a_failed_answer(
        topics: list[Topic], serve: list[Server], answer: dict[str, object]) -> None:
    srv = _use(serve, completion(answer))
    llm = LLMExtractor(topics, base_url=srv.url, retries=2, backoff=0.0)
    msg = _error(llm)
    assert "unusable answer" in msg and ("emotion" in msg or "intensity" in msg)
    assert len(srv.seen) == 1  # temperature 0: asking again gets the same answer
    chain = FallbackExtractor(topics, [llm, get_extractor("lexicon", topics)])
    labels = chain.extract([POST])
    assert labels[0].backend == "lexicon" and chain.stats["llm failed"] == 1


def test_a_complete_answer_is_the_llms_label(topics: list[Topic], serve: list[Server]) -> None:
    srv = _use(serve, completion(GOOD | {"intensity": "high"}))
    lab = LLMExtractor(topics, base_url=srv.url).extract([POST])[0]
    assert (lab.backend, lab.stance, lab.emotion, lab.intensity) == ("llm", "pro", "anger", 1.0)


@pytest.mark.parametrize("value", ["1", "DATE"])
def test_a_429_waits_for_retry_after(topics: list[Topic], serve: list[Server],
                                     value: str) -> None:
    if value == "DATE":  # an HTTP-date 2 s ahead: at least ~1 s once rounded to the second
        value = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 2))
    srv = _use(serve, Answer(429, b'{"error": "slow down"}', headers=(("Retry-After", value),)),
               completion(GOOD))
    llm = LLMExtractor(topics, base_url=srv.url, retries=2, backoff=0.01)
    assert llm.extract([POST])[0].backend == "llm"
    assert len(srv.seen) == 2 and srv.seen[1][0] - srv.seen[0][0] >= 0.95


@pytest.mark.timeout(20)  # without the cap it would wait the hour it is asked to
def test_a_retry_after_over_the_cap_is_not_waited_for(topics: list[Topic],
                                                      serve: list[Server]) -> None:
    srv = _use(serve, Answer(429, b"{}", headers=(("Retry-After", "3600"),)))
    llm = LLMExtractor(topics, base_url=srv.url, retries=2, backoff=0.01, max_retry_after=5)
    started = time.monotonic()
    msg = _error(llm)
    assert time.monotonic() - started < 2 and len(srv.seen) == 1
    assert "retry after 3600 s" in msg and "max_retry_after (5 s)" in msg


def test_the_cascade_budget_counts_http_calls_not_posts(topics: list[Topic],
                                                        serve: list[Server]) -> None:
    srv = _use(serve, Answer(500, b'{"error": "boom"}'))
    lexicon = build_extractor("lexicon", topics)
    llm = LLMExtractor(topics, base_url=srv.url, retries=2, backoff=0.0, concurrency=1)
    cascade = CascadeExtractor(topics, lexicon, llm, threshold=1.01, max_calls_per_minute=4)
    batch = [PostPair(f"p{i}", f"post number {i}", "gun_control") for i in range(6)]
    labels = cascade.extract(batch)
    assert len(srv.seen) == 4  # the budget, though each post may take 3 attempts
    assert [lab.backend for lab in labels] == ["lexicon"] * 6
    assert cascade.stats["over budget"] + cascade.stats["expert failed"] == 6
    assert cascade.stats["expert failed"] == 1  # p0: 3 attempts; p1: 1 attempt, then refused
    assert llm.call_gate is None  # the chain may use the same backend, unbudgeted
    _use(serve, completion(GOOD))
    assert llm.extract([PostPair("x", "more text", "gun_control")])[0].backend == "llm"


def test_error_wording(topics: list[Topic], serve: list[Server]) -> None:
    llm = LLMExtractor(topics, base_url=serve[0].url, retries=0)
    chain = FallbackExtractor(topics, [llm, get_extractor("lexicon", topics)])
    body = json.dumps({"choices": [{"message": {"content": json.dumps(GOOD)}}]}).encode()
    _use(serve, Answer(body=body, drop=True))
    chain.extract([POST])
    assert chain.last_errors[0].startswith("llm: post 'p1' failed")  # one prefix, not two
    assert f"dropped the connection after {len(body) // 2} bytes" in chain.last_errors[0]
    assert "within" not in chain.last_errors[0]  # it was no timeout
    llm._down_until = 0.0  # the dropped connection tripped the breaker: reset it
    page = b"<html><head><style>p {color: red}</style></head><body><h1>Bad Gateway</h1>" \
           + b"<p>nginx</p>" * 300 + b"</body></html>"
    _use(serve, Answer(502, page, "text/html"))
    msg = _error(llm)
    assert "HTTP 502" in msg and "Bad Gateway nginx" in msg and "<" not in msg
    assert "color" not in msg and len(msg) < 400
    _use(serve, Answer(200, b"<html><body>Please log in</body></html>", "text/html"))
    msg = _error(llm)
    assert "answered text/html, not JSON: 'Please log in'" in msg


def test_labels_of_a_good_batch_are_in_order(topics: list[Topic], serve: list[Server]) -> None:
    srv = _use(serve, completion(GOOD))
    out = LLMExtractor(topics, base_url=srv.url).extract([POST, PostPair("p2", "x", "gun_control")])
    assert [lab.post_id for lab in out] == ["p1", "p2"] and all(isinstance(lab, Labels)
                                                                 for lab in out)
