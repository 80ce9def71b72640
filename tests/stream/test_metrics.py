"""The stream's progress listener (``stream/metrics.py``) against a real DuckDB file."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from polarwatch.warehouse import connect, init_schema
from stream.metrics import MetricsListener


def _progress(batch_id: int) -> SimpleNamespace:
    source = SimpleNamespace(endOffset='{"0": 5}', latestOffset='{"0": 5}')
    return SimpleNamespace(progress=SimpleNamespace(
        name="q", batchId=batch_id, numInputRows=5, inputRowsPerSecond=1.0,
        processedRowsPerSecond=2.0, durationMs={"triggerExecution": 1500}, sources=[source]))


@pytest.mark.parametrize(("created", "broker", "shown"), [
    (None, None, ""),  # every record of the batch was dead-lettered: no latency at all
    (None, 2.5, "e2e p95 2.5 s from broker"),
    (30.0, 2.5, "e2e p95 2.5 s from broker, 30 s from created_at"),
])
def test_a_batch_row_with_missing_latency_still_gets_its_metrics(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, created: float | None,
        broker: float | None, shown: str) -> None:
    path = tmp_path / "w.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("INSERT INTO stream_batches (query, batch_id, n_posts, n_dead, "
                    "n_interactions, committed_at, latency_created_p95_s, latency_broker_p95_s) "
                    "VALUES ('q@1', 3, 0, 5, 0, ?, ?, ?)", [datetime.now(UTC), created, broker])
    with caplog.at_level(logging.INFO, logger="stream.metrics"):
        MetricsListener(path, "q").onQueryProgress(_progress(3))
    with connect(path) as con:
        rows = con.execute("SELECT batch_id, input_rows FROM stream_metrics").fetchall()
    assert rows == [(3, 5)]
    line = next(r.getMessage() for r in caplog.records if "batch 3" in r.getMessage())
    assert line.endswith(shown) and ("e2e" in line) == bool(shown)
