"""A post id that comes again: the first version is kept; one with other content is a dead letter.

A post is named by its platform and id (the key of ``posts``). When an id comes again — in the
same micro-batch or after it was stored — the version seen first stays:

- across micro-batches, the stored one (batches commit in order);
- within one, the earliest by Kafka timestamp, then partition, then offset (Spark hands the sink
  a batch partition by partition, so row order says nothing about which came first).

A later copy whose content (:data:`CONTENT`: every field of the record contract except the key
and ``schema_version``, compared after the contract's normalisation, timestamps as instants)
equals the kept version is a plain duplicate and is dropped. A copy whose content differs is not
dropped silently: it becomes a dead letter at its own topic, partition and offset, with a reason
naming the fields that differ and where the kept version came from, and the post as the stream
parsed it as ``raw``. A copy of the very Kafka record a stored post was made from (same
partition and offset: a new checkpoint reading the topic again) is a plain duplicate whatever
its content.

It runs in the sink's batch transaction, before the insert: a replayed batch is skipped by its
marker before it gets here, so no row is stored or dead-lettered twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from polarwatch.ddl import post_columns
from polarwatch.records import POST_CONTENT
from polarwatch.validation import cut_reason, truncate_raw
from stream.dead_letters import COLUMNS as DEAD_LETTER_COLUMNS

KEY = ("platform", "id")
CONTENT = POST_CONTENT  # lang too: nothing a producer sends is lost
RAW_FIELDS = (*KEY, *CONTENT, "schema_version")  # a dead-lettered copy as `raw` (JSON)
ARRIVAL = ("broker_ts", "kafka_partition", "kafka_offset")  # which copy came first, in a batch
REASON = "post id already stored with different content"  # the dead letter's kind (up to ':')


def _verdicts_sql() -> str:
    """Per incoming row (``arrival``): ``is_new``, and ``differs`` (the content fields that
    differ from the kept version, '' for none) with the kept version's partition and offset."""
    content = ", ".join(f'"{c}"' for c in CONTENT)
    differs = ", ".join(f"""CASE WHEN b."{c}" IS DISTINCT FROM k."{c}" THEN '{c}' END"""
                        for c in CONTENT)
    return f"""
        CREATE OR REPLACE TEMP TABLE batch_verdicts AS
        WITH stored AS (
            SELECT platform, id, {content}, kafka_partition, kafka_offset, TRUE AS stored,
                   NULL::BIGINT AS arrival
            FROM posts p
            WHERE EXISTS (SELECT 1 FROM incoming b WHERE b.platform = p.platform AND b.id = p.id)),
        firsts AS (
            SELECT platform, id, {content}, kafka_partition, kafka_offset, FALSE AS stored, arrival
            FROM incoming b
            WHERE NOT EXISTS (SELECT 1 FROM stored s
                              WHERE s.platform = b.platform AND s.id = b.id)
            QUALIFY row_number() OVER (PARTITION BY platform, id ORDER BY arrival) = 1),
        kept AS (SELECT * FROM stored UNION ALL BY NAME SELECT * FROM firsts)
        SELECT b.arrival, NOT k.stored AND b.arrival = k.arrival AS is_new,
               CASE WHEN k.stored AND b.kafka_partition = k.kafka_partition
                         AND b.kafka_offset = k.kafka_offset THEN ''
                    ELSE concat_ws(', ', {differs}) END AS differs,
               k.kafka_partition AS kept_partition, k.kafka_offset AS kept_offset
        FROM incoming b JOIN kept k USING (platform, id)"""


def split_resends(con: Any, rows: pd.DataFrame, source_topic: str, now: datetime
                  ) -> pd.DataFrame:
    """Sort a batch's valid `rows` (the post columns, ``broker_ts`` optional) into new posts,
    duplicates and conflicting re-sends. Creates the temp tables ``post_batch`` (the new posts,
    in arrival order, with the columns of ``posts``) and ``new_post_ids``; returns the conflicts
    as dead-letter rows (:data:`stream.dead_letters.COLUMNS`). The rest are duplicates."""
    order = [c for c in ARRIVAL if c in rows]
    rows = rows.sort_values(order, kind="stable", na_position="last").reset_index(drop=True)
    cols = post_columns()
    typed = ", ".join(f'CAST("{c}" AS {t.removesuffix(" NOT NULL")}) AS "{c}"' for c, t in cols)
    con.register("incoming_rows", rows.assign(arrival=range(len(rows)))[[*(c for c, _ in cols),
                                                                         "arrival"]])
    con.execute(f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT {typed}, arrival::BIGINT "
                f"AS arrival FROM incoming_rows")
    con.unregister("incoming_rows")
    con.execute(_verdicts_sql())
    col_list = ", ".join(f'"{c}"' for c, _ in cols)
    con.execute(f"CREATE OR REPLACE TEMP TABLE post_batch AS SELECT {col_list} FROM incoming "
                f"WHERE arrival IN (SELECT arrival FROM batch_verdicts WHERE is_new) "
                f"ORDER BY arrival")
    con.execute("CREATE OR REPLACE TEMP TABLE new_post_ids AS SELECT platform, id FROM post_batch")
    fields = ", ".join(f'b."{c}"' for c in (*RAW_FIELDS, "kafka_partition", "kafka_offset"))
    found = con.execute(f"SELECT {fields}, v.differs, v.kept_partition, v.kept_offset "
                        f"FROM batch_verdicts v JOIN incoming b USING (arrival) "
                        f"WHERE v.differs <> '' ORDER BY v.arrival").fetchall()
    con.execute("DROP TABLE batch_verdicts")
    con.execute("DROP TABLE incoming")
    return pd.DataFrame([_dead_letter(row, source_topic, now) for row in found],
                        columns=DEAD_LETTER_COLUMNS)


def _dead_letter(found: tuple[Any, ...], source_topic: str, now: datetime) -> dict[str, Any]:
    """The dead-letter row of a re-sent id with other content, from a row of RAW_FIELDS, its
    partition and offset, the fields that differ and the kept version's partition and offset."""
    post = dict(zip(RAW_FIELDS, found, strict=False))
    partition, offset, differs, kept_partition, kept_offset = found[len(RAW_FIELDS):]
    kept = ("the first version is kept" if kept_partition is None or kept_offset is None else
            f"the first version (partition {kept_partition}, offset {kept_offset}) is kept")
    reason = (f"{REASON}: id {post['id'][:80]!r} (platform {post['platform'][:40]!r}) "
              f"differs in {differs}; {kept}")
    post["created_at"] = post["created_at"].astimezone(UTC).isoformat()
    raw, size = truncate_raw(json.dumps(post, ensure_ascii=False).encode("utf-8",
                                                                         "surrogatepass"))
    return {"source_topic": source_topic, "kafka_partition": partition, "kafka_offset": offset,
            "reason": cut_reason(reason), "raw": raw.decode("utf-8", "ignore"), "seen_at": now,
            "source": "stream", "raw_size": size, "rejected_at": now}
