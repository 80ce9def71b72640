"""Versioned migrations of the DuckDB warehouse: each brings a file written by an older
polarwatch one step nearer today's contracts (:mod:`polarwatch.ddl`).
:func:`polarwatch.warehouse.init_schema` applies the pending ones."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polarwatch.ddl import SCHEMA, TABLES, VIEWS

# Versioned migrations. A file's version is max(version) in `schema_version` (0: a file from
# before versioning, or a new file). init_schema applies every newer migration, in order, in one
# transaction. Migration 1 creates what is missing from today's contracts, so the later ones
# must be idempotent (ADD COLUMN IF NOT EXISTS, updates that only touch old rows): on a new
# file they find their work done.


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Any], None]  # runs on the connection, inside init_schema's transaction


# The views as migrations 1-11 made them (before 12: interactions had no platform column until
# migration 4, so today's views cannot be made over an older file); migration 12 makes VIEWS.
VIEWS_BEFORE_12 = {"conversations": """
        CREATE OR REPLACE VIEW conversations AS
        SELECT conversation_id, any_value(topic) AS topic, count(*) AS n_interactions,
               avg(score) AS mean_score, min(created_at) AS first_at, max(created_at) AS last_at
        FROM interactions GROUP BY conversation_id"""}


def _create_views(views: dict[str, str]) -> Callable[[Any], None]:
    def apply(con: Any) -> None:  # CREATE OR REPLACE: made again over the tables there are now
        for view in views.values():
            con.execute(view)
    return apply


_create_old_views = _create_views(VIEWS_BEFORE_12)


def _create_tables_and_views(con: Any) -> None:
    for ddl in TABLES.values():
        con.execute(ddl)
    _create_old_views(con)


def _add_columns(table: str, *names: str) -> Callable[[Any], None]:
    """A migration step adding `names` to `table` with their types from the contract."""
    types = dict(SCHEMA[table][0])

    def apply(con: Any) -> None:
        for name in names:
            con.execute(f'ALTER TABLE {table} ADD COLUMN IF NOT EXISTS "{name}" {types[name]}')
    return apply


def _create_table(table: str) -> Callable[[Any], None]:
    """A migration step creating `table` from its contract (a no-op when it exists)."""
    def apply(con: Any) -> None:
        con.execute(TABLES[table])
    return apply


def _primary_key(con: Any, table: str) -> list[str]:
    rows = con.execute("SELECT constraint_column_names FROM duckdb_constraints() WHERE "
                       "table_name = ? AND constraint_type = 'PRIMARY KEY'", [table]).fetchall()
    return list(rows[0][0]) if rows else []


def _rebuild(con: Any, table: str, select: str) -> None:
    """Replace `table` by one with today's DDL (DuckDB cannot change a primary key in place),
    filled from `select` (by column name)."""
    con.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    con.execute(TABLES[table])
    con.execute(f"INSERT INTO {table} BY NAME {select.format(old=f'{table}_old')}")
    con.execute(f"DROP TABLE {table}_old")


def _key_by_platform(con: Any) -> None:
    if _primary_key(con, "interactions") == ["post_id"]:  # before: ids were global
        _rebuild(con, "interactions", "SELECT i.*, coalesce(p.platform, '') AS platform "
                                      "FROM {old} i LEFT JOIN posts p ON p.id = i.post_id")
    if _primary_key(con, "posts") == ["id"]:
        _rebuild(con, "posts", "SELECT * FROM {old}")
    _create_old_views(con)  # views name the tables they read: made again over them


def _dead_letter_provenance(con: Any) -> None:
    _add_columns("dead_letters", "source", "raw_size", "rejected_at")(con)
    # before ingest dead-lettered anything, every stored dead letter came from the stream
    con.execute("UPDATE dead_letters SET source = 'stream' WHERE source IS NULL")


def _roots_without_parent(con: Any) -> None:  # (stored as given before the root rule)
    con.execute("UPDATE posts SET parent_id = NULL WHERE parent_id = id OR parent_id = ''")


def _dead_letter_generations(con: Any) -> None:
    if "topic_generation" not in _primary_key(con, "dead_letters"):  # every older row: life 0
        _rebuild(con, "dead_letters", "SELECT * FROM {old}")
    _create_old_views(con)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "every missing table and view, created from the contracts (a file from before "
                 "versioning keeps its tables and rows)", _create_tables_and_views),
    Migration(2, "dead_letters: source, raw_size, rejected_at (source 'stream' on older rows)",
              _dead_letter_provenance),
    Migration(3, "forecasts: anomaly_score, explanation, episode, episode_event (forecast/run.py "
                 "used to add them itself)",
              _add_columns("forecasts", "anomaly_score", "explanation", "episode",
                           "episode_event")),
    Migration(4, "posts keyed by (platform, id), interactions by (platform, post_id) with a "
                 "platform column (ids are unique per platform only)", _key_by_platform),
    Migration(5, "labels: the analysts' labels from the dashboard's Label page",
              _create_table("labels")),
    Migration(6, "posts: labelled_by, relabelled_at (which backend and head `polarwatch relabel` "
                 "labelled a stored post with, and when)",
              _add_columns("posts", "labelled_by", "relabelled_at")),
    Migration(7, "label_suggestions: the LLM's suggestions on the Label page (never an "
                 "analyst's label)", _create_table("label_suggestions")),
    Migration(8, "dead_letters: dead_letter_key (ingest's identity of a dead letter: one sent "
                 "again is stored once; NULL on older rows)",
              _add_columns("dead_letters", "dead_letter_key")),
    Migration(9, "posts: a parent_id that is empty or the post's own id is NULL (a root, as "
                 "polarwatch.validation.parent_of stores it now; it counted as an orphan reply)",
              _roots_without_parent),
    Migration(10, "dead_letters: topic_generation in the key (a dead-letter topic begun again "
                  "after a memory broker's restart reuses its offsets; older rows are 0)",
              _dead_letter_generations),
    Migration(11, "labels: pro_description, anti_description (the topic's sides a stance label "
                  "was given under: a retrain flips labels given under swapped sides; NULL on "
                  "older rows)", _add_columns("labels", "pro_description", "anti_description")),
    Migration(12, "conversations view: one row per (platform, conversation_id), with a platform "
                  "column (two platforms' threads sharing an id were one conversation)",
              _create_views(VIEWS)),
)
LATEST_VERSION = MIGRATIONS[-1].version
