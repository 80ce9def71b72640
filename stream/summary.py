"""The row count of each table the stream writes: what ``polarwatch stream`` and the demo print
when a drain ends."""

from __future__ import annotations

import logging

from polarwatch.config import Config
from polarwatch.warehouse import connect, scalar

SUMMARY_TABLES = ("posts", "interactions", "topic_windows", "dead_letters", "stream_batches")
LOG = logging.getLogger(__name__)


def summarize_warehouse(cfg: Config) -> dict[str, int]:
    """Log and return the row count of each table the stream writes."""
    with connect(cfg.warehouse_path, read_only=True) as con:
        counts = {t: int(scalar(con, f"SELECT count(*) FROM {t}")) for t in SUMMARY_TABLES}
    LOG.info("rows in DuckDB " + str(cfg.warehouse_path) + ": "
             + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return counts
