"""Versioned migrations: a warehouse written by the code before them (commit c7ae555, replayed
from fixtures/warehouse_c7ae555.sql) upgrades in place, keeps its rows, and ends up with exactly
the schema a new file gets from the contracts; a second run changes nothing."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from polarwatch import warehouse
from polarwatch.ddl import CONTRACTS, TABLES
from polarwatch.errors import SchemaError
from polarwatch.migrations import LATEST_VERSION, MIGRATIONS, Migration
from polarwatch.schemas import duckdb_columns
from polarwatch.warehouse import connect, init_schema, table_columns

FIXTURE = Path(__file__).parent / "fixtures" / "warehouse_c7ae555.sql"
OLD_TABLES = ("alert_deliveries", "alert_state", "dead_letters", "forecasts", "interactions",
              "posts", "stream_batches", "stream_metrics", "topic_windows")


def _old_file(path: Path, *, forecast_ran: bool = True) -> None:
    """Today's file; without `forecast_ran`, as the stream alone left it (no alert tables, no
    columns added by forecast/run.py)."""
    con = duckdb.connect(str(path))
    try:
        con.execute(FIXTURE.read_text())
        if not forecast_ran:
            con.execute("DROP TABLE alert_state; DROP TABLE alert_deliveries")
            con.execute("ALTER TABLE forecasts DROP COLUMN episode_event")
            con.execute("ALTER TABLE forecasts DROP COLUMN episode")
    finally:
        con.close()


def _catalog(path: Path) -> dict[str, Any]:
    """Everything a migration could change: columns with types and nullability, keys, views,
    the version rows, and every row of every table."""
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {
            "columns": {t: table_columns(con, t) for t in tables},
            "keys": con.execute("SELECT table_name, constraint_column_names FROM "
                                "duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' "
                                "ORDER BY 1").fetchall(),
            "views": con.execute("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal "
                                 "ORDER BY 1").fetchall(),
            "rows": {t: sorted(map(repr, con.execute(f"SELECT * FROM {t}").fetchall()))
                     for t in tables},
        }


def test_todays_file_upgrades_in_place_keeps_its_rows_and_matches_a_new_file(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="polarwatch.warehouse")
    old, new = tmp_path / "old.duckdb", tmp_path / "new.duckdb"
    _old_file(old)
    before = _catalog(old)
    assert sorted(before["columns"]) == sorted(OLD_TABLES)

    applied = init_schema(old)
    assert [m for m in caplog.messages if "schema version" in m] == [
        f"warehouse {old}: schema version 0 -> {LATEST_VERSION} ("
        + "; ".join(f"{m.version}: {m.description}" for m in applied) + ")"]
    caplog.clear()
    init_schema(new)
    assert caplog.messages == []  # a new file is not an upgrade

    assert [m.version for m in applied] == list(range(1, LATEST_VERSION + 1))
    after = _catalog(old)
    for table in OLD_TABLES:  # every row kept, value for value (no column was dropped)
        if table == "interactions":  # migration 4 added the reply's platform, taken from posts
            assert [r[:-len(", 'bluesky')")] + ")" for r in after["rows"][table]] == \
                before["rows"][table]
            assert all(r.endswith(", 'bluesky')") for r in after["rows"][table])
            continue
        if table == "dead_letters":  # migrations 8 and 10 added dead_letter_key (NULL on old
            # rows) and topic_generation (0 on old rows)
            assert [r[:-len(", None, 0)")] + ")" for r in after["rows"][table]] == \
                before["rows"][table]
            continue
        if table == "posts":  # migration 6 added labelled_by, relabelled_at: NULL on old rows
            assert [r[:-len(", None, None)")] + ")" for r in after["rows"][table]] == \
                before["rows"][table]
            continue
        assert after["rows"][table] == before["rows"][table], table
    assert len(after["rows"]["posts"]) == 2 and len(after["rows"]["forecasts"]) == 2
    fresh = _catalog(new)
    assert after["columns"] == fresh["columns"]
    assert after["keys"] == fresh["keys"]
    assert after["views"] == fresh["views"]
    with connect(old, read_only=True) as con:
        assert warehouse.schema_version(con) == LATEST_VERSION


def test_a_second_run_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    _old_file(path)
    init_schema(path)
    once = _catalog(path)
    assert init_schema(path) == []
    assert _catalog(path) == once  # the version rows (with their applied_at) included


def test_a_file_only_the_stream_wrote_gets_the_forecast_columns_and_alert_tables(
        tmp_path: Path) -> None:
    path, new = tmp_path / "stream_only.duckdb", tmp_path / "new.duckdb"
    _old_file(path, forecast_ran=False)
    init_schema(path)
    init_schema(new)
    after, fresh = _catalog(path), _catalog(new)
    assert after["columns"] == fresh["columns"]
    assert [n for n, _ in after["columns"]["forecasts"]][-2:] == ["episode", "episode_event"]
    assert len(after["rows"]["forecasts"]) == 2


def test_a_failing_migration_leaves_the_file_as_it_was(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.duckdb"
    _old_file(path, forecast_ran=False)
    before = _catalog(path)

    def broken(con: Any) -> None:
        con.execute("ALTER TABLE posts ADD COLUMN half_done VARCHAR")
        raise RuntimeError("the last migration failed half way")

    monkeypatch.setattr(warehouse, "MIGRATIONS",
                        (*warehouse.MIGRATIONS, Migration(LATEST_VERSION + 1, "broken", broken)))
    monkeypatch.setattr(warehouse, "LATEST_VERSION", LATEST_VERSION + 1)
    with pytest.raises(RuntimeError, match="half way"):
        init_schema(path)
    assert _catalog(path) == before  # the earlier migrations rolled back with it, no version row


def test_a_file_from_a_newer_polarwatch_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "newer.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())",
                    [LATEST_VERSION + 1])
    with pytest.raises(SchemaError, match=f"version {LATEST_VERSION + 1}, newer .* upgrade"):
        init_schema(path)


def _duckdb_spelling(columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """As table_columns reads them back: DuckDB's name for TIMESTAMPTZ, no DEFAULT clause."""
    return [(n, re.sub(r" DEFAULT \S+", "", t.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")))
            for n, t in columns]


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_every_table_is_its_contract(tmp_path: Path, table: str) -> None:
    path = tmp_path / "w.duckdb"
    init_schema(path)
    with connect(path, read_only=True) as con:
        assert table_columns(con, table) == _duckdb_spelling(duckdb_columns(CONTRACTS[table]))
        key = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                          "table_name = ? AND constraint_type = 'PRIMARY KEY'",
                          [table]).fetchall()
    assert key == [(list(CONTRACTS[table].PRIMARY_KEY),)]  # type: ignore[attr-defined]


def test_every_table_has_a_ddl() -> None:
    assert set(TABLES) == {"posts", "interactions", *CONTRACTS}


LABEL_ROW = ("INSERT INTO labels (platform, post_id, topic, task, value, sample, model_value, "
             "model_confidence, labeller, labelled_at) VALUES ('p', '1', 't', 'stance', 'pro', "
             "'random', 'anti', 0.6, 'ana', now())")


def _upgraded_from_before(tmp_path: Path, version: int, table: str, seed: str
                          ) -> tuple[Path, list[int], dict[str, Any], dict[str, Any]]:
    """A file as it was before migration `version` created `table`, holding the row `seed`,
    upgraded: (the file, the versions applied, its catalog, a new file's catalog)."""
    path, new = tmp_path / "before.duckdb", tmp_path / "new.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute(f"DROP TABLE {table}")
        con.execute("DELETE FROM schema_version WHERE version >= ?", [version])
        con.execute(seed)
        assert warehouse.schema_version(con) == max(m.version for m in MIGRATIONS
                                                    if m.version < version)
    applied = init_schema(path)
    init_schema(new)
    return path, [m.version for m in applied], _catalog(path), _catalog(new)


def test_a_version_4_file_gets_the_labels_table(tmp_path: Path) -> None:
    """A file written before the Label page (schema version 4, no `labels`) gains the table
    from migration 5 and ends up as a new file is; its rows stay."""
    path, applied, after, fresh = _upgraded_from_before(
        tmp_path, 5, "labels", "INSERT INTO topic_windows (topic, window_start, window_end, "
        "volume, n_interactions, n_conversations, updated_at) VALUES "
        "('t', now(), now(), 1, 0, 0, now())")
    assert applied == [m.version for m in MIGRATIONS if m.version >= 5]
    assert after["columns"] == fresh["columns"] and after["keys"] == fresh["keys"]
    assert len(after["rows"]["topic_windows"]) == 1
    with connect(path) as con:  # the table takes a label
        con.execute(LABEL_ROW)


def test_a_version_5_file_gets_the_relabel_columns(tmp_path: Path) -> None:
    """Migration 6 adds posts.labelled_by and relabelled_at (``polarwatch relabel``) to a file
    written before them; its posts stay, with both NULL (labelled by the stream)."""
    path, new = tmp_path / "v5.duckdb", tmp_path / "new.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("ALTER TABLE posts DROP COLUMN labelled_by")
        con.execute("ALTER TABLE posts DROP COLUMN relabelled_at")
        con.execute("DELETE FROM schema_version WHERE version >= 6")
        con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                    "conversation_id, stance, affect, emotion, intensity, stance_conf, "
                    "affect_conf, emotion_conf, backend, schema_version) VALUES ('1', 'x', 'a', "
                    "'t', now(), 't', 'c', 'pro', 'no', 'joy', 0, 0, 0, 0, 'lexicon', 1)")
    assert [m.version for m in init_schema(path)] == [m.version for m in MIGRATIONS
                                                     if m.version >= 6]
    init_schema(new)
    after, fresh = _catalog(path), _catalog(new)
    assert after["columns"] == fresh["columns"] and after["keys"] == fresh["keys"]
    with connect(path) as con:
        assert con.execute("SELECT stance, labelled_by, relabelled_at FROM posts").fetchall() \
            == [("pro", None, None)]



