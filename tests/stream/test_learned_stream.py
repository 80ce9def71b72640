"""The shipped default backend (`learned`) inside Spark: every stream test elsewhere forces
`lexicon`, so this one proves that the Python workers load the encoder and heads, and that no
post silently falls back to `lexicon` (each stored label names its backend)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from polarwatch.config import load_config
from polarwatch.records import Post
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.conftest import REPO
from tests.kafka_helpers import stream_env

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
ROOT = "Climate change is real and we must cut carbon emissions now to save the planet."
# id → (text, parent id); labels the shipped heads give with confidence >= 0.7
THREAD = {
    "root": (ROOT, None),
    "agree": ("Absolutely agree, well said. We must act on climate now.", "root"),
    "hostile": ("You climate alarmists are disgusting idiots and liars.", "root"),
    "disagree": ("No, that is completely wrong. Global warming is a hoax.", "root"),
    "hoax": ("Global warming is a hoax invented by scientists to get grant money.", None),
}


@pytest.mark.slow
def test_stream_labels_with_the_shipped_learned_backend(broker: EmbeddedBroker, spark: object,
                                                       tmp_path: Path) -> None:
    env = stream_env(broker.bootstrap, tmp_path, POLARWATCH_EXTRACTOR_BACKEND="learned")
    cfg = load_config(REPO / "polarwatch.toml", env=env)
    assert cfg.extractor.backend == "learned" and cfg.extractor.fallback == ["lexicon"]
    posts = [Post(id=pid, platform="test", author_id=f"u{i}", text=text,
                  created_at=T0 + timedelta(minutes=i), topic="climate_change",
                  conversation_id="hoax" if pid == "hoax" else "root", parent_id=parent,
                  lang="en")
             for i, (pid, (text, parent)) in enumerate(THREAD.items())]
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)

    run_stream(cfg, spark=spark)

    with connect(cfg.warehouse_path, read_only=True) as con:
        rows = {r[0]: r[1:] for r in con.execute(
            "SELECT id, backend, stance, affect, agreement FROM posts").fetchall()}
        scores = dict(con.execute("SELECT post_id, score FROM interactions").fetchall())
    assert sorted(rows) == sorted(THREAD)
    assert {r[0] for r in rows.values()} == {"learned"}, rows  # no silent fallback
    assert rows["root"][1:3] == ("pro", "no")
    assert rows["agree"][1] == "pro" and rows["agree"][3] == "agree"
    assert rows["hostile"][1:3] == ("anti", "yes")
    assert rows["disagree"][3] == "disagree"
    assert rows["hoax"][1] == "anti" and rows["hoax"][3] is None
    # the rule table on the learned labels: same stance, civil, agree → 6;
    # opposite stance, hostile, no agreement → 8
    assert scores["agree"] == 6 and scores["hostile"] == 8
