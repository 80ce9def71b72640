"""The LLM as a labelling assistant: its suggestions are stored apart from the analysts' labels
(a real DuckDB file), never counted as one, and their agreement with the analysts is measured;
against a real OpenAI-compatible server (`transformers serve` with SmolLM2, tests/llm_server.py)
the page's request is answered or refused with a clear message within its time limit, and an
unreachable server is a message at once. SmolLM2 labels at chance: the protocol and the storage
are tested, never the quality of its labels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard import label_store
from dashboard.analysis import label_accuracy, llm_agreement
from dashboard.label_assist import AssistError, Suggestion, ask, assistant, llm_configured
from dashboard.label_store import LabelError, make_labels, make_suggestions, save_labels
from ingest.broker import free_port
from polarwatch.config import Config, ExtractorConfig, load_config
from polarwatch.records import LABEL_TASKS
from polarwatch.warehouse import connect
from scoring.extractors.llm_http import PROMPT_VERSION
from tests.llm_server import LLMServer

from .conftest import seed_warehouse

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return seed_warehouse(tmp_path / "w.duckdb").path


def _post(warehouse: Path, post_id: str) -> dict:
    rand = label_store.queue(warehouse, "gun_control")[0]
    return rand[rand["id"] == post_id].iloc[0].to_dict()


def _rows(warehouse: Path, table: str) -> list[tuple]:
    with connect(warehouse, read_only=True) as con:
        return con.execute(f"SELECT post_id, task, value FROM {table} ORDER BY 1, 2").fetchall()


def test_a_suggestion_is_stored_apart_and_never_counts_as_a_label(warehouse: Path) -> None:
    reply = _post(warehouse, "h3")  # the model says stance pro, agreement disagree
    label_store.save_suggestions(warehouse, make_suggestions(
        reply, "smol", PROMPT_VERSION, {"stance": "anti", "affect": "no", "agreement": "agree"},
        "stance: it opposes the ban", "ana", NOW))
    assert _rows(warehouse, "labels") == []  # nothing labelled: the post is still to label
    assert label_store.label_counts(warehouse, "gun_control") == (0, 0)
    assert "h3" in set(label_store.queue(warehouse, "gun_control")[0]["id"])
    assert label_store.random_labels(warehouse).empty
    assert label_store.suggestion_pairs(warehouse, "gun_control").empty  # no analyst label yet

    # the analyst labels after seeing it: stance pro (the LLM said anti), affect no (agrees)
    save_labels(warehouse, make_labels(reply, "random", "ana", {"stance": "pro", "affect": "no"},
                                       NOW + timedelta(seconds=5)))
    assert _rows(warehouse, "labels") == [("h3", "affect", "no"), ("h3", "stance", "pro")]
    assert _rows(warehouse, "label_suggestions") == [
        ("h3", "affect", "no"), ("h3", "agreement", "agree"), ("h3", "stance", "anti")]
    # the topic's accuracy is the model's (stored labels), never the LLM's suggestion
    measured = label_accuracy(label_store.random_labels(warehouse), "gun_control")
    assert measured["stance"].accuracy == 1.0 and measured["stance"].n == 1
    pairs = label_store.suggestion_pairs(warehouse, "gun_control")
    agreed = llm_agreement(pairs)
    assert {t: (m.correct, m.n) for t, m in agreed.items()} == {"stance": (0, 1),
                                                                "affect": (1, 1)}
    assert pairs["after_seeing"].tolist() == [True, True]


def test_asking_again_replaces_the_models_suggestion_and_labels_before_it_count_apart(
        warehouse: Path) -> None:
    post = _post(warehouse, "h0")
    save_labels(warehouse, make_labels(post, "random", "ana", {"stance": "anti"}, NOW))
    for value in ("pro", "anti"):  # asked twice, after the label: the second answer stays
        label_store.save_suggestions(warehouse, make_suggestions(
            post, "smol", PROMPT_VERSION, {"stance": value}, None, "ana",
            NOW + timedelta(seconds=1)))
    pairs = label_store.suggestion_pairs(warehouse, "gun_control")
    assert pairs[["value", "suggestion", "after_seeing"]].values.tolist() == [
        ["anti", "anti", False]]


def test_a_suggestion_outside_the_contract_is_refused() -> None:
    post = {"platform": "p", "id": "1", "topic": "t"}
    with pytest.raises(LabelError, match="the LLM's stance label 'maybe'"):
        make_suggestions(post, "m", PROMPT_VERSION, {"stance": "maybe"}, None, "ana")


def test_the_assistant_is_offered_only_with_an_llm_backend_configured() -> None:
    assert not llm_configured(ExtractorConfig())
    assert llm_configured(ExtractorConfig(backend="llm"))
    assert llm_configured(ExtractorConfig(cascade_to="llm"))
    assert llm_configured(ExtractorConfig(fallback=["llm", "lexicon"]))
    assert llm_configured(ExtractorConfig(llm_base_url="http://127.0.0.1:9/v1"))


def _cfg(monkeypatch: pytest.MonkeyPatch, base_url: str, model: str = "") -> Config:
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_LLM_BASE_URL", base_url)
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_LLM_MODEL", model)
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_LLM_RESPONSE_FORMAT", "none")
    return load_config(REPO / "polarwatch.toml")


def test_an_unreachable_server_is_a_clear_message_at_once(
        warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    with pytest.raises(AssistError, match=f"server at {url} is unreachable"):
        ask(assistant(_cfg(monkeypatch, url), 20.0), _post(warehouse, "h0"), ["stance"])
    assert time.monotonic() - started < 5


def test_a_real_llm_server_answers_within_the_limit_and_its_suggestion_is_stored(
        llm_server: LLMServer, warehouse: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(monkeypatch, llm_server.base_url, llm_server.model)
    reply = _post(warehouse, "h3")
    tasks = ["stance", "affect", "agreement"]
    # too short a limit for the server: a message within it, not a hung page
    started = time.monotonic()
    with pytest.raises(AssistError, match="within 0.3 s"):
        ask(assistant(cfg, 0.3), reply, tasks)
    assert time.monotonic() - started < 5

    try:  # SmolLM2 often answers prose: either a suggestion in the contract or a clear refusal
        got: Suggestion | None = ask(assistant(cfg, 300.0, max_tokens=90, explanation_chars=30),
                                     reply, tasks)
    except AssistError as exc:
        assert "unusable answer" in str(exc), exc
        got = None
    if got is not None:
        assert got.model == llm_server.model and list(got.values) == tasks
        assert all(got.values[t] in LABEL_TASKS[t] for t in tasks)
        label_store.save_suggestions(warehouse, make_suggestions(
            reply, got.model, PROMPT_VERSION, got.values, got.explanation, "ana"))
        assert [r[1:] for r in _rows(warehouse, "label_suggestions")] == [
            (t, got.values[t]) for t in sorted(tasks)]
        assert _rows(warehouse, "labels") == []
