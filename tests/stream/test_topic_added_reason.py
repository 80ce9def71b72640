"""A topic added to topics.toml while the stream runs: the running stream's dead-letter reason
says it read topics.toml when it started and how to get the posts in (restart, send again);
a stream started after the edit stores them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from polarwatch.config import load_topics
from stream.udfs import LabelStage

REPO = Path(__file__).resolve().parents[2]
FEMINISM = '''
[[topic]]
id = "feminism"
name = "Feminism"
pro = "Supports feminism and the feminist movement."
anti = "Opposes feminism or the feminist movement."
keywords = ["feminism", "feminist"]
'''


def _batch(n: int) -> pd.DataFrame:
    posts = [{"id": f"f{i}", "platform": "file", "author_id": "a", "topic": "feminism",
              "text": "feminism is for everyone", "created_at": "2026-01-01T00:00:00Z",
              "conversation_id": f"f{i}"}
             for i in range(n)]
    return pd.DataFrame({"value": [json.dumps(p) for p in posts],
                         "kafka_partition": [0] * n, "kafka_offset": range(n),
                         "broker_ts": [pd.Timestamp("2026-01-01T01:00:00Z")] * n})


def test_a_topic_added_after_the_stream_started(tmp_path: Path) -> None:
    topics = tmp_path / "topics.toml"
    shutil.copy(REPO / "topics.toml", topics)
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    running = LabelStage("lexicon", (), tuple(load_topics(topics)))  # the stream starts
    topics.write_text(topics.read_text() + FEMINISM)  # the analyst adds a topic

    out = running.label_frame(_batch(3))
    reasons = set(out["dead_reason"])
    assert len(reasons) == 1, reasons
    reason = reasons.pop()
    assert reason.startswith("topic 'feminism' is not in topics.toml as this stream read it "
                             "when it started (")
    started = datetime.fromisoformat(reason.split("started (")[1][:16] + "+00:00")
    assert started >= before  # the time this stage read topics.toml
    assert ("if it was added since, restart the stream and send these posts again "
            "(`polarwatch ingest file FILE --restart`)") in reason
    assert reason.endswith("(known: gun_control, climate_change)")

    restarted = LabelStage("lexicon", (), tuple(load_topics(topics)))
    again = restarted.label_frame(_batch(3))
    assert again["dead_reason"].isna().all()
    assert again["topic"].tolist() == ["feminism"] * 3
