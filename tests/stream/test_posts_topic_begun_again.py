"""A memory broker restarted loses the posts topic; when the topic comes back with *more*
records than the checkpoint had read, resuming at the checkpoint's offsets skipped the new
records before them without a word. `stream` now refuses it in one line, and `--reset` stores
every post (real broker restarted, real Spark, real DuckDB)."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from kafka import KafkaProducer
from pyspark.sql.datasource import ReadAllAvailable

from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from ingest.sources.synthetic import generate
from polarwatch.config import Config, load_config
from polarwatch.records import Post
from polarwatch.warehouse import connect, init_schema
from stream.job import run_stream
from stream.kafka_source import KafkaStreamReader, OffsetRegressionError
from stream.sink import DuckDBSink
from stream.supervise import StreamError
from stream.topic_generation import DEAD_MARK, PostsLife, _shown, row_marks, save_last_read
from tests.kafka_helpers import stream_env
from tests.stream.test_sink_source import _row

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 2, 1, tzinfo=UTC)

TRIGGER_S = 60  # the continuous test's trigger: its broker restart falls between two

pytestmark = pytest.mark.slow


def _produce(cfg: Config, posts: list[Post]) -> None:
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)


def _ids(cfg: Config) -> set[str]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return {r[0] for r in con.execute("SELECT id FROM posts").fetchall()}


def test_a_posts_topic_begun_again_is_refused_then_read_whole_with_reset(
        memory_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(
        memory_broker.bootstrap, tmp_path, POLARWATCH_TOPICS_PARTITIONS="1"))
    first = list(generate(cfg.load_topics(), days=1, seed=1, start=START))[:40]
    _produce(cfg, first)
    run_stream(cfg, spark=spark)
    assert _ids(cfg) == {p.id for p in first}

    memory_broker.stop()  # memory storage: the topics and their records are gone
    memory_broker.start()
    stored = _ids(cfg)
    new = [p for p in generate(cfg.load_topics(), days=1, seed=2, start=START)
           if p.id not in stored][:5]
    # as long as the first life: 5 new posts, then the first file sent again (ingest --restart)
    # up to its 35th post, so no offset went backwards and offset 39 holds a post already stored
    _produce(cfg, new + first[:35])
    with pytest.raises(StreamError, match=r"has begun again \(partition 0 offset 39 holds "
                                          r"post .*--reset"):
        run_stream(cfg, spark=spark)
    assert _ids(cfg) == {p.id for p in first}  # refused before anything was read

    run_stream(cfg, reset=True, spark=spark)
    assert _ids(cfg) == {p.id for p in first} | {p.id for p in new}  # none skipped
    # the new checkpoint read the new life: compared with it, not with where the first life's
    # posts were stored (a review: every later run was refused, --reset or not)
    run_stream(cfg, spark=spark)
    assert len(_ids(cfg)) == len(first) + len(new)


def test_a_partition_that_held_only_malformed_records_is_compared_too(
        memory_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    """Audit R F2: the marks were posts only, so a partition whose records were all dead
    letters had none and was never compared; a topic begun again there was resumed at the
    old offsets and its new posts skipped. A dead row is marked by its broker time and size."""
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(
        memory_broker.bootstrap, tmp_path, POLARWATCH_TOPICS_PARTITIONS="1"))
    _produce(cfg, [])

    def junk(n: int) -> None:
        producer = KafkaProducer(bootstrap_servers=memory_broker.bootstrap)
        for i in range(n):
            producer.send(cfg.topics.posts, f"not a post {i}".encode(), partition=0)
        producer.flush()
        producer.close()

    junk(10)
    run_stream(cfg, spark=spark)
    assert _ids(cfg) == set()
    memory_broker.stop()
    memory_broker.start()
    new = list(generate(cfg.load_topics(), days=1, seed=2, start=START))[:5]
    _produce(cfg, new)
    junk(10)  # offset 9 now holds another record, made later
    with pytest.raises(StreamError, match=r"has begun again \(partition 0 offset 9 holds a "
                                          r"12-byte record that is not a post \(broker time "
                                          r".* UTC\), but a 12-byte record .*--reset"):
        run_stream(cfg, spark=spark)
    assert _ids(cfg) == set()
    run_stream(cfg, reset=True, spark=spark)
    assert _ids(cfg) == {p.id for p in new}  # none skipped


def test_a_running_stream_refuses_a_posts_topic_begun_again_between_batches(
        memory_broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    """`stream --continuous` keeps its query (and its offsets) across a broker restart: when
    the topic comes back longer before the next trigger, the query resumed at the old offsets
    and skipped the new records before them (a review: 387 of 400 posts stored). The source
    now compares the checkpoint's last posts with the broker before each batch it plans."""
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(
        memory_broker.bootstrap, tmp_path, POLARWATCH_TOPICS_PARTITIONS="1",
        POLARWATCH_SPARK_TRIGGER_SECONDS=str(TRIGGER_S)))
    first = list(generate(cfg.load_topics(), days=1, seed=1, start=START))[:40]
    _produce(cfg, first)
    init_schema(cfg.warehouse_path)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_stream(cfg, available_now=False, timeout=240, spark=spark)
        except BaseException as exc:  # asserted below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while len(_ids_when_free(cfg)) < len(first) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert _ids_when_free(cfg) == {p.id for p in first}
        while not 2.0 <= time.time() % TRIGGER_S <= 30.0:  # just after a trigger (Spark fires
            time.sleep(0.2)  # them at multiples of the interval since the epoch)
        memory_broker.stop()
        memory_broker.start()
        new = [p for p in generate(cfg.load_topics(), days=1, seed=2, start=START)
               if p.id not in {q.id for q in first}][:5]
        _produce(cfg, new + first)  # longer than the first life: offset 39 holds another post
        thread.join(120)
    finally:
        for query in spark.streams.active:  # type: ignore[attr-defined]
            query.stop()
        thread.join(60)
    assert len(errors) == 1 and isinstance(errors[0], StreamError), errors
    assert re.search(r"has begun again \(partition 0 offset 39 holds post .*--reset",
                     str(errors[0])), errors[0]
    assert _ids(cfg) == {p.id for p in first}  # refused before anything of it was read


