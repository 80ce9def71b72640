"""Record batches the stream cannot unpack — a compression bomb, a codec this machine lacks
(snappy), corrupt compressed bytes — and values over MAX_RECORD_BYTES are dead-lettered with a
reason; the posts around them are stored, and no batch is decompressed beyond MAX_BATCH_BYTES."""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import lz4.frame
import pytest
import zstandard

from polarwatch.config import load_config
from polarwatch.records import MAX_RECORD_BYTES
from polarwatch.warehouse import connect
from stream import record_batches
from stream.job import run_stream
from tests.kafka_helpers import stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]
BOMB = 80 * 1024 * 1024  # zeros: a few hundred KiB compressed, more than MAX_BATCH_BYTES


@pytest.mark.parametrize(("decode", "encode"), [
    (record_batches.gzip_decode, gzip.compress),
    (record_batches.zstd_decode, lambda b: zstandard.ZstdCompressor().compress(b)),
    (record_batches.lz4_decode, lz4.frame.compress),
])
def test_the_decoders_stop_at_the_cap(decode: Callable[[bytes], bytes],
                                      encode: Callable[[bytes], bytes],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_batches, "MAX_BATCH_BYTES", 1000)
    assert decode(encode(b"x" * 1000)) == b"x" * 1000  # at the cap: whole
    with pytest.raises(record_batches._TooLarge):
        decode(encode(b"x" * 1001))
    with pytest.raises(Exception):  # noqa: B017, PT011 — each codec has its own corrupt-input error
        decode(io.BytesIO(b"not compressed at all").getvalue())


def _post(i: int) -> bytes:
    created = datetime.now(UTC) - timedelta(hours=2, minutes=-i)
    return json.dumps({"id": f"ok-{i}", "platform": "test", "author_id": "u",
                       "topic": "gun_control", "text": "We need gun control now.",
                       "created_at": created.isoformat(), "conversation_id": f"c{i}"}).encode()


def _send(bootstrap: str, topic: str, codec: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "compression.codec": codec,
                         "message.max.bytes": 200_000_000, "linger.ms": 0})
    for value in values:
        producer.produce(topic, value=value, partition=0,
                         on_delivery=lambda err, _m: errors.append(str(err)) if err else None)
        producer.flush(30)  # one record batch per value
    assert not errors, errors


@pytest.mark.slow
def test_unreadable_batches_and_oversize_values_are_dead_letters(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    from ingest.broker import ensure_topics

    bootstrap = broker.bootstrap
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(bootstrap, tmp_path))
    ensure_topics(bootstrap, [cfg.topics.posts, cfg.topics.dead_letter], 1)
    topic = cfg.topics.posts
    _send(bootstrap, topic, "none", [_post(0)])
    _send(bootstrap, topic, "snappy", [_post(100)])  # no snappy here: cannot be unpacked
    _send(bootstrap, topic, "gzip", [b"\0" * BOMB])
    _send(bootstrap, topic, "zstd", [b"\0" * BOMB])
    _send(bootstrap, topic, "none", [b"{" + b" " * MAX_RECORD_BYTES + b"}", _post(1)])
    _send(bootstrap, topic, "lz4", [_post(2)])  # a codec that is here: read as usual
    run_stream(cfg, spark=spark)
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = con.execute("SELECT id FROM posts ORDER BY id").fetchall()
        dead = con.execute("SELECT kafka_offset, reason, raw_size FROM dead_letters "
                           "ORDER BY kafka_offset").fetchall()
    assert stored == [("ok-0",), ("ok-1",), ("ok-2",)], dead
    assert [offset for offset, _, _ in dead] == [1, 2, 3, 4]
    reasons = [reason for _, reason, _ in dead]
    assert "cannot be unpacked" in reasons[0] and "snappy" in reasons[0].lower(), reasons[0]
    for reason in reasons[1:3]:  # the gzip and the zstd bomb
        assert f"more than {record_batches.MAX_BATCH_BYTES:,} bytes" in reason, reasons
    assert f"more than the {MAX_RECORD_BYTES:,} allowed" in reasons[3]
    assert dead[3][2] == MAX_RECORD_BYTES + 2  # the real size, not the part kept


def test_a_topic_ending_in_an_unreadable_batch_has_an_end(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    """latest_offsets reads the last record of each partition (the broker's ListOffsets answer
    is wrong): when the last batch cannot be unpacked it raised, and no stream could start
    (the preflight printed a 58-line traceback, `stream --reset` stopped) until something
    readable came after it. The batch ends the partition; the reader dead-letters it."""
    from ingest.broker import ensure_topics
    from stream.kafka_source import consumer_for, latest_offsets

    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(broker.bootstrap, tmp_path))
    ensure_topics(broker.bootstrap, [cfg.topics.posts], 1)
    _send(broker.bootstrap, cfg.topics.posts, "none", [_post(0)])
    _send(broker.bootstrap, cfg.topics.posts, "snappy", [_post(1)])  # no snappy here
    consumer = consumer_for(broker.bootstrap, cfg.kafka_options())
    try:
        assert latest_offsets(consumer, cfg.topics.posts) == {"0": 2}
    finally:
        consumer.close()
