"""`polarwatch stream`'s closing summary says when the run stored late posts: topic_windows does
not count them, which an unsorted backfill turns into windows for a seventh of its posts (an
audit) with nothing said."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from polarwatch.config import load_config
from stream.sink import DuckDBSink
from stream.summary import summarize_warehouse
from tests.polarwatch.test_warehouse import _post_row

REPO = Path(__file__).resolve().parents[2]
NEWEST = datetime(2026, 5, 20, tzinfo=UTC)


def summary_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The summary's own warnings: a Kafka client left by an earlier test in the same worker may
    log "No node available" into this test's capture (seen in CI)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "stream.summary" and r.levelno == logging.WARNING]


def test_a_run_that_stored_late_posts_says_so_and_how_to_count_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(REPO / "polarwatch.toml",
                      env={"POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "w.duckdb")})
    sink = DuckDBSink(cfg.warehouse_path, "q", "posts")
    sink.write(pd.DataFrame([_post_row("new", NEWEST)]), 0)  # an earlier run
    began = datetime.now(UTC)
    # this run: a post from a week before (late: the watermark is a day) and one on time
    sink.write(pd.DataFrame([_post_row("old", NEWEST - timedelta(days=7)),
                             _post_row("now", NEWEST - timedelta(hours=1))]), 1)
    with caplog.at_level(logging.INFO, logger="stream.summary"):
        counts = summarize_warehouse(cfg, since=began)
    assert counts["posts"] == 3
    late = summary_warnings(caplog)
    assert len(late) == 1 and late[0].startswith("1 of the 2 posts this run stored were late")
    assert "polarwatch relabel --since T --until T" in late[0]

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="stream.summary"):
        summarize_warehouse(cfg, since=datetime.now(UTC))  # a run that stored nothing late
    assert not summary_warnings(caplog)
