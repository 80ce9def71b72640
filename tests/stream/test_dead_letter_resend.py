"""A dead letter ingest sends again is stored once (real broker, real `polarwatch ingest file`,
real stream, real DuckDB): `ingest file --restart` (or a resume after a crash) re-sends rejected
rows at new offsets with the same key header, and the drain stores one row per key; two equal
bad lines at two positions stay two dead letters. An older warehouse gains the key column."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import EmbeddedBroker
from ingest.producer import PostProducer
from polarwatch.config import load_config
from polarwatch.migrations import MIGRATIONS
from polarwatch.records import DEAD_LETTER_KEY_HEADER
from polarwatch.warehouse import connect, init_schema, table_columns
from stream.job import run_stream
from tests.kafka_helpers import consume, stream_env, unique_topics
from tests.stream.test_dead_letter_drain import EMPTY, _sink

REPO = Path(__file__).resolve().parents[2]
BROKEN = '{"id": "broken", "text": '  # the same bad line twice, at rows 2 and 4


def _post(pid: str, text: str = "climate policy now", **extra: str) -> str:
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return json.dumps({"id": pid, "platform": "p", "author_id": "a", "text": text,
                       "created_at": at, "topic": "climate_change", "conversation_id": pid,
                       **extra})


def _ingest_dead(path: Path) -> list[tuple[Any, ...]]:
    with connect(path, read_only=True) as con:
        return con.execute("SELECT raw, dead_letter_key FROM dead_letters WHERE source = "
                           "'ingest' ORDER BY kafka_offset").fetchall()


@pytest.mark.slow
def test_ingest_file_restart_stores_each_rejected_row_once(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    env = stream_env(broker.bootstrap, tmp_path)
    cfg = load_config(REPO / "polarwatch.toml", env=env)
    naive = _post("naive", created_at="2026-01-01T00:00:00")  # rejected by the producer
    lines = [_post("a"), BROKEN, _post("b"), BROKEN, naive, _post("big", "x" * 20_000),
             _post("c")]
    data = tmp_path / "posts.jsonl"
    data.write_text("".join(line + "\n" for line in lines))
    rejects = [(2, BROKEN), (4, BROKEN), (5, naive), (6, lines[5])]
    child = {**os.environ, **env, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml")}

    def ingest(*extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", "ingest", "file",
                               str(data), "--state-dir", str(tmp_path / "ingest"), *extra],
                              cwd=REPO, env=child, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        return proc.stderr

    assert "4 dead-lettered" in ingest()
    run_stream(cfg, spark=spark)  # stores the 4, keyed
    first = _ingest_dead(cfg.warehouse_path)
    assert sorted(r[0] for r in first) == sorted(line for _, line in rejects)
    assert len({r[1] for r in first}) == 4 and all(r[1] for r in first)

    assert "4 dead-lettered" in ingest("--restart")  # sent again: new offsets, same keys
    assert "4 dead-lettered" in ingest("--restart")  # and again: two copies in one batch
    sent = consume(broker.bootstrap, cfg.topics.dead_letter, 12)
    assert len(sent) == 12  # the topic holds every send ...
    assert len({dict(m.headers)[DEAD_LETTER_KEY_HEADER] for m in sent}) == 4
    run_stream(cfg, spark=spark)
    assert _ingest_dead(cfg.warehouse_path) == first  # ... the warehouse each reject once


def test_the_drain_keeps_one_row_per_key_in_a_batch_and_across_batches(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    posts, dead = unique_topics(broker.bootstrap, "resend", partitions=1)
    path = tmp_path / "drain.duckdb"
    sink = _sink(path, broker.bootstrap, dead)
    with PostProducer(broker.bootstrap, posts, dead) as producer:
        for _ in range(2):  # the same row twice in one batch; the same bytes without a key too
            producer.send_raw(b"{", ("f.jsonl", 1))
            producer.dead_letter(b"{", "malformed JSON")
        producer.send_raw(b"{", ("f.jsonl", 2))  # the same bytes at another row
        producer.send_raw(b"{", ("g.jsonl", 1))  # ... or in another file
    assert sink.write(EMPTY.copy(), 0).ingest_dead == 5
    with connect(path, read_only=True) as con:
        keys = con.execute("SELECT kafka_offset, dead_letter_key IS NOT NULL FROM dead_letters "
                           "ORDER BY 1").fetchall()
    assert keys == [(0, True), (1, False), (3, False), (4, True), (5, True)]

    with PostProducer(broker.bootstrap, posts, dead) as producer:  # a restarted ingest
        for row in (1, 2):
            producer.send_raw(b"{", ("f.jsonl", row))
    assert sink.write(EMPTY.copy(), 1).ingest_dead == 0
    assert sink.dead_letters is not None and sink.dead_letters._next == {0: 8}  # read past them
    restarted = _sink(path, broker.bootstrap, dead)  # a new process: skipped again, not stored
    assert restarted.write(EMPTY.copy(), 2).ingest_dead == 0
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM dead_letters").fetchone() == (5,)


def test_a_forged_key_header_is_noted_and_the_row_stored() -> None:
    from stream.dead_letters import dead_letter_row

    row = dead_letter_row("dead", 0, 1, None, b"{", [(DEAD_LETTER_KEY_HEADER, b"../x\xff")],
                          datetime.now(UTC))
    assert row["dead_letter_key"] is None and "unreadable" in row["reason"]


def test_a_version_7_warehouse_gains_the_key_column_and_keeps_its_dead_letters(
        tmp_path: Path) -> None:
    path, new = tmp_path / "old.duckdb", tmp_path / "new.duckdb"
    init_schema(path)
    with connect(path) as con:  # as the previous schema version left it
        con.execute("DROP TABLE dead_letters")
        con.execute(
            "CREATE TABLE dead_letters (source_topic VARCHAR NOT NULL, kafka_partition INTEGER "
            "NOT NULL, kafka_offset BIGINT NOT NULL, reason VARCHAR NOT NULL, raw VARCHAR, "
            "seen_at TIMESTAMPTZ NOT NULL, source VARCHAR, raw_size BIGINT, rejected_at "
            "TIMESTAMPTZ, PRIMARY KEY (source_topic, kafka_partition, kafka_offset))")
        con.execute("DELETE FROM schema_version WHERE version >= 8")
        con.execute("INSERT INTO dead_letters VALUES ('dead', 0, 7, 'malformed JSON: x', '{', "
                    "TIMESTAMPTZ '2026-03-01 00:00:00+00', 'ingest', 1, NULL)")
    assert [m.version for m in init_schema(path)] == [m.version for m in MIGRATIONS
                                                     if m.version >= 8]
    init_schema(new)
    with connect(path, read_only=True) as con, connect(new, read_only=True) as fresh:
        assert table_columns(con, "dead_letters") == table_columns(fresh, "dead_letters")
        assert con.execute("SELECT kafka_offset, reason, dead_letter_key FROM dead_letters"
                           ).fetchall() == [(7, "malformed JSON: x", None)]


def test_synthetic_invalid_records_sent_twice_carry_the_same_keys(stream_config: Any) -> None:
    from ingest.runs import produce_synthetic
    from stream.kafka_source import consumer_for, latest_offsets

    start = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(2):  # the same corpus twice
        produce_synthetic(stream_config, days=1, seed=3, rate=0.2, invalid_every=40, start=start)
    bootstrap, dead = stream_config.broker.bootstrap_servers, stream_config.topics.dead_letter
    counter = consumer_for(bootstrap)
    total = sum(latest_offsets(counter, dead).values())  # Tansu's end_offsets falls short
    counter.close()
    keys = [dict(m.headers)[DEAD_LETTER_KEY_HEADER] for m in consume(bootstrap, dead, total)]
    assert len(keys) == total >= 4
    assert len(set(keys)) == total // 2  # each invalid record: one key, sent twice
