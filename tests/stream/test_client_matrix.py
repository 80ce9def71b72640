"""Posts written by a user's own producer, in each client library they may use, are stored by
`polarwatch stream` exactly as the contract says (`polarwatch schema`): kafka-python (the
project's client), confluent-kafka (librdkafka) and aiokafka, against the embedded broker.
Debian's kcat (librdkafka 2.0.2) cannot talk to it (README: "Writing posts from your own
producer")."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from polarwatch.config import Config, load_config
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
N_THREADS, PER_THREAD = 20, 5  # 100 posts, 80 replies


def posts(client: str) -> list[tuple[bytes, bytes]]:
    """(key, value) per post: threads of a root and replies, keyed by conversation."""
    out = []
    for t in range(N_THREADS):
        conv = f"{client}-c{t}"
        for k in range(PER_THREAD):
            post = {"id": f"{client}-{t}-{k}", "platform": "test", "author_id": f"u{k}",
                    "text": "Exactly, background checks." if k else "We need gun control now.",
                    "created_at": (T0 + timedelta(minutes=t * 5 + k)).isoformat(),
                    "topic": "gun_control", "conversation_id": conv,
                    "parent_id": None if k == 0 else f"{client}-{t}-{k - 1}"}
            out.append((conv.encode(), json.dumps(post).encode()))
    return out


def kafka_python(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def confluent(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, key=key, value=value,
                         on_delivery=lambda err, _msg: errors.append(str(err)) if err else None)
    assert producer.flush(30) == 0 and not errors, errors


def aiokafka(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for key, value in records:
                await producer.send_and_wait(topic, key=key, value=value)
        finally:
            await producer.stop()

    asyncio.run(send())


CLIENTS: dict[str, Callable[[str, str, list[tuple[bytes, bytes]]], None]] = {
    "kafka-python": kafka_python, "confluent-kafka": confluent, "aiokafka": aiokafka}


def _rows(cfg: Config, sql: str) -> list[tuple]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_every_client_s_posts_are_stored_once(broker: EmbeddedBroker, spark: object,
                                              tmp_path: Path) -> None:
    from ingest.broker import ensure_topics

    bootstrap = broker.bootstrap
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(bootstrap, tmp_path))
    ensure_topics(bootstrap, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    for name, send in CLIENTS.items():
        send(bootstrap, cfg.topics.posts, posts(name))
    run_stream(cfg, spark=spark)
    stored = dict(_rows(cfg, "SELECT split_part(id, '-', 1), count(*) FROM posts GROUP BY 1"))
    per_client = N_THREADS * PER_THREAD
    assert stored == {"kafka": per_client, "confluent": per_client, "aiokafka": per_client}
    assert _rows(cfg, "SELECT count(*) FROM dead_letters") == [(0,)]
    assert _rows(cfg, "SELECT count(*) FROM interactions") == [(3 * N_THREADS * (PER_THREAD - 1),)]
