"""Hostile records mixed into valid posts, on real parts: `polarwatch ingest file` (a real
process) → embedded broker → Spark (local[2], lexicon) → DuckDB.

Issue #13: before the record contract bounded every field, a post dated 2300 killed every
`polarwatch stream` run (pandas OutOfBoundsDatetime), `"created_at": 1e300` crashed
`ingest file` (OverflowError), 10,000-deep JSON raised RecursionError, a lone surrogate raised
UnicodeEncodeError and a >1 MB invalid record was sent raw to the dead-letter topic (over
kafka-python's 1 MB request limit). Here each one is dead-lettered with its reason, through
ingest *and* written straight into the posts topic (another client), and all 30 valid posts are
stored and windowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kafka import KafkaProducer

from polarwatch.config import Config
from polarwatch.records import MAX_DEAD_LETTER_BYTES
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
T0 = NOW - timedelta(hours=6)
BIG_TEXT_CHARS = 1_100_000  # the record is > 1 MB, kafka-python's default request limit


def _post(pid: str, minutes: int, parent: str | None = None, conv: str = "c0",
          **overrides: object) -> dict[str, object]:
    text = "We need gun control now." if parent is None else "Exactly, background checks."
    obj: dict[str, object] = {
        "id": pid, "platform": "test", "author_id": "u1", "text": text,
        "created_at": (T0 + timedelta(minutes=minutes)).isoformat(), "topic": "gun_control",
        "conversation_id": conv, "parent_id": parent, "lang": "en"}
    obj.update(overrides)
    return obj


def valid_posts() -> list[dict[str, object]]:
    """10 threads of a root and two replies: 30 posts."""
    posts = []
    for t in range(10):
        posts.append(_post(f"r{t}", t * 20, conv=f"c{t}"))
        posts += [_post(f"r{t}-{k}", t * 20 + k, parent=f"r{t}", conv=f"c{t}") for k in (1, 2)]
    return posts


def hostile_lines() -> dict[str, bytes]:
    """One JSONL line per kind of hostile record (each would end a process before #13)."""
    deep = "[" * 10_000 + "]" * 10_000
    return {
        "future": json.dumps(_post("h-future", 5, created_at="2300-01-01T00:00:00Z")).encode(),
        "epoch": json.dumps(_post("h-epoch", 5, created_at=1e300)).encode(),
        "deep": (json.dumps(_post("h-deep", 5))[:-1] + f', "extra": {deep}}}').encode(),
        "surrogate": json.dumps(_post("h-surrogate", 5, text="a \ud800 b")).encode(),
        "huge": json.dumps(_post("h-huge", 5, text="x" * BIG_TEXT_CHARS)).encode(),
    }


# the reason each kind gets at ingest (file rows) and in the stream's parser (topic values)
INGEST_REASONS = {
    "future": "is in the future", "epoch": "created_at: epoch 1e+300 is out of range",
    "deep": "nested deeper than", "surrogate": "text: character U+D800 is not allowed",
    "huge": "bytes, more than the",
}
STREAM_REASONS = {**INGEST_REASONS, "epoch": "created_at: 1e+300 is not of type 'string'"}


def _rows(cfg: Config, sql: str) -> list[tuple]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_hostile_records_are_dead_lettered_and_valid_posts_stored(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    bootstrap = broker.bootstrap
    env = stream_env(bootstrap, tmp_path)
    from polarwatch.config import load_config

    cfg = load_config(REPO / "polarwatch.toml", env=env)
    hostile = hostile_lines()
    lines = [json.dumps(p).encode() for p in valid_posts()]
    for i, line in enumerate(hostile.values()):  # spread among the valid posts
        lines.insert(3 + i * 6, line)
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")

    # 1. ingest: a real `polarwatch ingest file` process must exit 0
    proc = subprocess.run(
        [sys.executable, "-m", "polarwatch.cli", "ingest", "file", str(data),
         "--state-dir", str(tmp_path / "ingest")],
        env={**os.environ, **env, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml")},
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "30 posts sent" in proc.stderr + proc.stdout, proc.stderr[-2000:]
    assert "5 dead-lettered" in proc.stderr + proc.stdout

    # 2. the same hostile records written straight into the posts topic by another client
    raw = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=4 * 1024 * 1024)
    for value in hostile.values():
        raw.send(cfg.topics.posts, key=b"hostile", value=value)
    raw.flush()
    raw.close()

    # 3. the stream drains the topic and must not raise (what `polarwatch stream` runs)
    run_stream(cfg, spark=spark)

    assert _rows(cfg, "SELECT count(*) FROM posts") == [(30,)]
    assert {r[0] for r in _rows(cfg, "SELECT id FROM posts")} == \
        {str(p["id"]) for p in valid_posts()}
    assert _rows(cfg, "SELECT count(*) FROM interactions") == [(20,)]
    # the newest window is the one of the newest valid post (no hostile date moved it)
    newest = _rows(cfg, "SELECT max(window_start) FROM topic_windows")[0][0]
    assert newest == (T0 + timedelta(minutes=9 * 20 + 2)).replace(minute=0)

    dead = _rows(cfg, "SELECT source, reason, raw, raw_size, rejected_at FROM dead_letters")
    by_source: dict[str, list[tuple]] = {}
    for row in dead:
        by_source.setdefault(row[0], []).append(row)
    assert {k: len(v) for k, v in by_source.items()} == {"ingest": 5, "stream": 5}
    for source, reasons in (("ingest", INGEST_REASONS), ("stream", STREAM_REASONS)):
        got = " | ".join(r[1] for r in by_source[source])
        for kind, reason in reasons.items():
            assert reason in got, (source, kind, got)
        for _, _reason, raw_text, size, rejected_at in by_source[source]:
            assert rejected_at is not None
            assert len(raw_text.encode()) <= MAX_DEAD_LETTER_BYTES + 3 * 4  # cut, + U+FFFD
            kind = next(k for k in hostile if f'"h-{k}"' in raw_text[:40])
            assert size == len(hostile[kind]), (source, kind)  # the original size
        assert len(hostile["huge"]) > 1_000_000
