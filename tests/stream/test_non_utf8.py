"""Bytes another client writes to the posts topic that are not UTF-8, on real parts: kafka-python
→ embedded broker → `run_stream` (Spark local[2], lexicon) → DuckDB.

Audit finding 2: a value with bytes that are not UTF-8 was stored as a post with U+FFFD in
their place (the source decoded with errors="replace"), although `ingest file` dead-letters the
same bytes. Now it is a dead letter whose reason names the byte and its offset, the words of
`ingest file`. Beside it: a header key that is not UTF-8 (kafka-python decoded header keys
strictly, and one failed every fetch at its offset) and a record whose structure cannot be read
(a header count that lies) no longer stop the stream, and the posts around them are stored.
"""

from __future__ import annotations

import codecs
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaProducer

from polarwatch.config import Config, load_config
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]
CREATED = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
R = (f'"platform":"p","author_id":"a","created_at":"{CREATED}","topic":"climate_change",'
     f'"conversation_id":"c"').encode()
BAD_UTF8 = b'{"id":"k-badutf","text":"climate \xff\xfe",' + R + b"}"  # the audit's record

LOWER_TZ = (b'{"id":"ok-lower-tz","text":"climate policy now",'
            + R.replace(CREATED.encode(), CREATED.replace("T", "t").replace("+00:00", "z").encode())
            + b"}")


def _post(pid: str) -> bytes:
    return b'{"id":"' + pid.encode() + b'","text":"climate policy now",' + R + b"}"


class _RawKey(str):
    """A header key kafka-python writes as these bytes, as a client in another language may."""

    def encode(self, *_: Any, **__: Any) -> bytes:
        return b"\xffkey"


class _LyingHeaders(list):
    """Headers whose count in the record says 2 while one follows: a record no reader can parse
    (its batch's checksum is right: the builder computes it over what it wrote)."""

    def __len__(self) -> int:
        return 2


