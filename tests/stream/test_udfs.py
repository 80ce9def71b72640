"""The labeling stage builds its extractor from the whole [extractor] section."""

from __future__ import annotations

import socket
from pathlib import Path

from polarwatch.config import ExtractorConfig, load_topics
from scoring.extractors import PostPair
from scoring.extractors.llm_http import LLMExtractor
from scoring.fallback import CascadeExtractor
from stream.udfs import LabelStage

REPO = Path(__file__).resolve().parents[2]


def test_label_stage_honours_the_cascade_settings() -> None:
    with socket.socket() as s:  # a port nobody listens on: the cascade's llm calls fail
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    settings = ExtractorConfig(backend="lexicon", fallback=[], cascade_to="llm",
                               cascade_threshold=1.01, llm_calls_per_minute=1,
                               llm_base_url=dead)
    stage = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")), settings)
    pairs = [PostPair("a", "Ban assault weapons now!", "gun_control"),
             PostPair("b", "No. Shall not be infringed.", "gun_control", "Ban them now!")]
    labels = stage.extract(pairs)
    cascade = stage.extractor()
    assert isinstance(cascade, CascadeExtractor) and isinstance(cascade.expert, LLMExtractor)
    # every post was unsure (threshold > 1), one call fit the budget and failed: the post keeps
    # the lexicon labels, nothing is lost
    assert [lab.backend for lab in labels] == ["lexicon", "lexicon"]
    assert cascade.stats == {"unsure": 2, "expert failed": 1, "over budget": 1}
    assert cascade.expert.base_url == dead
