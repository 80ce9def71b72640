"""The DuckDB sink without Spark (replays, late parents, windows) and the Kafka reader's offset
logic against the real embedded broker (wrong latest offset, regression, read limits)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from kafka import KafkaProducer
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

from ingest.broker import EmbeddedBroker, ensure_topics
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect
from scoring.indices import bimodality_coefficient, esteban_ray
from stream.kafka_source import (
    KafkaRange,
    KafkaStreamReader,
    OffsetRegressionError,
    latest_offsets,
    read_range,
)
from stream.sink import DuckDBSink, interval_sql

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)


# what a reply says to its parent: the sink labels the pair's agreement (stream.pairing, lexicon)
CUES = {"agree": "I agree.", "disagree": "I disagree.", None: ""}


def _row(pid: str, parent: str | None, stance: str, affect: str, agreement: str | None,
         minutes: int, offset: int, conv: str = "c1") -> dict:
    """A labelled row as the labelling stage emits it: no agreement yet (the sink pairs)."""
    return {
        "id": pid, "platform": "t", "author_id": "u", "text": f"{pid} {CUES[agreement]}",
        "created_at": T0 + timedelta(minutes=minutes), "topic": "gun_control",
        "conversation_id": conv, "parent_id": parent, "lang": "en", "schema_version": 1,
        "stance": stance, "affect": affect, "agreement": None, "emotion": "neutral",
        "intensity": 0.1, "stance_conf": 0.9, "affect_conf": 0.9,
        "agreement_conf": None, "emotion_conf": 0.5,
        "backend": "test", "explanation": None, "kafka_partition": 0, "kafka_offset": offset,
        "broker_ts": T0, "dead_reason": None, "raw": None,
    }


def _sink(tmp_path: Path) -> DuckDBSink:
    return DuckDBSink(tmp_path / "w.duckdb", "q", "posts", window="1 hour")


def _q(sink: DuckDBSink, sql: str) -> list[tuple]:
    with connect(sink.path, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_replayed_batch_is_skipped(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    batch = pd.DataFrame([_row("r", None, "pro", "no", None, 0, 0),
                          _row("a", "r", "pro", "yes", "agree", 5, 1)])
    first = sink.write(batch, 0)
    again = sink.write(batch, 0)
    assert (first.skipped, first.posts, first.interactions) == (False, 2, 1)
    assert again.skipped
    assert _q(sink, "SELECT count(*) FROM posts") == [(2,)]
    assert _q(sink, "SELECT post_id, score, rule FROM interactions") == [
        ("a", 10, "same|hostile|agree")]
    assert _q(sink, "SELECT count(*) FROM stream_batches") == [(1,)]


def test_reply_before_parent_is_scored_when_parent_arrives(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.write(pd.DataFrame([_row("reply", "parent", "anti", "no", "disagree", 70, 0)]), 0)
    assert _q(sink, "SELECT count(*) FROM interactions") == [(0,)]
    res = sink.write(pd.DataFrame([_row("parent", None, "pro", "no", None, 0, 1)]), 1)
    assert res.interactions == 1
    assert _q(sink, "SELECT post_id, score FROM interactions") == [("reply", 4)]
    # the reply's window (10:00+70 min → 11:00) is recomputed although only the parent came now
    assert _q(sink, "SELECT window_start, n_interactions, mean_score FROM topic_windows "
                    "ORDER BY window_start") == [(T0, 0, None),
                                                 (T0 + timedelta(hours=1), 1, 4.0)]


def test_windows_match_group_by_over_stored_rows(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    rows, n = [], 0
    for c in range(6):  # 6 conversations over 3 hours, written in 3 batches out of order
        conv = f"c{c}"
        rows.append(_row(f"{conv}-0", None, "pro", "no", None, c * 30, n, conv))
        for k in range(1, 4):
            n += 1
            stance = "pro" if (c + k) % 2 else "anti"
            rows.append(_row(f"{conv}-{k}", f"{conv}-0", stance, "yes" if c % 3 == 0 else "no",
                             "agree" if k == 1 else "disagree", c * 30 + k, n, conv))
    for batch_id, chunk in enumerate((rows[10:], rows[:5], rows[5:10])):
        sink.write(pd.DataFrame(chunk), batch_id)
    got = _q(sink, "SELECT topic, window_start, volume, n_interactions, mean_score, "
                   "extreme_share, hostility_share FROM topic_windows ORDER BY window_start")
    want = _q(sink, """
        WITH c AS (SELECT time_bucket(INTERVAL '1 hour', created_at) AS ws, conversation_id,
                          avg(score) AS s, count(*) AS n FROM interactions GROUP BY ALL),
             p AS (SELECT time_bucket(INTERVAL '1 hour', created_at) AS ws, count(*) AS v,
                          avg((affect = 'yes')::INT) AS h FROM posts GROUP BY ALL)
        SELECT 'gun_control', p.ws, p.v, sum(c.n)::INT, sum(c.s * c.n) / sum(c.n),
               avg((c.s > 7)::INT), p.h
        FROM p JOIN c ON c.ws = p.ws GROUP BY p.ws, p.v, p.h ORDER BY p.ws""")
    assert len(got) == 3
    assert got == [tuple(pytest.approx(v) if isinstance(v, float) else v for v in row)
                   for row in want]


def test_windows_take_the_one_duration_grammar() -> None:
    with duckdb.connect() as con:
        for span, literal in (("5 minutes", "5 minutes"), ("5m", "5 minutes"),
                              ("1 hour", "1 hour"), ("1.5h", "90 minutes"), ("1 day", "24 hours")):
            assert con.execute(f"SELECT {interval_sql(span)} = INTERVAL '{literal}'").fetchone() \
                == (True,), span
    with pytest.raises(ConfigError, match="30m"):
        interval_sql("hourly")


@pytest.fixture
def topic(broker: EmbeddedBroker) -> str:
    name = f"src-{uuid.uuid4().hex[:8]}"
    ensure_topics(broker.bootstrap, [name], 2)
    return name


def _produce(broker: EmbeddedBroker, topic: str, n: int, partition: int) -> None:
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50)
    for i in range(n):
        p.send(topic, value=f"m{i}".encode(), partition=partition)
    p.flush()
    p.close()


def test_latest_offsets_survive_the_wrong_list_offsets_answer(broker: EmbeddedBroker,
                                                              topic: str) -> None:
    from kafka import KafkaConsumer

    _produce(broker, topic, 20, partition=0)  # one batch of 20: the broker reports end = 1
    _produce(broker, topic, 5, partition=0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
    try:
        assert latest_offsets(consumer, topic) == {"0": 25, "1": 0}
    finally:
        consumer.close()
    values = [v for _, _, _, v in read_range(broker.bootstrap, topic, 0, 3, 22)]
    assert values == [f"m{i}" for i in range(3, 20)] + ["m0", "m1"]


def test_reader_limits_rows_and_refuses_offset_regression(broker: EmbeddedBroker,
                                                          topic: str) -> None:
    _produce(broker, topic, 30, partition=0)
    _produce(broker, topic, 10, partition=1)
    reader = KafkaStreamReader({"bootstrap": broker.bootstrap, "topic": topic,
                                "maxrecordspertrigger": "16"})
    try:
        start = reader.initialOffset()
        assert start == {"0": 0, "1": 0}
        assert reader.latestOffset(start, ReadAllAvailable()) == {"0": 30, "1": 10}
        assert reader.getDefaultReadLimit() == ReadMaxRows(16)
        capped = reader.latestOffset(start, ReadMaxRows(16))
        assert capped == {"0": 12, "1": 4}  # in proportion to the 30 and 10 records left
        ranges = reader.partitions(start, capped)
        assert all(isinstance(r, KafkaRange) for r in ranges)
        assert [(r.partition, r.start, r.end) for r in ranges
                if isinstance(r, KafkaRange)] == [(0, 0, 12), (1, 0, 4)]
        assert reader.latestOffset({"0": 28, "1": 4}, ReadMaxRows(5)) == {"0": 29, "1": 8}
        with pytest.raises(OffsetRegressionError, match="went backwards.*partition 0"):
            reader.latestOffset({"0": 500, "1": 10}, ReadAllAvailable())
    finally:
        reader.stop()


def test_late_data_within_watermark_updates_beyond_is_counted_not_lost(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "w.duckdb", "q", "posts", window="1 hour", watermark="2 hours")
    sink.write(pd.DataFrame([_row("p0", None, "pro", "no", None, 0, 0)]
                            + [_row(f"now{i}", None, "pro", "no", None, 300 + i, 1 + i)
                               for i in range(3)]), 0)  # 15:00, three posts: the clock
    # 13:30 is within 2 h of 15:00: its window (13:00) is opened and updated
    within = sink.write(pd.DataFrame([_row("w", None, "anti", "no", None, 210, 4)]), 1)
    # 10:10 is 4 h 50 min behind: stored and counted late, the 10:00 window stays as it was
    late = sink.write(pd.DataFrame([_row("l", None, "anti", "yes", None, 10, 5)]), 2)
    assert (within.late, within.windows, late.late, late.windows) == (0, 1, 1, 0)
    assert _q(sink, "SELECT count(*) FROM posts") == [(6,)]
    assert _q(sink, "SELECT window_start, volume, anti_share FROM topic_windows ORDER BY 1") == [
        (T0, 1, 0.0), (T0 + timedelta(hours=3), 1, 1.0), (T0 + timedelta(hours=5), 3, 0.0)]
    assert _q(sink, "SELECT n_late FROM stream_batches ORDER BY batch_id") == [(0,), (0,), (1,)]


def test_a_post_behind_the_watermark_in_a_window_still_open_is_counted_not_late(
        tmp_path: Path) -> None:
    """An audit on DEBAGREEMENT threads (7-day windows, 600 records a batch): the batches
    counted 350 posts late while 279 were left out of topic_windows; the other 71 were older
    than the watermark but in a window that had not ended before it, which was recomputed with
    them. Late is a post whose window is final, as windows.update_windows decides."""
    sink = DuckDBSink(tmp_path / "w.duckdb", "q", "posts", window="1 hour", watermark="2 hours")
    sink.write(pd.DataFrame([_row(f"now{i}", None, "pro", "no", None, 330 + i, i)
                             for i in range(3)]), 0)  # clock 15:30, watermark 13:30
    # 13:10 is behind 13:30, but its window (13:00-14:00) ends after it: open, and counted
    open_window = sink.write(pd.DataFrame([_row("o", None, "anti", "no", None, 190, 3)]), 1)
    # 12:50: its window (12:00-13:00) ended before the watermark: final, late
    final = sink.write(pd.DataFrame([_row("f", None, "anti", "no", None, 170, 4)]), 2)
    assert (open_window.late, open_window.windows, final.late, final.windows) == (0, 1, 1, 0)
    assert _q(sink, "SELECT window_start, volume FROM topic_windows ORDER BY 1") == [
        (T0 + timedelta(hours=3), 1), (T0 + timedelta(hours=5), 3)]
    assert _q(sink, "SELECT n_late FROM stream_batches ORDER BY batch_id") == [(0,), (0,), (1,)]


def test_one_forged_date_moves_no_watermark_and_no_other_topic(tmp_path: Path) -> None:
    """Issue #25: after one post dated 20 h ahead, 20 valid posts dated 5 h ago were stored but
    counted in no window (the watermark was the global max created_at). The clock is now per
    topic and one post (or two) cannot move it."""
    sink = DuckDBSink(tmp_path / "w.duckdb", "q", "posts", window="1 hour", watermark="1 hour")
    history = [_row(f"h{i}", None, "pro", "no", None, 300 + i, i) for i in range(10)]  # 15:00
    forged = _row("forged", None, "anti", "yes", None, 300 + 20 * 60, 10)  # 20 h later
    other = _row("other", None, "pro", "no", None, 300 + 20 * 60, 11)  # another topic's clock
    other["topic"], other["conversation_id"] = "abortion", "c9"
    sink.write(pd.DataFrame([*history, forged, other]), 0)
    real = [_row(f"r{i}", None, "anti", "no", None, 250 + i, 20 + i) for i in range(20)]  # 14:10
    res = sink.write(pd.DataFrame(real), 1)
    assert res.late == 0  # within 1 h of the topic's clock (15:00+), not of the forged 11:00
    assert _q(sink, "SELECT volume FROM topic_windows WHERE topic = 'gun_control' AND "
                    "window_start = TIMESTAMPTZ '2026-05-01 14:00:00+00'") == [(20,)]


def test_posts_are_named_by_platform_and_id_and_pair_within_it(tmp_path: Path) -> None:
    """Issue #25: ``posts`` was keyed by id alone, so a post of another platform (or a forged
    record) sharing an id was dropped, and a reply paired with a parent on another platform or
    topic."""
    sink = _sink(tmp_path)
    first = _row("p1", None, "pro", "no", None, 0, 0)  # platform "t"
    other = {**_row("p1", None, "anti", "yes", None, 1, 1), "platform": "other"}
    off_topic = {**_row("p2", None, "anti", "no", None, 2, 2), "topic": "abortion"}
    reply = _row("r1", "p1", "pro", "no", "agree", 3, 3)  # platform "t": parent is t's p1
    stray = {**_row("r2", "p1", "pro", "no", "agree", 4, 4), "platform": "third"}
    cross = _row("r3", "p2", "pro", "no", "agree", 5, 5)  # p2 is on another topic
    res = sink.write(pd.DataFrame([first, other, off_topic, reply, stray, cross]), 0)
    assert res.posts == 6  # the two p1 are two posts
    assert _q(sink, "SELECT platform, post_id, parent_id, rule FROM interactions") == [
        ("t", "r1", "p1", "same|civil|agree")]  # with t's p1 (pro, civil), not other's
    # r2 (no p1 on its platform) and r3 (parent on another topic) wait for their parent
    assert _q(sink, "SELECT id, agreement FROM posts WHERE id IN ('r2', 'r3') ORDER BY id") == [
        ("r2", None), ("r3", None)]


def test_two_platforms_sharing_a_conversation_id_are_two_conversations_in_the_window(
        tmp_path: Path) -> None:
    """An audit: a conversation is named by its platform and its id there, as posts are. Two
    platforms' threads "c1" (one scoring 10, one 0) made one conversation of mean 5 in the
    window: n_conversations 1 and extreme_share 0.0 where 2 and 0.5 are right."""
    sink = _sink(tmp_path)
    hot = [_row("r", None, "pro", "yes", None, 0, 0),
           _row("a1", "r", "pro", "yes", "agree", 1, 1)]  # same|hostile|agree: 10
    cool = [{**_row("r", None, "pro", "no", None, 2, 2), "platform": "x"},
            {**_row("b1", "r", "anti", "no", "agree", 3, 3), "platform": "x"}]  # 0
    cool += [{**_row(f"b{k}", "r", "anti", "no", "agree", 3 + k, 3 + k), "platform": "x"}
             for k in (2, 3)]  # four conversation scores: bimodality needs four
    hot += [_row("r3", None, "pro", "yes", None, 7, 7, conv="c3"),
            _row("a3", "r3", "pro", "yes", "agree", 8, 8, conv="c3")]  # 10
    hot += [_row("r4", None, "pro", "no", None, 9, 9, conv="c4"),
            _row("a4", "r4", "pro", "no", None, 10, 10, conv="c4")]  # same|civil|no-agree: 2
    sink.write(pd.DataFrame(hot + cool), 0)
    assert _q(sink, "SELECT n_interactions, n_conversations, extreme_share, mean_score "
                    "FROM topic_windows") == [(6, 4, 0.5, (10 + 0 * 3 + 10 + 2) / 6)]
    assert _q(sink, "SELECT bimodality FROM topic_windows") == [
        (bimodality_coefficient([10.0, 0.0, 10.0, 2.0]),)]


def test_window_indices_and_orphans(tmp_path: Path) -> None:
    sink = DuckDBSink(tmp_path / "w.duckdb", "q", "posts", window="1 hour",
                      orphan_horizon="1 hour")
    rows = [_row("r", None, "pro", "no", None, 0, 0)]
    # 2 conversations scoring 10 and 4 twice each → bimodal; 2 of 4 replies cross stance
    rows += [_row(f"a{k}", "r", "pro", "yes", "agree", k, k) for k in (1, 2)]
    rows += [_row("r2", None, "anti", "no", None, 3, 3, conv="c2")]
    rows += [_row(f"b{k}", "r2", "pro", "no", "disagree", 3 + k, 3 + k, conv="c2")
             for k in (1, 2)]
    rows += [_row("orphan", "never-arrives", "anti", "no", None, 5, 9, conv="c3")]
    rows += [_row(f"later{i}", None, "anti", "no", None, 200, 10 + i, conv="c4")
             for i in range(3)]  # three posts move the event clock to 13:20
    sink.write(pd.DataFrame(rows), 0)
    (cross, er, bc), = _q(sink, "SELECT cross_stance_rate, esteban_ray, bimodality "
                                "FROM topic_windows WHERE window_start = "
                                "TIMESTAMPTZ '2026-05-01 10:00:00+00'")
    assert cross == 0.5
    assert er == pytest.approx(esteban_ray(5 / 7, 2 / 7))  # pro: r, a1, a2, b1, b2
    assert bc is None  # two conversations: too few values for the coefficient
    assert _q(sink, "SELECT id FROM orphans") == [("orphan",)]


def test_indices() -> None:
    assert esteban_ray(0.5, 0.5) == pytest.approx(1.0)
    assert esteban_ray(1.0, 0.0) == 0.0
    assert esteban_ray(0.0, 0.0) is None
    lopsided, closer = esteban_ray(0.9, 0.1), esteban_ray(0.7, 0.3)
    assert lopsided is not None and closer is not None
    assert 0 < lopsided < closer < 1
    two_camps = bimodality_coefficient([2.0] * 20 + [9.0] * 20)
    assert two_camps is not None and two_camps > 5 / 9  # two camps
    one_camp = bimodality_coefficient([5.0, 5.1, 4.9, 5.0, 5.05, 4.95, 5.0])
    assert one_camp is not None and one_camp < 5 / 9
    assert bimodality_coefficient([1.0, 2.0]) is None
