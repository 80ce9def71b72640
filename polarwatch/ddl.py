"""Every warehouse table's DDL, generated from the typed contracts (:mod:`polarwatch.records`,
:mod:`polarwatch.tables`): the only place a ``CREATE TABLE`` is written. :mod:`polarwatch.warehouse`
creates them and :mod:`polarwatch.migrations` brings older files to them."""

from __future__ import annotations

from collections.abc import Sequence

from polarwatch.records import Interaction, Labels, Post
from polarwatch.schemas import duckdb_columns
from polarwatch.tables import (
    AlertDelivery,
    AlertState,
    AnalystLabel,
    DeadLetter,
    ForecastRow,
    KafkaProvenance,
    LabelSuggestion,
    Relabelling,
    SchemaVersion,
    StreamBatch,
    StreamMetric,
    TopicWindow,
)


def _ddl(table: str, columns: list[tuple[str, str]], primary_key: Sequence[str]) -> str:
    cols = ",\n  ".join(f'"{name}" {typ}' for name, typ in columns)
    key = ", ".join(f'"{name}"' for name in primary_key)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n  PRIMARY KEY ({key})\n)"


KAFKA_COLUMNS = duckdb_columns(KafkaProvenance)
RELABEL_COLUMNS = duckdb_columns(Relabelling)


def post_columns() -> list[tuple[str, str]]:
    """What the stream stores of a post: Post fields + Labels fields (minus the post_id link) +
    Kafka provenance. The `posts` table adds :data:`RELABEL_COLUMNS` (``polarwatch relabel``)."""
    labels = [(n, t) for n, t in duckdb_columns(Labels) if n != "post_id"]
    return duckdb_columns(Post) + labels + KAFKA_COLUMNS


# The contract of each table that is one dataclass (polarwatch/tables.py); its PRIMARY_KEY.
CONTRACTS: dict[str, type] = {
    "schema_version": SchemaVersion, "topic_windows": TopicWindow,
    "stream_batches": StreamBatch, "stream_metrics": StreamMetric, "dead_letters": DeadLetter,
    "forecasts": ForecastRow, "alert_state": AlertState, "alert_deliveries": AlertDelivery,
    "labels": AnalystLabel, "label_suggestions": LabelSuggestion,
}
# Every table: (columns, primary key). The only place DDL is generated.
SCHEMA: dict[str, tuple[list[tuple[str, str]], tuple[str, ...]]] = {
    # a post is named by its platform and its id there (a Reddit comment and a Bluesky post may
    # share an id); a reply pairs only with a parent of its own platform
    "posts": (post_columns() + RELABEL_COLUMNS, ("platform", "id")),
    "interactions": (duckdb_columns(Interaction), ("platform", "post_id")),
    **{name: (duckdb_columns(c), c.PRIMARY_KEY) for name, c in CONTRACTS.items()},  # type: ignore[attr-defined]
}
TABLES: dict[str, str] = {name: _ddl(name, cols, key) for name, (cols, key) in SCHEMA.items()}

# A conversation's score is the mean of its interactions (the paper); extreme when > 7.
# A conversation is named by its platform and its id there, as a post is (two platforms'
# threads may share an id), as stream/windows.py counts them. polarwatch's readers select from
# this query itself (polarwatch.reads.CONVERSATIONS), not from the view: a read-only reader of a
# file made before migration 12 finds the view without its platform column.
CONVERSATIONS_SQL = """
        SELECT platform, conversation_id, any_value(topic) AS topic, count(*) AS n_interactions,
               avg(score) AS mean_score, min(created_at) AS first_at, max(created_at) AS last_at
        FROM interactions GROUP BY platform, conversation_id"""
VIEWS: dict[str, str] = {
    "conversations": f"CREATE OR REPLACE VIEW conversations AS{CONVERSATIONS_SQL}",
}