def test_a_file_before_label_suggestions_gets_the_table_and_keeps_its_labels(
        tmp_path: Path) -> None:
    """A file from before the LLM assistant (no `label_suggestions`) gains the table from
    migration 7, keeps its analysts' labels and ends up as a new file is."""
    _, applied, after, fresh = _upgraded_from_before(tmp_path, 7, "label_suggestions", LABEL_ROW)
    assert applied == [m.version for m in MIGRATIONS if m.version >= 7]
    assert after["columns"] == fresh["columns"] and after["keys"] == fresh["keys"]
    assert len(after["rows"]["labels"]) == 1


def test_a_post_stored_as_its_own_parent_or_with_an_empty_one_becomes_a_root(
        tmp_path: Path) -> None:
    """A file from before the root rule holds posts whose parent_id is their own id or "":
    migration 9 makes them roots (NULL), as the stream stores them now; a real reply keeps
    its parent."""
    path = tmp_path / "old.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("DELETE FROM schema_version WHERE version >= 9")
        for post, parent in [("r1", "r1"), ("r2", ""), ("r3", None), ("c1", "r3")]:
            con.execute(
                "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                "conversation_id, parent_id, schema_version, stance, affect, emotion, "
                "intensity, stance_conf, affect_conf, emotion_conf, backend) VALUES "
                "(?, 'bluesky', 'a', 'x', now(), 't', 'c', ?, 1, 'pro', 'no', 'joy', 0.1, "
                "0.5, 0.5, 0.5, 'lexicon')", [post, parent])
    applied = init_schema(path)
    assert [m.version for m in applied] == list(range(9, LATEST_VERSION + 1))
    with connect(path) as con:
        rows = con.execute("SELECT id, parent_id FROM posts ORDER BY id").fetchall()
    assert rows == [("c1", "r3"), ("r1", None), ("r2", None), ("r3", None)]