@dataclass
class Run:
    cfg: Config
    offsets: dict[str, int]  # id → offset in the posts topic (partition 0)
    batches: dict[str, int]  # id → first offset of its record batch
    ingest_stderr: str  # what `ingest file` said of the same bytes

    def rows(self, sql: str) -> list[tuple]:
        with connect(self.cfg.warehouse_path, read_only=True) as con:
            return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def run(broker: EmbeddedBroker, spark: object, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from ingest.broker import ensure_topics

    tmp = tmp_path_factory.mktemp("non_utf8")
    env = stream_env(broker.bootstrap, tmp)
    cfg = load_config(REPO / "polarwatch.toml", env=env)
    ensure_topics(broker.bootstrap, [cfg.topics.posts, cfg.topics.dead_letter], 1)

    # the same bytes through `ingest file` (a real process): dead-lettered there with a reason
    data = tmp / "bad.jsonl"
    data.write_bytes(BAD_UTF8 + b"\n")
    proc = subprocess.run(
        [sys.executable, "-m", "polarwatch.cli", "ingest", "file", str(data),
         "--state-dir", str(tmp / "ingest")],
        env={**os.environ, **env, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml")},
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=200)
    sends = {"ok-before": producer.send(cfg.topics.posts, _post("ok-before"), partition=0)}
    producer.flush()
    # one record batch: the bad header key sits between two posts (lingered together)
    sends["ok-batchmate-1"] = producer.send(cfg.topics.posts, _post("ok-batchmate-1"),
                                            partition=0)
    sends["ok-bad-header"] = producer.send(cfg.topics.posts, _post("ok-bad-header"),
                                           partition=0, headers=[(_RawKey("k"), b"v")])
    sends["ok-batchmate-2"] = producer.send(cfg.topics.posts, _post("ok-batchmate-2"),
                                            partition=0)
    producer.flush()
    sends["k-badutf"] = producer.send(cfg.topics.posts, BAD_UTF8, partition=0)
    producer.flush()
    sends["k-lying"] = producer.send(cfg.topics.posts, _post("k-lying"), partition=0,
                                     headers=_LyingHeaders([("k", b"v")]))
    producer.flush()
    sends["ok-bom"] = producer.send(cfg.topics.posts, codecs.BOM_UTF8 + _post("ok-bom"),
                                    partition=0)
    sends["k-utf16"] = producer.send(cfg.topics.posts, _post("k-utf16").decode().encode(
        "utf-16"), partition=0)
    producer.flush()
    sends["k-tombstone"] = producer.send(cfg.topics.posts, None, key=b"k", partition=0)
    sends["ok-lower-tz"] = producer.send(cfg.topics.posts, LOWER_TZ, partition=0)
    producer.flush()
    sends["ok-after"] = producer.send(cfg.topics.posts, _post("ok-after"), partition=0)
    producer.flush()
    offsets = {pid: future.get(timeout=30).offset for pid, future in sends.items()}
    # kafka-python's future holds the record's index in its batch: offset - index = the batch's
    batches = {pid: offsets[pid] - future.args[0] for pid, future in sends.items()}
    producer.close()

    run_stream(cfg, spark=spark)  # what `polarwatch stream` runs; must not raise
    return Run(cfg, offsets, batches, proc.stderr)


def test_a_value_that_is_not_utf8_is_a_dead_letter_naming_the_byte(run: Run) -> None:
    assert run.rows("SELECT id, text FROM posts WHERE id = 'k-badutf'") == []
    assert run.rows("SELECT count(*) FROM posts WHERE text LIKE '%\ufffd%'") == [(0,)]
    position = BAD_UTF8.index(b"\xff")
    expected = (f"malformed JSON: 'utf-8' codec can't decode byte 0xff in position "
                f"{position}: invalid start byte")
    [(reason, raw, size)] = run.rows(
        f"SELECT reason, raw, raw_size FROM dead_letters WHERE source = 'stream' "
        f"AND kafka_offset = {run.offsets['k-badutf']}")
    assert reason == expected
    assert size == len(BAD_UTF8) and raw.startswith('{"id":"k-badutf"')
    # `ingest file` gave the same bytes the same reason (its dead letter, drained by the stream)
    assert "0 posts sent" in run.ingest_stderr and "1 dead-lettered" in run.ingest_stderr
    assert run.rows("SELECT reason FROM dead_letters WHERE source = 'ingest'") == [(expected,)]


def test_a_header_key_that_is_not_utf8_leaves_its_batch_readable(run: Run) -> None:
    stored = {pid for (pid,) in run.rows("SELECT id FROM posts")}
    assert stored == {"ok-before", "ok-batchmate-1", "ok-bad-header", "ok-batchmate-2",
                      "ok-bom", "ok-lower-tz", "ok-after"}
    # the three were one record batch: the bad key did not cost its batchmates
    assert len({run.batches[pid] for pid in ("ok-batchmate-1", "ok-bad-header",
                                             "ok-batchmate-2")}) == 1, run.batches


def test_a_record_that_cannot_be_read_is_one_dead_letter(run: Run) -> None:
    at = run.offsets["k-lying"]
    [(reason,)] = run.rows(f"SELECT reason FROM dead_letters WHERE source = 'stream' AND "
                           f"kafka_offset = {at}")
    assert reason.startswith(f"offsets {at}..{at}: record batch (1 record(s) by its header) "
                             f"holds a record that cannot be read: CorruptRecordError"), reason
    assert run.batches["k-lying"] == at  # a batch of its own: nothing else was lost with it
    assert ("ok-after",) in run.rows("SELECT id FROM posts")


def test_a_byte_order_mark_is_dropped_and_utf16_is_named(run: Run) -> None:
    """A leading UTF-8 BOM (some Windows clients write one) was a dead letter "Unexpected UTF-8
    BOM" while `ingest file` drops it; a UTF-16 value was "malformed JSON: Expecting value"."""
    [(text,)] = run.rows("SELECT text FROM posts WHERE id = 'ok-bom'")
    assert text == "climate policy now"
    [(reason, raw)] = run.rows(
        f"SELECT reason, raw FROM dead_letters WHERE source = 'stream' "
        f"AND kafka_offset = {run.offsets['k-utf16']}")
    assert reason == "malformed JSON: the value is UTF-16; send posts as UTF-8"
    assert raw.startswith('{"id":"k-utf16"')


def test_an_empty_value_and_rfc3339_lower_case_letters(run: Run) -> None:
    """A tombstone (null value) was "malformed JSON: Expecting value: line 1 column 1 (char
    0)"; a created_at with RFC 3339's lower-case "t" and "z" was dead-lettered ("is not an
    ISO-8601 timestamp") while `ingest file` read it."""
    assert run.rows(f"SELECT reason FROM dead_letters WHERE source = 'stream' AND kafka_offset = "
                    f"{run.offsets['k-tombstone']}") == [
        ("record: empty (no JSON); a post is one JSON object (`polarwatch schema`)",)]
    assert run.rows("SELECT created_at AT TIME ZONE 'UTC' FROM posts WHERE id = 'ok-lower-tz'"
                    ) == [(datetime.fromisoformat(CREATED).replace(tzinfo=None),)]
