"""End to end on real parts: embedded broker → Spark (local[2], availableNow) → DuckDB file.

Known threads are written so the lexicon backend's labels are unambiguous; each reply exercises
one row of the paper's rule table, so the stored scores are checked against the table exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer

from ingest.broker import ensure_topics
from ingest.producer import PostProducer
from polarwatch.config import Config
from polarwatch.records import Post, post_to_dict
from polarwatch.warehouse import connect, scalar
from scoring.rules import score_pair
from stream.job import run_stream

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROOT = "We need gun control now."  # pro, civil
# reply text → expected score against ROOT (pro, civil), one per row of the paper's table
REPLIES = {
    "same-hostile-agree": ("Exactly, well said. Time for background checks. "
                           "Only idiots think otherwise.", 10),
    "same-hostile-other": ("Time for background checks. Only idiots think otherwise.", 8),
    "same-civil-agree": ("Exactly, well said. Time for background checks.", 6),
    "same-civil-other": ("Time for background checks.", 2),
    "opp-hostile-agree": ("Exactly. Stand up for gun rights. You people are pathetic.", 6),
    "opp-hostile-other": ("Stand up for gun rights. You people are pathetic.", 8),
    "opp-civil-agree": ("So true. Stand up for gun rights.", 0),
    "opp-civil-other": ("I disagree. Stand up for gun rights.", 4),
}


def _post(pid: str, text: str, minutes: int, parent: str | None = None,
          conv: str = "conv-a") -> Post:
    return Post(id=pid, platform="test", author_id="u1", text=text,
                created_at=T0 + timedelta(minutes=minutes), topic="gun_control",
                conversation_id=conv, parent_id=parent, lang="en")


def _produce(cfg: Config, posts: list[Post], raw: Sequence[bytes] = ()) -> None:
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)
    if raw:  # bypass the validating producer: another client wrote junk into the topic
        p = KafkaProducer(bootstrap_servers=cfg.broker.bootstrap_servers)
        for value in raw:
            p.send(cfg.topics.posts, value=value, key=b"junk")
        p.flush()
        p.close()


def _rows(cfg: Config, sql: str) -> list[tuple]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_stream_end_to_end_exactly_once(stream_config: Config, spark: object) -> None:
    # 4 records per trigger: the known threads span several micro-batches
    cfg = stream_config.model_copy(update={
        "spark": stream_config.spark.model_copy(update={"max_records_per_trigger": 4})})
    thread = [_post("root", ROOT, 0)]
    thread += [_post(name, text, i + 1, parent="root") for i, (name, (text, _)) in
               enumerate(REPLIES.items())]
    # a reply whose parent arrives only in the second run (out of order across batches)
    early_reply = _post("early-reply", "So true. Time for background checks.", 30,
                        parent="late-parent", conv="conv-b")
    junk = [b'{"id": "broken", "text": ', json.dumps({"id": "no-text"}).encode(),
            json.dumps(dict(post_to_dict(_post("big", "x", 5)), text="y" * 20_000)).encode()]
    _produce(cfg, [*thread, early_reply, thread[1]], raw=junk)  # thread[1] sent twice

    run_stream(cfg, spark=spark)

    assert scalar_count(cfg, "posts") == len(thread) + 1
    assert _rows(cfg, "SELECT count(DISTINCT id) = count(*) FROM posts") == [(True,)]
    scores = dict(_rows(cfg, "SELECT post_id, score FROM interactions"))
    assert scores == {name: expected for name, (_, expected) in REPLIES.items()}
    # the stored labels reproduce the stored score through the rule table
    for pid, rs, ps, ra, pa, ag, score in _rows(cfg, """
            SELECT r.id, r.stance, p.stance, r.affect, p.affect, r.agreement, i.score
            FROM interactions i JOIN posts r ON r.id = i.post_id JOIN posts p ON p.id = i.parent_id
            """):
        assert score_pair(rs, ps, ra, pa, ag) == (score, _rule_of(cfg, pid)), pid
    dead = _rows(cfg, "SELECT kafka_partition, kafka_offset, reason FROM dead_letters "
                      "ORDER BY reason")
    assert len(dead) == 3
    reasons = " | ".join(r for _, _, r in dead)
    assert "malformed JSON" in reasons and "missing required field(s): platform" in reasons
    assert "text: 20,000 characters, more than the 10,000 allowed" in reasons
    assert all(offset >= 0 for _, offset, _ in dead)
    root_window = _rows(cfg, "SELECT volume, n_interactions, mean_score FROM topic_windows "
                             "WHERE topic = 'gun_control'")
    assert root_window == [(len(thread) + 1, 8, pytest.approx(sum(s for _, s in REPLIES.values())
                                                          / 8))]

    # second run from the same checkpoint: only the new records, the early reply gets scored
    _produce(cfg, [_post("late-parent", ROOT, 10, conv="conv-b")])
    run_stream(cfg, spark=spark)
    assert scalar_count(cfg, "posts") == len(thread) + 2
    assert dict(_rows(cfg, "SELECT post_id, score FROM interactions"))["early-reply"] == 6
    assert scalar_count(cfg, "dead_letters") == 3
    batches = _rows(cfg, "SELECT count(*), count(DISTINCT batch_id), "
                         "count(latency_broker_p95_s) FROM stream_batches")
    assert batches[0][0] == batches[0][1] == batches[0][2] >= 4  # 4 records per trigger
    # the Parquet lake holds every stored post exactly once
    lake = str(cfg.path(cfg.warehouse.lake_dir) / "posts" / "**" / "*.parquet")
    assert _rows(cfg, f"SELECT count(*), count(DISTINCT id) FROM read_parquet('{lake}', "
                      f"hive_partitioning = true)") == [(len(thread) + 2, len(thread) + 2)]

    # a third run with nothing new stores nothing twice
    run_stream(cfg, spark=spark)
    assert scalar_count(cfg, "posts") == len(thread) + 2
    assert scalar_count(cfg, "interactions") == 9


def scalar_count(cfg: Config, table: str) -> int:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return int(scalar(con, f"SELECT count(*) FROM {table}"))


def _rule_of(cfg: Config, pid: str) -> str:
    return _rows(cfg, f"SELECT rule FROM interactions WHERE post_id = '{pid}'")[0][0]
