"""The Label page's "Ask the LLM" against a real hostile server (tests/scoring/hostile_llm.py):
`[dashboard] llm_assist_seconds` bounds the whole request even when the server sends its headers
one byte at a time, and a suggestion's explanation keeps to the assistant's 80 characters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.label_assist import ASSIST_OPTIONS, AssistError, ask, assistant
from polarwatch.config import Config, load_config
from tests.scoring.hostile_llm import GOOD, HostileLLM, completion

REPO = Path(__file__).resolve().parents[2]
POST = {"id": "p1", "text": "We need stricter gun laws now.", "topic": "gun_control",
        "parent_text": None}


@pytest.fixture
def servers() -> Iterator[list[HostileLLM]]:
    started: list[HostileLLM] = []
    yield started
    for server in started:
        server.close()


def _cfg(monkeypatch: pytest.MonkeyPatch, base_url: str) -> Config:
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_LLM_BASE_URL", base_url)
    return load_config(REPO / "polarwatch.toml")


def test_a_server_trickling_its_headers_is_a_message_within_the_limit(
        monkeypatch: pytest.MonkeyPatch, servers: list[HostileLLM]) -> None:
    server = HostileLLM("driphead", completion(json.dumps(GOOD)), interval=0.2)
    servers.append(server)
    started = time.monotonic()  # ~100 header bytes at 0.2 s: ~20 s without a total deadline
    with pytest.raises(AssistError, match=r"no answer from .* within 1 s"):
        ask(assistant(_cfg(monkeypatch, server.url), 1.0), POST, ["stance", "affect"])
    assert time.monotonic() - started < 3


def test_a_suggestions_explanation_is_cut_to_the_assistants_limit(
        monkeypatch: pytest.MonkeyPatch, servers: list[HostileLLM]) -> None:
    answer = {**GOOD, "stance": {"label": "anti", "explanation": "x" * 100_000}}
    server = HostileLLM("answer", completion(json.dumps(answer)))
    servers.append(server)
    got = ask(assistant(_cfg(monkeypatch, server.url), 5.0), POST, ["stance", "affect"])
    assert got.values == {"stance": "anti", "affect": "no"}
    stance = (got.explanation or "").split("; ")[0].removeprefix("stance: ")
    assert len(stance) == ASSIST_OPTIONS["explanation_chars"] == 80 and stance.endswith("…")