def _ids_when_free(cfg: Config) -> set[str]:
    """:func:`_ids`, or nothing while the running stream holds the file."""
    try:
        return _ids(cfg)
    except duckdb.Error:
        return set()


def _batch(posts: list[Post], first_offset: int) -> pd.DataFrame:
    """A labelled micro-batch of `posts` read at offsets from `first_offset` on (partition 0)."""
    return pd.DataFrame([{**_row(f"x{i}", None, "pro", "no", None, i, first_offset + i),
                          "platform": p.platform, "id": p.id} for i, p in enumerate(posts)])


def test_a_batch_read_from_a_topic_begun_again_is_refused_before_its_commit(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """A batch is planned against the topic as it is; a broker restarted while the batch was
    read answers from its new topic at the same offsets (audit R: 395-494 of 800 posts stored,
    the stream running on). The sink compares the broker with the batch before its commit."""
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(
        memory_broker.bootstrap, tmp_path, POLARWATCH_TOPICS_PARTITIONS="1"))
    first = list(generate(cfg.load_topics(), days=1, seed=1, start=START))[:40]
    _produce(cfg, first)
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    life = PostsLife(memory_broker.bootstrap, cfg.topics.posts, checkpoint)
    sink = DuckDBSink(tmp_path / "w.duckdb", "q", cfg.topics.posts, checkpoint_dir=checkpoint,
                      posts_life=life)
    (checkpoint / "metadata").write_text('{"id":"q1"}\n')
    try:
        sink.write(_batch(first[:30], 0), 0)  # read from the topic it was planned on
        memory_broker.stop()
        memory_broker.start()
        new = [p for p in generate(cfg.load_topics(), days=1, seed=2, start=START)
               if p.id not in {q.id for q in first}][:5]
        _produce(cfg, new + first)  # offsets 30-39 now hold first[25:35]
        with pytest.raises(OffsetRegressionError, match=r"has begun again \(partition 0 offset "
                                                        r"29 holds post .*--reset"):
            sink.write(_batch(first[25:35], 30), 1)
    finally:
        life.close()
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (30,)  # none of it


