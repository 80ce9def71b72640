"""A memory broker that restarts loses its topics, and the dead-letter topic it makes again
counts from offset 0. The drain stores the new life's dead letters as the next generation
instead of skipping those at offsets already stored (real broker restarted, real DuckDB)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from polarwatch.warehouse import connect
from stream.dead_letters import DeadLetterDrain
from stream.sink import DuckDBSink
from stream.udfs import LabelStage

POSTS, DEAD = "gen-posts", "gen-dead"
EMPTY = LabelStage("lexicon", (), ()).label_frame(pd.DataFrame({  # a batch with no posts
    "kafka_partition": pd.Series([], dtype="int32"), "kafka_offset": pd.Series([], dtype="int64"),
    "broker_ts": pd.Series([], dtype="datetime64[us, UTC]"), "value": pd.Series([], dtype=object)}))


def _send(broker: EmbeddedBroker, tag: str, n: int, origin: bool = False) -> None:
    ensure_topics(broker.bootstrap, [POSTS, DEAD], 1)
    with PostProducer(broker.bootstrap, POSTS, DEAD) as producer:
        for i in range(n):
            producer.send_raw(f"not json {tag} {i}".encode(),
                              origin=("test.jsonl", i) if origin else None)


def _drain(broker: EmbeddedBroker, path: Path, batch: int) -> int:
    """A new stream process's first micro-batch: the ingest dead letters it stored."""
    drain = DeadLetterDrain(broker.bootstrap, DEAD)
    try:
        return DuckDBSink(path, "q", POSTS, dead_letters=drain).write(EMPTY.copy(), batch
                                                                      ).ingest_dead
    finally:
        drain.close()


def _stored(path: Path) -> list[tuple[int, int, str]]:
    with connect(path, read_only=True) as con:
        return [tuple(r) for r in con.execute(
            "SELECT topic_generation, kafka_offset, raw FROM dead_letters ORDER BY ALL").fetchall()]


def _restart(broker: EmbeddedBroker) -> None:
    broker.stop()
    broker.start()


def test_a_restarted_memory_broker_s_dead_letters_are_a_new_generation(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _send(memory_broker, "a", 3)
    with PostProducer(memory_broker.bootstrap, POSTS, DEAD) as producer:  # the row compared:
        producer.dead_letter(b"\x00\xff\xfe" + b"z" * 100_000, "record: too big")  # cut, odd
    assert _drain(memory_broker, path, 0) == 4
    assert _drain(memory_broker, path, 1) == 0  # the same life: resumes, nothing twice

    _restart(memory_broker)  # the topic comes back longer than what was stored
    _send(memory_broker, "b", 5)
    assert _drain(memory_broker, path, 2) == 5
    assert _stored(path)[:3] + _stored(path)[4:] == \
        [(0, i, f"not json a {i}") for i in range(3)] + \
        [(1, i, f"not json b {i}") for i in range(5)]
    assert _drain(memory_broker, path, 3) == 0

    _restart(memory_broker)  # ... and shorter
    _send(memory_broker, "c", 2)
    assert _drain(memory_broker, path, 4) == 2
    assert [r for r in _stored(path) if r[0] == 2] == [(2, 0, "not json c 0"),
                                                       (2, 1, "not json c 1")]
    assert len(_stored(path)) == 11


def test_ingest_s_resends_into_a_new_life_are_still_stored_once(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """`ingest file --restart` after the broker lost its topics sends the same records again:
    a new generation, but their keys are stored, so nothing is stored twice."""
    path = tmp_path / "w.duckdb"
    _send(memory_broker, "a", 4, origin=True)
    assert _drain(memory_broker, path, 0) == 4
    _restart(memory_broker)
    _send(memory_broker, "a", 4, origin=True)  # the same records, the same keys
    _send(memory_broker, "new", 1, origin=True)
    assert _drain(memory_broker, path, 1) == 1
    assert [r[:2] for r in _stored(path)] == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 4)]


def test_a_running_stream_s_drain_finds_the_new_life_between_batches(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """`stream --continuous` keeps its drain (and its position) across micro-batches: a broker
    restarted between two of them, whose topic comes back longer, was read from the old
    position on, and the new life's first dead letters were skipped without a word."""
    path = tmp_path / "w.duckdb"
    drain = DeadLetterDrain(memory_broker.bootstrap, DEAD)
    sink = DuckDBSink(path, "q", POSTS, dead_letters=drain)
    try:
        _send(memory_broker, "a", 3)
        assert sink.write(EMPTY.copy(), 0).ingest_dead == 3
        assert sink.write(EMPTY.copy(), 1).ingest_dead == 0  # nothing new: nothing fetched
        _restart(memory_broker)
        _send(memory_broker, "b", 5)
        assert sink.write(EMPTY.copy(), 2).ingest_dead == 5
        _send(memory_broker, "c", 1)  # the same life goes on
        assert sink.write(EMPTY.copy(), 3).ingest_dead == 1
    finally:
        drain.close()
    assert [r[:2] for r in _stored(path)] == [(0, 0), (0, 1), (0, 2)] + \
        [(1, i) for i in range(6)]


def test_a_new_life_as_long_as_the_old_one_is_found_on_resuming(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Nothing past the stored position to read: a running drain waits for the next record
    before it compares, but a stream that starts compares at once."""
    path = tmp_path / "w.duckdb"
    _send(memory_broker, "a", 3)
    assert _drain(memory_broker, path, 0) == 3
    _restart(memory_broker)
    _send(memory_broker, "b", 3)
    assert _drain(memory_broker, path, 1) == 3
    assert [r for r in _stored(path) if r[0] == 1] == [(1, i, f"not json b {i}")
                                                       for i in range(3)]


def test_the_idle_drain_and_a_batch_never_use_the_consumer_at_once(
        memory_broker: EmbeddedBroker, tmp_path: Path) -> None:
    """`stream --continuous` asks the drain for the topic's ends from its idle thread while a
    micro-batch fetches through the same kafka-python consumer, which is not thread-safe (a
    review: "generator already executing" stopped the stream)."""
    path = tmp_path / "w.duckdb"
    _send(memory_broker, "a", 20)
    drain = DeadLetterDrain(memory_broker.bootstrap, DEAD)
    sink = DuckDBSink(path, "q", POSTS, dead_letters=drain)
    errors: list[BaseException] = []
    done = threading.Event()

    def ask_ends() -> None:
        while not done.is_set():
            try:
                if drain.ends() is None:
                    errors.append(AssertionError("ends not read"))
            except Exception as exc:  # asserted below
                errors.append(exc)

    try:
        sink.write(EMPTY.copy(), 0)
        thread = threading.Thread(target=ask_ends)
        thread.start()
        for batch in range(1, 41):
            drain.forget()  # each fetch compares the broker again, as after a failed batch
            sink.write(EMPTY.copy(), batch)
        done.set()
        thread.join(60)
    finally:
        drain.close()
    assert errors == []
    assert len(_stored(path)) == 20
