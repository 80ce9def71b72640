"""The warehouse opens DuckDB files written by earlier releases and adds the new columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from polarwatch.warehouse import TABLES, connect, init_schema, table_columns
from stream.sink import DuckDBSink

# dead_letters as the first release created it (before source, raw_size, rejected_at)
OLD_DEAD_LETTERS = """CREATE TABLE dead_letters (
  "source_topic" VARCHAR NOT NULL, "kafka_partition" INTEGER NOT NULL,
  "kafka_offset" BIGINT NOT NULL, "reason" VARCHAR NOT NULL, "raw" VARCHAR,
  "seen_at" TIMESTAMPTZ NOT NULL, PRIMARY KEY (source_topic, kafka_partition, kafka_offset))"""


def _old_file(path: Path) -> None:
    with connect(path) as con:
        for name, ddl in TABLES.items():
            con.execute(OLD_DEAD_LETTERS if name == "dead_letters" else ddl)
        con.execute("INSERT INTO dead_letters VALUES ('posts', 0, 3, 'malformed JSON: x', "
                    "'{', TIMESTAMPTZ '2026-03-01 00:00:00+00')")


def test_an_old_file_opens_gets_the_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _old_file(path)
    init_schema(path)
    init_schema(path)  # idempotent
    with connect(path, read_only=True) as con:
        names = [n for n, _ in table_columns(con, "dead_letters")]
        rows = con.execute("SELECT kafka_offset, reason, source, raw_size FROM dead_letters"
                           ).fetchall()
    assert names[-3:] == ["source", "raw_size", "rejected_at"]
    assert rows == [(3, "malformed JSON: x", "stream", None)]


def test_the_sink_writes_dead_letters_into_an_old_file(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _old_file(path)
    sink = DuckDBSink(path, "q", "posts")
    now = datetime.now(UTC)
    pdf = pd.DataFrame({"id": [None], "dead_reason": ["record: too big"], "raw": ["{"],
                        "raw_size": [2_000_000], "kafka_partition": [1], "kafka_offset": [9],
                        "broker_ts": [now], "created_at": [None]})
    for col in ("platform", "author_id", "text", "topic", "conversation_id", "parent_id",
                "lang", "schema_version", "stance", "affect", "agreement", "emotion",
                "intensity", "stance_conf", "affect_conf", "agreement_conf", "emotion_conf",
                "backend", "explanation"):
        pdf[col] = None
    res = sink.write(pdf, 0)
    assert res.dead == 1
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT kafka_offset, source, raw_size FROM dead_letters "
                           "ORDER BY kafka_offset").fetchall()
    assert rows == [(3, "stream", None), (9, "stream", 2_000_000)]
