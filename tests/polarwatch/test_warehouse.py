"""The warehouse opens DuckDB files written by earlier releases and adds the new columns."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from polarwatch.ddl import TABLES
from polarwatch.errors import WarehouseUnreadable
from polarwatch.warehouse import connect, init_schema, table_columns
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
        rows = con.execute("SELECT kafka_offset, reason, source, raw_size, topic_generation "
                           "FROM dead_letters").fetchall()
        key = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                          "table_name = 'dead_letters' AND constraint_type = 'PRIMARY KEY'"
                          ).fetchall()
    assert names[-5:] == ["source", "raw_size", "rejected_at", "dead_letter_key",
                          "topic_generation"]
    assert rows == [(3, "malformed JSON: x", "stream", None, 0)]
    assert key == [(["source_topic", "topic_generation", "kafka_partition", "kafka_offset"],)]


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


def _post_row(pid: str, created: datetime, parent: str | None = None) -> dict:
    return {"id": pid, "platform": "t", "author_id": "u", "text": pid, "created_at": created,
            "topic": "gun_control", "conversation_id": "c", "parent_id": parent, "lang": "en",
            "schema_version": 1, "stance": "pro", "affect": "no",
            "agreement": None if parent is None else "agree", "emotion": "neutral",
            "intensity": 0.1, "stance_conf": 0.9, "affect_conf": 0.9,
            "agreement_conf": None if parent is None else 0.9, "emotion_conf": 0.5,
            "backend": "test", "explanation": None, "kafka_partition": 0,
            "kafka_offset": abs(hash(pid)) % 10**9, "broker_ts": created, "dead_reason": None,
            "raw": None, "raw_size": None}


def test_one_post_dated_next_year_deletes_nothing(tmp_path: Path) -> None:
    """Retention runs on the event clock, which one forged date cannot move: before, a single
    post dated a year ahead made every real post older than keep_days and deleted them all."""
    from datetime import timedelta

    path = tmp_path / "keep.duckdb"
    now = datetime(2026, 5, 20, tzinfo=UTC)
    rows = [_post_row(f"p{i}", now - timedelta(hours=i)) for i in range(10)]
    rows.append(_post_row("forged", now + timedelta(days=365)))
    res = DuckDBSink(path, "q", "posts", keep_days=3.0).write(pd.DataFrame(rows), 0)
    assert res.posts == 11 and res.pruned == 0


def test_retention_prunes_old_posts_interactions_and_dead_letters(tmp_path: Path) -> None:
    """[warehouse] keep_days: event-time retention for posts and interactions (relative to
    the newest post), processing-time retention for dead letters (the newest of each
    partition stays so the dead-letter drain resumes after it)."""
    from datetime import timedelta

    path = tmp_path / "keep.duckdb"
    newest = datetime(2026, 5, 20, tzinfo=UTC)
    rows = []
    for day in range(10):  # a root and a reply per day, 10 days before the newest post
        ts = newest - timedelta(days=9 - day)
        rows += [_post_row(f"r{day}", ts), _post_row(f"a{day}", ts, parent=f"r{day}")]
    rows.append(_post_row("x9", newest))  # the third post at `newest`: the event clock
    sink = DuckDBSink(path, "q", "posts", keep_days=3.5)
    with connect(path) as con:  # dead letters stored 10 and 1 days ago on three partitions;
        # partition 2's topic began again (generation 1) after offset 5 of generation 0
        for part, offset, age, life in ((0, 0, 10, 0), (0, 1, 10, 0), (0, 2, 1, 0),
                                        (1, 0, 10, 0), (2, 5, 10, 0), (2, 0, 10, 1)):
            con.execute("INSERT INTO dead_letters (source_topic, kafka_partition, "
                        "kafka_offset, reason, raw, seen_at, source, topic_generation) VALUES "
                        "('dead', ?, ?, 'r', '', now() - to_days(?), 'ingest', ?)",
                        [part, offset, age, life])
    res = sink.write(pd.DataFrame(rows), 0)
    assert res.posts == 21 and res.pruned > 0
    with connect(path, read_only=True) as con:
        kept = sorted(r[0] for r in con.execute("SELECT id FROM posts").fetchall())
        inter = sorted(r[0] for r in con.execute("SELECT post_id FROM interactions").fetchall())
        dead = con.execute("SELECT kafka_partition, kafka_offset, topic_generation "
                           "FROM dead_letters ORDER BY ALL").fetchall()
    assert kept == sorted([*(f"{k}{d}" for d in (6, 7, 8, 9) for k in "ra"), "x9"])  # <= 3.5 d
    assert inter == ["a6", "a7", "a8", "a9"]
    # old ones gone, the newest of each partition (newest generation first) kept
    assert dead == [(0, 2, 0), (1, 0, 0), (2, 0, 1)]

    res = sink.write(pd.DataFrame([_post_row("late", newest - timedelta(days=1))]), 1)
    assert res.pruned == 0  # at most once every PRUNE_EVERY_S


def test_retention_is_off_by_default(tmp_path: Path) -> None:
    from datetime import timedelta

    sink = DuckDBSink(tmp_path / "all.duckdb", "q", "posts")
    newest = datetime(2026, 5, 20, tzinfo=UTC)
    sink.write(pd.DataFrame([_post_row(f"p{d}", newest - timedelta(days=d))
                             for d in range(400)]), 0)
    with connect(sink.path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchall() == [(400,)]


def test_a_path_that_is_not_a_duckdb_file_is_a_clear_error(tmp_path: Path) -> None:
    """A text file or a directory at the warehouse path raised duckdb's IOException, which
    every command printed as a traceback."""
    junk = tmp_path / "pw.duckdb"
    junk.write_text("not a database\n")
    for path, says in ((junk, " .*it is not a valid DuckDB database file"),
                       (tmp_path, ": it is a directory; set \\[warehouse\\] path")):
        for read_only in (True, False):
            with pytest.raises(WarehouseUnreadable, match=f"{path} cannot be opened as the "
                               "DuckDB warehouse" + says), connect(path, read_only):
                pass
    assert junk.read_text() == "not a database\n"  # left as it was


@pytest.mark.parametrize(("argv", "table"), [
    (["forecast"], "topic_windows"), (["report", "-o", "report.html"], "topic_windows"),
    (["relabel", "--backend", "lexicon"], "posts"),
    (["relabel", "--backend", "lexicon", "--since", "7d"], "posts"),
])
@pytest.mark.parametrize("holds", [["t", "u"], []])
def test_a_duckdb_file_that_is_not_a_warehouse_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], table: str, holds: list[str]) -> None:
    """Another program's DuckDB file (or an empty one) at [warehouse] path: forecast, report
    and relabel raised duckdb's CatalogException ("Table with name topic_windows does not
    exist!") as a traceback."""
    import duckdb

    from polarwatch.cli import main

    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    for name in holds:
        con.execute(f"CREATE TABLE {name} (x INTEGER)")
    con.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(other))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    rc = main(["--config", str(Path(__file__).resolve().parents[2] / "polarwatch.toml"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err == (
        f"polarwatch: error: {other} is a DuckDB database but not a polarwatch warehouse (no "
        f"{table} table; {'its tables are t, u' if holds else 'it holds no tables'}): run "
        f"`polarwatch stream` first to fill it, or set [warehouse] path (env "
        f"POLARWATCH_WAREHOUSE_PATH) to the file the stream writes\n")
    con = duckdb.connect(str(other), read_only=True)
    assert con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall() == \
        [(name,) for name in holds]  # left as it was: forecast did not make it a warehouse
    con.close()


def test_other_missing_tables_keep_duckdbs_own_error(tmp_path: Path) -> None:
    """"Not a warehouse" is said only of a file with none of polarwatch's tables, asked for
    one of them: a warehouse that lacks one table, or a query for a table no contract has,
    keep DuckDB's error."""
    import duckdb

    path = tmp_path / "pw.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("DROP TABLE labels")
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    for file, table in ((path, "labels"), (other, "nope")):
        with pytest.raises(duckdb.CatalogException, match=f"Table with name {table} does not "
                                                          f"exist"), \
                connect(file, read_only=True) as con:
            con.execute(f"SELECT * FROM {table}")
