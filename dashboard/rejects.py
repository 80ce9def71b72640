"""Read-side queries of the Dead letters page and the sidebar: the ``dead_letters`` table.

A reason is one line written where a record was rejected, and most start with what rejected
it, up to a ':' (``created_at: …``, ``text: …``, ``record: …``, ``malformed JSON: …``: the
field checks of ``polarwatch/validation.py``, the mapping of ``ingest/sources/mapping.py``,
``stream/resends.py``'s ``post id already stored with different content: …``). A few carry
record content or sizes before any ':' (``ingest``'s oversize line, ``stream/udfs.py``'s
unknown topic, ``stream/record_batches.py``'s offsets): :data:`REASON_KIND_SQL` names those by
their check, so a kind is the field or check that rejected the record, never a value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.results import read_frame
from polarwatch.warehouse import connect, missing_columns

DEAD_LETTER_LIMIT = 500  # rows the dead-letters page shows at most (newest first)
# Reasons whose text before the first ':' is not a field or check name (or that have no ':'),
# as (kind, SQL condition on `reason`), checked in order.
_NAMED_KINDS = (
    ("no reason", "reason IS NULL OR trim(reason) = ''"),
    ("oversize line", "reason LIKE 'line of % bytes, more than %'"),  # ingest/sources/files.py
    ("unknown topic", "reason LIKE 'topic % is not in topics.toml%'"),  # stream/udfs.py
    ("unreadable batch", "regexp_matches(reason, '^offsets [0-9]+\\.\\.[0-9]+: ')"),
    ("not a JSON object", "reason LIKE 'expected a JSON object, got %'"),
    ("record cannot be encoded", "reason LIKE 'record cannot be encoded%'"),
    ("no reason header", "reason LIKE 'dead letter without a reason header%'"),
)
# Otherwise the text before the first ':' when it reads like a field or check name (letters,
# digits, spaces, '_', '.', '(', ')', '-'; at most 60 characters), else "other".
_NAME_BEFORE_COLON = "^[A-Za-z_][A-Za-z0-9_ .()-]{0,59}:"
REASON_KIND_SQL = ("CASE " + " ".join(f"WHEN {cond} THEN '{kind}'" for kind, cond in _NAMED_KINDS)
                   + f" WHEN regexp_matches(reason, '{_NAME_BEFORE_COLON}') "
                     "THEN split_part(reason, ':', 1) ELSE 'other' END")


def dead_letters_missing(path: str | Path) -> list[str]:
    """Columns of the ``dead_letters`` contract the file lacks (all of them when it has no such
    table): a file no stream or forecast has upgraded yet. Read-only: the dashboard never
    migrates a file, it says so."""
    with connect(path, read_only=True) as con:
        return missing_columns(con, "dead_letters")


def dead_letter_counts(path: str | Path) -> dict[str, int]:
    """Rejected records per source (ingest | stream): every row of ``dead_letters``."""
    df = read_frame(path, "SELECT coalesce(source, 'stream') AS source, count(*) AS n "
                          "FROM dead_letters GROUP BY ALL")
    return {str(s): int(n) for s, n in zip(df["source"], df["n"], strict=True)}


def dead_letter_summary(path: str | Path) -> pd.DataFrame:
    """Rejected records per source and reason kind (:data:`REASON_KIND_SQL`).

    Columns: source (ingest | stream), kind, n, first_at, last_at. Ordered by n descending.
    """
    return read_frame(path, f"""
        SELECT coalesce(source, 'stream') AS source, {REASON_KIND_SQL} AS kind,
               count(*) AS n, min(coalesce(rejected_at, seen_at)) AS first_at,
               max(coalesce(rejected_at, seen_at)) AS last_at
        FROM dead_letters GROUP BY ALL ORDER BY n DESC, source, kind""")


def dead_letters(path: str | Path, source: str | None = None, kind: str | None = None,
                 contains: str | None = None, since: Any = None, until: Any = None,
                 limit: int = DEAD_LETTER_LIMIT) -> pd.DataFrame:
    """Rejected records, newest first, filtered by source, reason kind (see
    :func:`dead_letter_summary`), a substring of the reason (case-insensitive) and the time
    they were rejected in [since, until) (None leaves a filter off).

    Columns: rejected_at, source, reason, source_topic, kafka_partition, kafka_offset,
    raw_size, raw (the first 2,000 characters of the stored raw bytes), seen_at.
    """
    return read_frame(path, f"""
        SELECT coalesce(rejected_at, seen_at) AS rejected_at,
               coalesce(source, 'stream') AS source, reason, source_topic, kafka_partition,
               kafka_offset, raw_size, left(raw, 2000) AS raw, seen_at
        FROM dead_letters
        WHERE (? IS NULL OR coalesce(source, 'stream') = ?)
          AND (? IS NULL OR {REASON_KIND_SQL} = ?)
          AND (? IS NULL OR contains(lower(reason), lower(?)))
          AND (? IS NULL OR coalesce(rejected_at, seen_at) >= ?)
          AND (? IS NULL OR coalesce(rejected_at, seen_at) < ?)
        ORDER BY rejected_at DESC, source_topic, kafka_partition, kafka_offset
        LIMIT ?""", [source, source, kind, kind, contains, contains, since, since, until, until,
                     limit])