def test_dead_rows_are_marked_by_broker_time_and_size_even_out_of_pandas_nanosecond_range(
        ) -> None:
    """A producer may set any time (year 9999; before 1970); a dead row without a time or
    size cannot be compared and is left out; a post keeps its (platform, id)."""
    rows = pd.DataFrame({
        "kafka_partition": [0, 0, 1, 1], "kafka_offset": [3, 4, 7, 8],
        "platform": ["t", None, None, None], "id": ["p1", None, None, None],
        "dead_reason": [None, "malformed JSON", "malformed JSON", "malformed JSON"],
        "broker_ts": pd.array([datetime(2026, 1, 1, tzinfo=UTC),
                               datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
                               datetime(1, 1, 1, tzinfo=UTC), None],
                              dtype="datetime64[us, UTC]"),
        "raw_size": pd.array([None, 12, 0, 5], dtype="Int64")})
    got = {tuple(r) for r in row_marks(rows).itertuples(index=False)}
    assert got == {(0, 3, "t", "p1"), (0, 4, DEAD_MARK, "253402300799999:12"),
                   (1, 7, DEAD_MARK, "-62135596800000:0")}
    assert "record that is not a post (broker time 9999-12-31 23:59:59.999 UTC)" in \
        _shown(DEAD_MARK, "253402300799999:12")
    assert "(broker time 99999999999999999 ms after the epoch)" in \
        _shown(DEAD_MARK, "99999999999999999:3")
    # a post whose platform is the dead mark's (the broker holds any JSON): shown, not a crash
    assert _shown(DEAD_MARK, "x") == "post 'x' ('\\x00record')"
    assert _shown(DEAD_MARK, "²:3").startswith("post '²:3'")


def _brought_beyond(consumer: Any) -> int:
    """Records the consumer's last fetch brought beyond the one it was asked for: they wait in
    the consumer, and a poll that sends no new fetch returns them."""
    from kafka import TopicPartition

    return len(consumer.poll(timeout_ms=0, max_records=10_000).get(TopicPartition("posts", 0),
                                                                   []))


def test_the_checks_before_a_commit_fetch_one_record_batch_each(
        s3_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Each micro-batch compares a record per partition three times in the sink and once in the
    reader. A check that fetched 8 MiB read on towards the topic's end, and Tansu's s3 storage
    reads each batch object after the offset: 3.3 s per micro-batch with two partitions of 1,000
    one-record batches (benchmarks/README.md). The checks' consumers now ask for one batch."""
    ensure_topics(s3_broker.bootstrap, ["posts"], 1)
    producer = KafkaProducer(bootstrap_servers=s3_broker.bootstrap)
    for i in range(200):  # one record batch each: .get() before the next send
        producer.send("posts", f'{{"platform": "x", "id": "{i}"}}'.encode()).get(30)
    producer.close()
    rows = pd.DataFrame([(0, o, "x", str(o)) for o in range(50, 80)],
                        columns=["kafka_partition", "kafka_offset", "platform", "id"])
    life = PostsLife(s3_broker.bootstrap, "posts", tmp_path)
    try:
        life.check(rows, {0: (49, "x", "49")})  # the same posts: nothing raised
        assert _brought_beyond(life._consumer) == 0
    finally:
        life.close()

    save_last_read(tmp_path, "posts", rows, {})  # the reader compares offset 79 before a batch
    reader = KafkaStreamReader({"bootstrap": s3_broker.bootstrap, "topic": "posts",
                                "checkpoint": str(tmp_path)})
    assert reader.latestOffset({"0": 80}, ReadAllAvailable()) == {"0": 200}
    try:
        assert _brought_beyond(reader._consumer) == 0
    finally:
        reader.stop()
