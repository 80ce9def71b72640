"""The sidebar's stream status with the stream's heartbeat (polarwatch/heartbeat.py): running
and idle, restarting, stopped cleanly, failed, gone (stale beat, or an exited pid on this
machine), a foreign host (time only), a skewed clock, and a missing or corrupt file (today's
"idle or stopped" wording, never an exception)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard.status import STALE_AFTER_SECONDS, heartbeat_note, status_line
from polarwatch.heartbeat import Heartbeat, heartbeat_path, read_heartbeat, this_host
from polarwatch.warehouse import connect, init_schema

from .test_app import run_app, sidebar_text

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HOST = this_host()
BEAT = Heartbeat(pid=os.getpid(), hostname=HOST, started_at=NOW - timedelta(hours=2),
                 beat_at=NOW - timedelta(seconds=3), state="running", every_s=10.0)
GONE = "the stream process is gone (crashed or killed) — restart it with `polarwatch stream`"


def _row(last_batch_at: datetime | None) -> pd.DataFrame:
    return pd.DataFrame([{"last_batch_at": pd.NaT if last_batch_at is None
                          else pd.Timestamp(last_batch_at), "n_batches": 9, "batch_posts": 90,
                          "batch_dead": 0, "batch_interactions": 40, "n_posts": 90,
                          "n_interactions": 40}])


def _exited_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_running_and_idle_is_said_plainly() -> None:
    summary, warning = status_line(_row(NOW - timedelta(minutes=5)), NOW, heartbeat=BEAT)
    assert summary.startswith("Stream: running, idle: no new posts for 5 min · last batch 5 min")
    assert warning is None  # idle is normal: nothing to fix
    summary, warning = status_line(_row(NOW - timedelta(seconds=4)), NOW, heartbeat=BEAT)
    assert summary.startswith("Stream: running · last batch 4 s ago") and warning is None
    # the heartbeat knows a batch newer than the (snapshot) warehouse: not idle
    fresh = replace(BEAT, last_batch_id=10, last_batch_at=NOW - timedelta(seconds=2))
    assert status_line(_row(NOW - timedelta(minutes=5)), NOW, heartbeat=fresh)[0].startswith(
        "Stream: running · last batch 5 min ago")
    # started after the last stored batch: idle since it started, not for days
    new = replace(BEAT, started_at=NOW - timedelta(minutes=3))
    summary, _ = status_line(_row(NOW - timedelta(days=2)), NOW, heartbeat=new)
    assert "running, idle: no new posts since it started 3 min ago" in summary
    summary, warning = status_line(_row(None), NOW, heartbeat=new)
    assert summary.startswith("Stream: running, idle: no new posts since it started 3 min ago · "
                              "no batch committed yet") and warning is None
    assert STALE_AFTER_SECONDS == 120  # "idle" from two minutes without a batch


def test_starting_and_restarting() -> None:
    summary, warning = status_line(_row(None), NOW, heartbeat=replace(BEAT, state="starting"))
    assert summary.startswith("Stream: starting · no batch committed yet") and warning is None
    restarting = replace(BEAT, state="restarting",
                         cause="KafkaConnectionError: Connection refused [*x*](http://e)")
    summary, warning = status_line(_row(NOW - timedelta(minutes=1)), NOW, heartbeat=restarting)
    assert summary.startswith("Stream: restarting after KafkaConnectionError\\: Connection "
                              "refused \\[\\*x\\*\\]\\(http\\:")  # the cause as text
    assert warning is not None and "restarting after a transient failure" in warning


def test_stopped_cleanly_and_failed_say_when_and_why() -> None:
    stopped = replace(BEAT, state="stopped", cause="interrupted (Ctrl-C)", pid=_exited_pid(),
                      beat_at=datetime(2026, 12, 3, 11, 40, 5, tzinfo=UTC))
    summary, warning = status_line(_row(NOW - timedelta(minutes=30)), NOW, heartbeat=stopped)
    assert summary.startswith("Stream: stopped at 2026-12-03 11:40:05 UTC · last batch 30 min")
    assert warning is not None
    assert "stopped cleanly at 2026-12-03 11:40:05 UTC (interrupted \\(Ctrl\\-C\\))" in warning
    assert "gone" not in warning and "either idle" not in warning
    failed = replace(stopped, state="failed", cause="OffsetRegressionError: went backwards")
    summary, warning = status_line(_row(NOW - timedelta(minutes=30)), NOW, heartbeat=failed)
    assert summary.startswith("Stream: stopped after an error at 2026-12-03 11:40:05 UTC")
    assert warning is not None and "OffsetRegressionError\\: went backwards" in warning
    assert "restart it with `polarwatch stream`" in warning


def test_a_stale_beat_or_an_exited_pid_means_gone() -> None:
    stale = replace(BEAT, beat_at=NOW - timedelta(minutes=7))
    summary, warning = status_line(_row(NOW - timedelta(minutes=9)), NOW, heartbeat=stale)
    assert summary.startswith("Stream: not running · last batch 9 min ago")
    assert warning is not None and warning.startswith("No heartbeat for 7 min (the last beat, at "
                                                      "2026-12-03 11:53:00 UTC, said running)")
    assert GONE in warning
    # fresh beat, but its process has exited on this machine: gone at once
    dead = replace(BEAT, pid=_exited_pid())
    summary, warning = status_line(_row(NOW - timedelta(seconds=30)), NOW, heartbeat=dead)
    assert summary.startswith("Stream: not running")
    assert warning is not None and f"(pid {dead.pid}) has exited" in warning and GONE in warning


def test_a_foreign_host_is_judged_by_time_only() -> None:
    away = replace(BEAT, pid=_exited_pid(), hostname="spark-box")
    summary, warning = status_line(_row(NOW - timedelta(minutes=5)), NOW, heartbeat=away)
    assert summary.startswith("Stream: running, idle: no new posts for 5 min") and warning is None
    late = replace(away, beat_at=NOW - timedelta(minutes=3))
    _, warning = status_line(_row(NOW - timedelta(minutes=5)), NOW, heartbeat=late)
    assert warning is not None and warning.startswith("No heartbeat for 3 min on spark\\-box")


def test_a_beat_from_a_clock_ahead_of_ours() -> None:
    # a few seconds ahead: rounding between two clocks, read as a fresh beat
    near = replace(BEAT, hostname="spark-box", beat_at=NOW + timedelta(seconds=20))
    assert status_line(_row(NOW - timedelta(seconds=5)), NOW, heartbeat=near)[1] is None
    ahead = replace(near, beat_at=NOW + timedelta(hours=3))
    summary, warning = status_line(_row(NOW - timedelta(minutes=5)), NOW, heartbeat=ahead)
    assert summary.startswith("Stream: state unknown (the clocks disagree)")
    assert warning is not None and "3 h ahead of this machine's clock" in warning
    assert "running" not in summary and "gone" not in warning


def test_no_heartbeat_keeps_the_idle_or_stopped_wording(tmp_path: Path) -> None:
    warehouse = tmp_path / "pw.duckdb"
    for text in (None, "", BEAT.to_json()[:40], "{\"format\": 1}", "[1, 2]", "\x00" * 10):
        if text is not None:
            heartbeat_path(warehouse).write_text(text)
        heartbeat = read_heartbeat(warehouse)
        assert heartbeat is None, text
        summary, warning = status_line(_row(NOW - timedelta(minutes=12)), NOW,
                                       heartbeat=heartbeat)
        assert summary.startswith("Stream: last batch 12 min ago")
        assert warning is not None and "either idle" in warning and "or stopped" in warning


def test_heartbeat_note_defaults_to_now_and_this_host() -> None:
    beat = replace(BEAT, beat_at=datetime.now(UTC), started_at=datetime.now(UTC))
    assert heartbeat_note(beat) == ("running", None)


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A warehouse whose last batch was committed 12 minutes ago."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.execute("INSERT INTO stream_batches (query, batch_id, n_posts, n_dead, "
                    "n_interactions, committed_at) VALUES ('posts', 1, 5, 0, 2, ?)",
                    [datetime.now(UTC) - timedelta(minutes=12)])
    return path


def test_the_sidebar_reads_the_heartbeat_file(monkeypatch: pytest.MonkeyPatch, stored: Path,
                                              tmp_path: Path) -> None:
    events = tmp_path / "events.toml"
    now = datetime.now(UTC)
    running = replace(BEAT, started_at=now - timedelta(hours=1), beat_at=now)
    heartbeat_path(stored).write_text(running.to_json())
    at = run_app(monkeypatch, stored, events)
    assert not at.exception
    status = sidebar_text(at)
    assert "running, idle: no new posts for 12 min" in status and "either idle" not in status

    heartbeat_path(stored).write_text(replace(running, beat_at=now - timedelta(minutes=4))
                                      .to_json())
    at = run_app(monkeypatch, stored, events)
    assert "No heartbeat for 4 min" in sidebar_text(at) and GONE in sidebar_text(at)

    heartbeat_path(stored).write_text(running.to_json()[:-30])  # cut short: no heartbeat
    at = run_app(monkeypatch, stored, events)
    assert not at.exception and "either idle" in sidebar_text(at)

    # no warehouse yet, but a stream starting up: the sidebar says so
    missing = tmp_path / "later.duckdb"
    heartbeat_path(missing).write_text(replace(running, state="starting").to_json())
    at = run_app(monkeypatch, missing, events)
    assert not at.exception and "Stream: starting" in sidebar_text(at)
