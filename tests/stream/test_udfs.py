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


def test_a_topic_not_in_topics_toml_is_dead_lettered_not_created() -> None:
    """An id from the wire never creates a topic (a dashboard card, a model fit, a report chart
    whose title went through mathtext)."""
    import json

    import pandas as pd

    stage = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))
    post = {"id": "p1", "platform": "reddit", "author_id": "a", "text": "hello",
            "created_at": "2024-01-01T00:00:00Z", "conversation_id": "c1"}
    values = [json.dumps(post | {"topic": topic}) for topic in ("gun_control", "$\\frac{1}{0}$",
                                                                "Gun_Control", "x" * 500)]
    out = LabelStage.label_frame(stage, pd.DataFrame({
        "value": values, "kafka_partition": [0] * 4, "kafka_offset": range(4),
        "broker_ts": [pd.Timestamp("2024-01-01", tz="UTC")] * 4}))
    assert out["dead_reason"].isna().tolist() == [True, False, False, False]
    reason = out["dead_reason"].iloc[1]
    assert reason.startswith("topic '$\\\\frac{1}{0}$' is not in topics.toml as this stream read ")
    assert "(known: gun_control" in reason and "ingest file --topic" in reason
    assert len(out["dead_reason"].iloc[3]) < 600  # a long id is cut in the reason


def test_the_source_s_read_error_dead_letters_and_a_missing_one_does_not() -> None:
    """`read_error` / `value_size` as Spark hands them over: a reason with the real size, or a
    null (None or NaN) that leaves the record to the parser."""
    import json

    import pandas as pd

    stage = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))
    post = json.dumps({"id": "p1", "platform": "reddit", "author_id": "a", "text": "hello",
                       "created_at": "2024-01-01T00:00:00Z", "conversation_id": "c1",
                       "topic": "gun_control"})
    out = LabelStage.label_frame(stage, pd.DataFrame({
        "value": [post, post, "{cut"], "kafka_partition": [0] * 3, "kafka_offset": range(3),
        "broker_ts": [pd.Timestamp("2024-01-01", tz="UTC")] * 3,
        "read_error": [None, float("nan"), "record: 300,000 bytes, more than allowed"],
        "value_size": [None, float("nan"), 300_000]}))
    assert out["dead_reason"].isna().tolist() == [True, True, False]
    assert out["raw_size"].iloc[2] == 300_000 and out["raw"].iloc[2] == "{cut"