def test_a_file_before_label_sides_gets_the_columns_and_its_labels_keep_null(
        tmp_path: Path) -> None:
    """Migration 11 adds labels.pro_description and anti_description (the sides a stance label
    was given under) to a file written before them; its labels stay, both NULL (read as given
    under today's sides), and the file ends up as a new file is."""
    path, new = tmp_path / "v10.duckdb", tmp_path / "new.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("ALTER TABLE labels DROP COLUMN pro_description")
        con.execute("ALTER TABLE labels DROP COLUMN anti_description")
        con.execute("DELETE FROM schema_version WHERE version >= 11")
        con.execute(LABEL_ROW)
    assert [m.version for m in init_schema(path)] == [m.version for m in MIGRATIONS
                                                     if m.version >= 11]
    init_schema(new)
    after, fresh = _catalog(path), _catalog(new)
    assert after["columns"] == fresh["columns"] and after["keys"] == fresh["keys"]
    with connect(path) as con:
        assert con.execute("SELECT value, pro_description, anti_description FROM labels"
                           ).fetchall() == [("pro", None, None)]


def test_a_version_11_file_gets_the_conversations_view_by_platform(tmp_path: Path) -> None:
    """Migration 12 makes the ``conversations`` view again: a conversation is named by its
    platform and its id there, as a post is. The view of a version 11 file grouped by
    conversation_id alone, so two platforms' threads sharing an id were one conversation."""
    path, new = tmp_path / "v11.duckdb", tmp_path / "new.duckdb"
    init_schema(path)
    with connect(path) as con:  # the view as migrations 1-11 made it
        con.execute("CREATE OR REPLACE VIEW conversations AS SELECT conversation_id, "
                    "any_value(topic) AS topic, count(*) AS n_interactions, avg(score) AS "
                    "mean_score, min(created_at) AS first_at, max(created_at) AS last_at "
                    "FROM interactions GROUP BY conversation_id")
        con.execute("DELETE FROM schema_version WHERE version >= 12")
        con.executemany("INSERT INTO interactions (platform, post_id, parent_id, "
                        "conversation_id, topic, created_at, score, rule) VALUES "
                        "(?, ?, 'r', 'c1', 't', now(), ?, 'x')",
                        [("reddit", "a", 10.0), ("bluesky", "a", 0.0), ("bluesky", "b", 2.0)])
        assert con.execute("SELECT count(*) FROM conversations").fetchall() == [(1,)]
    assert [m.version for m in init_schema(path)] == [m.version for m in MIGRATIONS
                                                     if m.version >= 12]
    init_schema(new)
    assert _catalog(path)["views"] == _catalog(new)["views"]
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT platform, conversation_id, n_interactions, mean_score FROM "
                           "conversations ORDER BY platform").fetchall() == [
            ("bluesky", "c1", 2, 1.0), ("reddit", "c1", 1, 10.0)]
