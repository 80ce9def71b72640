"""The llm backend against a real hostile server (tests/scoring/hostile_llm.py): `timeout` bounds
the whole exchange even when the headers trickle in, SIGTERM ends `label` at once, a compressed
answer is refused unread, and an explanation longer than `explanation_chars` is cut."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from scoring.extractors import PostPair
from scoring.extractors.llm_http import LLMExtractor

from .hostile_llm import GOOD, HostileLLM, completion, gzip_bomb

REPO = Path(__file__).resolve().parents[2]
POST = [PostPair("p1", "We need stricter gun laws.", "gun_control")]


@pytest.fixture
def servers() -> Iterator[list[HostileLLM]]:
    started: list[HostileLLM] = []
    yield started
    for server in started:
        server.close()


def test_headers_sent_a_byte_at_a_time_are_cut_at_the_timeout(
        topics: list[Topic], servers: list[HostileLLM]) -> None:
    # ~100 header bytes, one per 0.2 s: each read comes well within httpx's per-read timeout,
    # so only a deadline on the whole exchange ends it after 1 s (before: ~20 s)
    server = HostileLLM("driphead", completion(json.dumps(GOOD)), interval=0.2)
    servers.append(server)
    llm = LLMExtractor(topics, base_url=server.url, retries=0, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"no answer from .* within 1 s \(the answer not "):
        llm.extract(POST)
    assert time.monotonic() - started < 4
    assert llm.stats == {"requests": 1, "cache_hits": 0, "retries": 0, "failures": 1}


def test_sigterm_ends_label_at_once_while_requests_hang(
        tmp_path: Path, servers: list[HostileLLM]) -> None:
    server = HostileLLM("driphead", completion(json.dumps(GOOD)), interval=1.0)
    servers.append(server)
    posts = tmp_path / "posts.jsonl"
    posts.write_text("".join(json.dumps({"id": f"p{i}", "text": f"gun laws {i}",
                                         "topic": "gun_control"}) + "\n" for i in range(2)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = tmp_path / "output.txt"
    with log.open("wb") as err:
        proc = subprocess.Popen(  # two posts: two worker threads, each in a request for 60 s
            [sys.executable, "-m", "polarwatch.cli", "--config", str(REPO / "polarwatch.toml"),
             "label", str(posts), "--backend", "llm", "-O", f"llm.base_url={server.url}",
             "-O", "llm.timeout=60", "-o", str(tmp_path / "out.jsonl")],
            env=env, stdout=err, stderr=err)
    try:
        for _ in range(300):  # both requests are in
            if len(server.heads) == 2:
                break
            time.sleep(0.1)
        assert len(server.heads) == 2, log.read_text()
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        rc = proc.wait(timeout=20)
        assert rc == 128 + signal.SIGTERM and time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(server.heads) == 2  # and no retry went out after the signal


def test_a_compressed_answer_is_refused_unread(topics: list[Topic],
                                               servers: list[HostileLLM]) -> None:
    bomb = gzip_bomb(64)  # ~70 KB that inflate to 64 MB (the audit's: 6.7 KB to 4 GB)
    assert len(bomb) < 200_000
    server = HostileLLM("gzip2", bomb)
    servers.append(server)
    llm = LLMExtractor(topics, base_url=server.url, retries=2, backoff=0.01)
    with pytest.raises(BackendError, match=r"failed after 1 attempt\(s\): unusable answer from "
                       r".*: the server sent Content-Encoding 'gzip, gzip' although only "
                       r"identity was accepted; it is not inflated"):
        llm.extract(POST)
    assert "accept-encoding: identity" in server.heads[0].lower()
    assert llm.stats["requests"] == 1 and llm.stats["failures"] == 1  # not asked again


def test_an_explanation_longer_than_explanation_chars_is_cut(
        topics: list[Topic], servers: list[HostileLLM]) -> None:
    answer = {**GOOD, "stance": {"label": "pro", "explanation": "because " * 20_000},
              "affect": {"label": "no", "explanation": "short"}}
    server = HostileLLM("answer", completion(json.dumps(answer)))
    servers.append(server)
    llm = LLMExtractor(topics, base_url=server.url, explanation_chars=40)
    [labels] = llm.extract(POST)
    stance, affect = (labels.explanation or "").split("; ")
    assert stance.startswith("stance: because because") and stance.endswith("…")
    assert len(stance.removeprefix("stance: ")) == 40
    assert affect == "affect: short"  # within the limit: as written
