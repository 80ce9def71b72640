"""A post that names itself as its parent is a root, on the stream's path too (the audit's
repro: k13 with parent_id k13 was stored as its own reply and counted as an interaction with
itself), and an empty parent_id means no parent. Real labelling stage and real DuckDB file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from polarwatch.config import load_topics
from polarwatch.warehouse import connect
from stream.sink import DuckDBSink
from stream.udfs import LabelStage
from tests.conftest import REPO


def _record(pid: str, text: str, at: str, parent: str | None) -> dict[str, object]:
    return {"id": pid, "parent_id": parent, "platform": "kafka", "author_id": "a", "text": text,
            "created_at": f"2024-05-02T{at}:00Z", "topic": "gun_control",
            "conversation_id": "kc"}


RECORDS = [
    _record("k13", "gun control now", "10:00", "k13"),  # the audit's record: itself as parent
    _record("root", "We need gun control now.", "10:00", None),
    _record("reply", "Exactly, well said. Time for background checks.", "10:01", "root"),
    _record("empty", "We need gun control now.", "07:00", ""),  # "" from a producer
]


def _labelled(records: list[dict[str, object]]) -> pd.DataFrame:
    """The labelling stage's output for these records, as Spark's mapInPandas produces it."""
    stage = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))
    return stage.label_frame(pd.DataFrame({
        "kafka_partition": pd.array([0] * len(records), dtype="int32"),
        "kafka_offset": list(range(len(records))),
        "broker_ts": [pd.Timestamp(datetime.now(UTC))] * len(records),
        "value": [json.dumps(r) for r in records]}))


def _q(path: Path, sql: str) -> list[tuple]:
    with connect(path, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_self_parent_is_stored_as_a_root_and_never_paired_with_itself(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    sink = DuckDBSink(path, "q", "posts", window="1 hour", orphan_horizon="1 hour")
    res = sink.write(_labelled(RECORDS), 0)
    assert (res.posts, res.dead, res.interactions) == (4, 0, 1)
    assert _q(path, "SELECT id, parent_id FROM posts ORDER BY id") == [
        ("empty", None), ("k13", None), ("reply", "root"), ("root", None)]
    assert _q(path, "SELECT post_id, parent_id FROM interactions") == [("reply", "root")]
    # the 10:00 window counts the one real interaction, not k13 with itself
    assert _q(path, "SELECT n_interactions FROM topic_windows "
                    "WHERE window_start = TIMESTAMPTZ '2024-05-02 10:00:00+00'") == [(1,)]
    # "empty" is 3 h older than the event clock: with parent "" it was listed as an orphan
    assert _q(path, "SELECT id FROM orphans") == []


def test_a_stored_self_parent_is_not_paired_with_itself(tmp_path: Path) -> None:
    """A file written before the stream made self-parents roots (or any row that skipped the
    labelling stage) may hold one; pairing it (the sink, and `relabel`, which pairs stored posts
    again) must not score the post against itself."""
    path = tmp_path / "w.duckdb"
    sink = DuckDBSink(path, "q", "posts")
    rows = _labelled(RECORDS[:1])
    rows["parent_id"] = "k13"  # as such a file holds it
    res = sink.write(rows, 0)
    assert _q(path, "SELECT id, parent_id FROM posts") == [("k13", "k13")]
    assert res.interactions == 0
    assert _q(path, "SELECT count(*) FROM interactions") == [(0,)]
    assert _q(path, "SELECT agreement FROM posts") == [(None,)]
