"""The embedded broker's lifecycle and the validating producer, against a real broker process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from ingest.broker import EmbeddedBroker, ensure_topics, free_port, port_open
from ingest.producer import DEAD_LETTER_REASON_HEADER, PostProducer, encode
from ingest.sources.synthetic import generate, with_invalid
from polarwatch.config import Topic, load_topics
from polarwatch.errors import BrokerError
from polarwatch.records import Post, post_to_dict
from polarwatch.validation import validate_post
from tests.kafka_helpers import consume

REPO = Path(__file__).resolve().parents[2]
PARTITIONS = 3
CONSUME_TIMEOUT_S = 15.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def topics() -> list[Topic]:
    return load_topics(REPO / "topics.toml")


@pytest.fixture
def topic_names(module_broker: EmbeddedBroker) -> tuple[str, str]:
    """A fresh (posts, dead-letter) pair of topics for one test."""
    suffix = uuid.uuid4().hex[:10]
    posts, dead = f"posts-{suffix}", f"dead-{suffix}"
    ensure_topics(module_broker.bootstrap, [posts, dead], PARTITIONS)
    return posts, dead


def sample_posts(topics: list[Topic], n: int = 600) -> list[Post]:
    posts = list(generate(topics, days=1, seed=5, start=datetime(2024, 5, 1, tzinfo=UTC)))
    assert len(posts) >= n
    return posts[:n]


# ------------------------------------------------------------------------------ broker lifecycle


def test_start_is_idempotent(module_broker: EmbeddedBroker) -> None:
    pid = module_broker.pid()
    assert pid is not None
    assert module_broker.start() == pid
    assert module_broker.start() == pid
    assert module_broker.running()
    assert module_broker.pid_file.read_text().strip() == str(pid)
    assert module_broker.bootstrap == f"127.0.0.1:{module_broker.port}"


def test_stop_and_status(tmp_path: Path) -> None:
    b = EmbeddedBroker(free_port(), tmp_path / "state")
    assert not b.running() and b.pid() is None
    assert b.stop() is False  # nothing to stop
    pid = b.start()
    try:
        assert b.running() and b.pid() == pid
        assert port_open("127.0.0.1", b.port)
    finally:
        assert b.stop() is True
    assert not b.running() and b.pid() is None
    assert not b.pid_file.exists()
    assert not port_open("127.0.0.1", b.port)
    assert b.stop() is False


def test_start_refuses_a_port_someone_else_holds(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} is already taken"):
            EmbeddedBroker(port, tmp_path).start()


def test_ensure_topics_creates_then_reports_nothing_new(module_broker: EmbeddedBroker) -> None:
    suffix = uuid.uuid4().hex[:10]
    a, b, c = f"a-{suffix}", f"b-{suffix}", f"c-{suffix}"
    assert ensure_topics(module_broker.bootstrap, [a, b], PARTITIONS) == [a, b]
    assert ensure_topics(module_broker.bootstrap, [a, b], PARTITIONS) == []
    assert ensure_topics(module_broker.bootstrap, [b, c], 1) == [c]
    consumer = KafkaConsumer(bootstrap_servers=module_broker.bootstrap, group_id=None)
    try:
        assert consumer.partitions_for_topic(a) == set(range(PARTITIONS))
        assert consumer.partitions_for_topic(c) == {0}
        assert {a, b, c} <= consumer.topics()
    finally:
        consumer.close()


def test_ensure_topics_without_a_broker_says_what_to_do() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(BrokerError) as info:
        ensure_topics(bootstrap, ["x"], 1)
    msg = str(info.value)
    assert bootstrap in msg and "polarwatch broker start" in msg and "bootstrap_servers" in msg
    assert time.monotonic() - started < 10  # fails fast, no 30 s bootstrap wait


def test_ensure_topics_with_several_servers_needs_only_one_alive(
        module_broker: EmbeddedBroker) -> None:
    dead = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerError, match="no Kafka broker answers"):
        ensure_topics(f"{dead},127.0.0.1:{free_port()}", ["x"], 1)
    name = f"multi-{uuid.uuid4().hex[:10]}"
    assert ensure_topics(f"{dead},{module_broker.bootstrap}", [name], 1) == [name]


def test_ensure_topics_tells_an_external_kafka_to_start_itself() -> None:
    with pytest.raises(BrokerError) as info:
        ensure_topics(f"127.0.0.1:{free_port()}", ["x"], 1, embedded=False)
    assert "broker start" not in str(info.value)
    assert str(info.value).endswith("; start that Kafka, or fix [broker] bootstrap_servers "
                                    "(POLARWATCH_BROKER_BOOTSTRAP_SERVERS)")


# ------------------------------------------------------------------ `ingest file`, two addresses

def _ingest_file(tmp_path: Path, bootstrap: str, posts: list[Post],
                 posts_topic: str, dead_topic: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join(encode(p) + b"\n" for p in posts))
    env = {**os.environ, "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": bootstrap,
           "POLARWATCH_TOPICS_POSTS": posts_topic, "POLARWATCH_TOPICS_DEAD_LETTER": dead_topic}
    return subprocess.run([sys.executable, "-m", "polarwatch.cli", "--config",
                           str(REPO / "polarwatch.toml"), "ingest", "file", str(path),
                           "--topic", "gun_control", "--state-dir", str(tmp_path / "state"),
                           "--restart"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=90)


def test_ingest_file_goes_past_a_refused_first_address(
        module_broker: EmbeddedBroker, topic_names: tuple[str, str], topics: list[Topic],
        tmp_path: Path) -> None:
    posts_topic, dead_topic = topic_names
    posts = sample_posts(topics, 5)
    closed = free_port()  # nothing listens there: refused
    # the second address accepts TCP but speaks no Kafka: the error is that address's
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        done = _ingest_file(tmp_path, f"127.0.0.1:{closed},{address}", posts, posts_topic,
                            dead_topic)
        elapsed = time.monotonic() - t0
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"polarwatch: error: {address} accepts connections but does "
                               f"not answer as a Kafka broker in 10 s (KafkaTimeoutError: "), lines
    assert "no Kafka broker answers" not in lines[0]
    assert "[broker] security_protocol, sasl_* and ssl_cafile" in lines[0]
    assert elapsed < 25, elapsed  # kafka-python's own bootstrap wait was 30 s
    # the second address is a real broker: the posts go through
    done = _ingest_file(tmp_path, f"127.0.0.1:{closed},{module_broker.bootstrap}", posts,
                        posts_topic, dead_topic)
    assert done.returncode == 0, done.stderr
    got = [json.loads(r.value) for r in consume(module_broker.bootstrap, posts_topic, 5)]
    assert sorted((g["id"], g["text"], g["topic"]) for g in got) == sorted(
        (p.id, p.text, "gun_control") for p in posts)


# ------------------------------------------------------------------------------ producer


def test_producer_sends_valid_posts_keyed_by_conversation(
        module_broker: EmbeddedBroker, topic_names: tuple[str, str], topics: list[Topic]) -> None:
    posts_topic, dead_topic = topic_names
    posts = sample_posts(topics)
    with PostProducer(module_broker.bootstrap, posts_topic, dead_topic) as producer:
        producer.send_many(posts)
        producer.flush()
        assert producer.stats.sent == len(posts)
        assert producer.stats.dead_lettered == 0 and producer.stats.reasons == {}

    records = consume(module_broker.bootstrap, posts_topic, len(posts))
    assert len(records) == len(posts)
    by_id = {p.id: p for p in posts}
    partitions_of: dict[str, set[int]] = defaultdict(set)
    for rec in records:
        post = by_id[json.loads(rec.value)["id"]]
        assert rec.key == post.conversation_id.encode()
        assert rec.value == encode(post)
        assert json.loads(rec.value) == post_to_dict(post)
        partitions_of[post.conversation_id].add(rec.partition)
    assert {json.loads(r.value)["id"] for r in records} == set(by_id)
    # a conversation lives in exactly one partition, and the conversations are spread out
    assert all(len(parts) == 1 for parts in partitions_of.values())
    assert len({p for parts in partitions_of.values() for p in parts}) == PARTITIONS
    # inside a partition, each conversation's posts keep their send (= creation) order
    order = {p.id: i for i, p in enumerate(posts)}
    per_partition: dict[int, list[Any]] = defaultdict(list)
    for rec in records:
        per_partition[rec.partition].append(rec)
    for recs in per_partition.values():
        recs.sort(key=lambda r: r.offset)
        last: dict[str, int] = {}
        for rec in recs:
            obj = json.loads(rec.value)
            assert order[obj["id"]] > last.get(obj["conversation_id"], -1)
            last[obj["conversation_id"]] = order[obj["id"]]
    assert consume(module_broker.bootstrap, dead_topic, 0) == []


def test_producer_dead_letters_invalid_bytes(
        module_broker: EmbeddedBroker, topic_names: tuple[str, str], topics: list[Topic]) -> None:
    posts_topic, dead_topic = topic_names
    posts = sample_posts(topics, 400)
    raws = list(with_invalid(iter(posts), every=40, seed=2))  # 10 bad records
    extra_bad = [b"\xff\xfe not utf-8", b"[1, 2, 3]", b"", json.dumps({"id": 5}).encode()]
    raws += extra_bad
    n_bad = len(posts) // 40 + len(extra_bad)

    with PostProducer(module_broker.bootstrap, posts_topic, dead_topic) as producer:
        results = [producer.send_raw(raw) for raw in raws]
        assert results.count(True) == len(posts)
        assert results.count(False) == n_bad
        assert producer.stats.sent == len(posts)
        assert producer.stats.dead_lettered == n_bad
        assert sum(producer.stats.reasons.values()) == n_bad
        assert producer.stats.reasons["malformed JSON"] >= 1  # bytes b"\xff..."
        assert producer.stats.reasons["record"] >= 1  # b"": "record: empty (no JSON); ..."
        assert producer.stats.reasons["expected a JSON object, got list"] == 1

    bad_raws = [raw for raw, ok in zip(raws, results, strict=True) if not ok]
    dead = consume(module_broker.bootstrap, dead_topic, n_bad)
    assert len(dead) == n_bad
    assert sorted(r.value for r in dead) == sorted(bad_raws)  # the original bytes, untouched
    for rec in dead:
        assert rec.key is None
        headers = dict(rec.headers)
        reason = headers[DEAD_LETTER_REASON_HEADER].decode()
        assert reason
        try:
            obj = json.loads(rec.value)
        except ValueError:
            assert reason.startswith("record: empty (no JSON)" if rec.value == b""
                                     else "malformed JSON"), reason
        else:
            assert reason == validate_post(obj)
    assert len(consume(module_broker.bootstrap, posts_topic, len(posts))) == len(posts)


def test_producer_stats_start_at_zero_and_flush_without_sends(
        module_broker: EmbeddedBroker, topic_names: tuple[str, str]) -> None:
    posts_topic, dead_topic = topic_names
    producer = PostProducer(module_broker.bootstrap, posts_topic, dead_topic)
    try:
        producer.flush(timeout=10)
        assert (producer.stats.sent, producer.stats.dead_lettered) == (0, 0)
    finally:
        producer.close()


def test_dedup_names_a_post_by_platform_and_id(broker: EmbeddedBroker) -> None:
    """The same id on two platforms is two posts; on one platform, one."""
    from tests.kafka_helpers import unique_topics

    posts_topic, dead_topic = unique_topics(broker.bootstrap, "dedup")
    base = {"id": "42", "author_id": "a", "text": "gun laws", "topic": "gun_control",
            "created_at": "2024-05-01T00:00:00+00:00", "conversation_id": "c"}
    with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
        results = [producer.send_obj(base | {"platform": p})
                   for p in ("reddit", "bluesky", "reddit")]
    assert results == ["sent", "sent", "duplicate"]


def test_dedup_sends_an_id_again_when_its_content_changed(broker: EmbeddedBroker) -> None:
    """An exact copy is dropped; a changed copy (an edit, a fixed text) goes on to the stream,
    which keeps the first version and dead-letters the other naming what differs. Dropping it
    here would lose that version without a trace."""
    from tests.kafka_helpers import unique_topics

    posts_topic, dead_topic = unique_topics(broker.bootstrap, "dedup_changed")
    first = {"id": "7", "platform": "reddit", "author_id": "a", "text": "gun laws",
             "topic": "gun_control", "created_at": "2024-05-01T00:00:00+00:00",
             "conversation_id": "c"}
    edited = first | {"text": "gun laws (edited)"}
    with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
        producer.mark_seen(first | {"author_id": "b"})  # resumed: a row before the cursor
        results = [producer.send_obj(p) for p in (first, first, edited, edited)]
    assert results == ["sent", "duplicate", "sent", "duplicate"]
    assert (producer.stats.duplicates, producer.stats.resent_changed) == (2, 2)
    texts = [(json.loads(r.value)["author_id"], json.loads(r.value)["text"])
             for r in consume(broker.bootstrap, posts_topic, 2)]
    assert texts == [("a", "gun laws"), ("a", "gun laws (edited)")]
