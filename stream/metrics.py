"""Per-batch stream metrics: a StreamingQueryListener that stores Spark's progress in DuckDB.

For each micro-batch: input rows, input and processed rows/s, batch duration, consumer lag per
Kafka partition (latest offset − batch end offset, from the reader's ``reportLatestOffset``), and
— joined from ``stream_batches``, which the sink fills in the batch's own transaction — end-to-end
latency from ``created_at`` and from the broker timestamp. One progress line is printed per batch.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql.streaming import StreamingQueryListener

from polarwatch.warehouse import connect

LOG = logging.getLogger(__name__)


def consumer_lag(end_offset: str | None, latest_offset: str | None) -> dict[str, int]:
    """Per-partition lag from the JSON offsets Spark reports ({"partition": next offset})."""
    if not end_offset or not latest_offset:
        return {}
    end, latest = json.loads(end_offset), json.loads(latest_offset)
    return {p: max(int(latest[p]) - int(end.get(p, 0)), 0) for p in latest}


class MetricsListener(StreamingQueryListener):
    """Writes one ``stream_metrics`` row per micro-batch and prints a progress line."""

    def __init__(self, path: str | Path, query_name: str) -> None:
        self.path, self.query_name = Path(path), query_name

    def onQueryStarted(self, event: Any) -> None:
        pass

    def onQueryIdle(self, event: Any) -> None:
        pass

    def onQueryTerminated(self, event: Any) -> None:
        pass

    def onQueryProgress(self, event: Any) -> None:
        p = event.progress
        if p.name != self.query_name or p.numInputRows == 0:
            return
        src = p.sources[0] if p.sources else None
        lag = consumer_lag(src.endOffset if src else None, src.latestOffset if src else None)
        batch_ms = int(p.durationMs.get("triggerExecution", 0))
        row = [self.query_name, int(p.batchId), int(p.numInputRows),
               float(p.inputRowsPerSecond or 0.0), float(p.processedRowsPerSecond or 0.0),
               batch_ms, sum(lag.values()), json.dumps(lag), datetime.now(UTC)]
        with connect(self.path) as con:
            con.execute("INSERT OR REPLACE INTO stream_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row)
            lat = con.execute(
                "SELECT latency_created_p95_s, latency_broker_p95_s FROM stream_batches "
                "WHERE split_part(query, '@', 1) = ? AND batch_id = ? ORDER BY committed_at DESC "
                "LIMIT 1", [self.query_name, int(p.batchId)]).fetchall()
        latency = latency_note(*lat[0]) if lat else ""
        parts = ", ".join(f"p{k} {v:,}" for k, v in sorted(lag.items()))
        LOG.info(f"batch {p.batchId}: {p.numInputRows:,} rows in {batch_ms / 1000:.1f} s "
                 f"({p.processedRowsPerSecond or 0:,.0f} rows/s), lag "
                 f"{sum(lag.values()):,} ({parts}){latency}")


def latency_note(created_p95: float | None, broker_p95: float | None) -> str:
    """", e2e p95 …" for the progress line; a batch that stored no post (every record
    dead-lettered) has no latency, and either figure may be missing."""
    parts = ([f"{broker_p95:.1f} s from broker"] if broker_p95 is not None else []) + \
        ([f"{created_p95:,.0f} s from created_at"] if created_p95 is not None else [])
    return f", e2e p95 {', '.join(parts)}" if parts else ""
