"""The heartbeat contract (polarwatch/heartbeat.py): the file name, the JSON both sides share,
a parser that turns anything else into "no heartbeat" without raising, and what a beat says at a
given moment (stopped, failed, stale, from a skewed clock, from a process that has exited)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from polarwatch.heartbeat import (
    MAX_BYTES,
    SKEW_TOLERANCE_S,
    Heartbeat,
    heartbeat_path,
    judge,
    parse_heartbeat,
    pid_alive,
    read_heartbeat,
    this_host,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
BEAT = Heartbeat(pid=os.getpid(), hostname=this_host(), started_at=NOW - timedelta(hours=1),
                 beat_at=NOW - timedelta(seconds=4), state="running", every_s=10.0,
                 last_batch_id=41, last_batch_at=NOW - timedelta(minutes=5))


def _exited_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_file_sits_beside_the_warehouse() -> None:
    assert heartbeat_path(Path("/data/pw.duckdb")) == Path("/data/pw.duckdb.stream-heartbeat.json")
    assert heartbeat_path("rel/x.duckdb") == Path("rel/x.duckdb.stream-heartbeat.json")


def test_round_trip_keeps_every_field_in_utc() -> None:
    text = BEAT.to_json()
    data = json.loads(text)
    assert data["format"] == 1 and data["beat_at"].endswith("+00:00")
    assert parse_heartbeat(text) == BEAT
    # a writer in another zone: the same instant, read back in UTC
    india = timezone(timedelta(hours=5, minutes=30))
    shifted = text.replace(data["beat_at"], BEAT.beat_at.astimezone(india).isoformat())
    assert "+05:30" in shifted and parse_heartbeat(shifted) == BEAT
    read = parse_heartbeat(shifted)
    assert read is not None and read.beat_at.utcoffset() == timedelta(0)  # shown as UTC


@pytest.mark.parametrize("change", [
    {"format": 2}, {"pid": 0}, {"pid": -1}, {"pid": True}, {"pid": "12"}, {"hostname": ""},
    {"hostname": 7}, {"state": "dancing"}, {"cause": 3}, {"every_s": 0}, {"every_s": "10"},
    {"every_s": True}, {"beat_at": "2026-12-03T12:00:00"},  # no zone: whose clock?
    {"beat_at": "yesterday"}, {"started_at": None}, {"last_batch_id": -1},
    {"last_batch_at": 5},
])
def test_a_wrong_field_is_no_heartbeat(change: dict[str, object]) -> None:
    data = {**json.loads(BEAT.to_json()), **change}
    assert parse_heartbeat(json.dumps(data)) is None


def test_missing_fields_non_objects_and_every_truncation_are_no_heartbeat() -> None:
    text = BEAT.to_json()
    for cut in range(len(text) - 2):  # a reader that catches a half-written file (no os.replace)
        assert parse_heartbeat(text[:cut]) is None, cut
    for key in ("pid", "hostname", "started_at", "beat_at", "state"):
        data = json.loads(text)
        del data[key]
        assert parse_heartbeat(json.dumps(data)) is None, key
    for junk in ("[]", "null", "1e999", "\"x\"", "{" * 100_000, b"\xff\xfe\x00"):
        assert parse_heartbeat(junk) is None


def test_read_takes_only_a_regular_file_of_sane_size(tmp_path: Path) -> None:
    warehouse = tmp_path / "pw.duckdb"
    assert read_heartbeat(warehouse) is None  # no file: an older stream, or none
    heartbeat_path(warehouse).write_text(BEAT.to_json())
    assert read_heartbeat(warehouse) == BEAT
    heartbeat_path(warehouse).write_text(BEAT.to_json() + " " * MAX_BYTES)
    assert read_heartbeat(warehouse) is None
    heartbeat_path(warehouse).unlink()
    heartbeat_path(warehouse).mkdir()
    assert read_heartbeat(warehouse) is None
    heartbeat_path(warehouse).rmdir()
    os.mkfifo(heartbeat_path(warehouse))  # would block a plain open() until a writer came
    done: list[Heartbeat | None] = []
    reader = threading.Thread(target=lambda: done.append(read_heartbeat(warehouse)), daemon=True)
    reader.start()
    reader.join(5)
    assert done == [None]


def test_pid_alive_on_real_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(_exited_pid())
    assert not pid_alive(0) and not pid_alive(-1)  # process groups, never "alive"
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])  # exited, not reaped yet
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while pid_alive(zombie.pid):
            assert datetime.now(UTC) < deadline, "an exited child still counts as running"
            time.sleep(0.02)
    finally:
        zombie.wait()


def test_judge_fresh_stale_ended_and_skewed() -> None:
    assert judge(BEAT, NOW) == "running"
    assert judge(replace(BEAT, state="restarting", cause="x"), NOW) == "restarting"
    late = BEAT.beat_at + timedelta(seconds=BEAT.stale_after() + 1)
    assert judge(BEAT, late) == "stale"
    assert judge(BEAT, BEAT.beat_at + timedelta(seconds=BEAT.stale_after() - 1)) == "running"
    # a clean end is believed however old it is, and whatever the clocks say
    for state in ("stopped", "failed"):
        ended = replace(BEAT, state=state, pid=_exited_pid())
        assert judge(ended, NOW + timedelta(days=3)) == state
        assert judge(ended, NOW - timedelta(days=3)) == state
    # dated ahead of our clock: a little is rounding, a lot is a clock that disagrees
    assert judge(replace(BEAT, beat_at=NOW + timedelta(seconds=5)), NOW) == "running"
    ahead = NOW + timedelta(seconds=SKEW_TOLERANCE_S + 1)
    assert judge(replace(BEAT, beat_at=ahead), NOW) == "skewed"
    # the interval the beat announces sets how late it may be
    slow = replace(BEAT, every_s=120.0, beat_at=NOW - timedelta(minutes=5))
    assert judge(slow, NOW) == "running" and judge(replace(slow, every_s=10.0), NOW) == "stale"


def test_the_pid_is_judged_only_on_the_machine_that_wrote_it() -> None:
    gone = replace(BEAT, pid=_exited_pid())
    assert judge(gone, NOW) == "pid_gone"
    assert judge(gone, NOW, host=this_host()) == "pid_gone"
    elsewhere = replace(gone, hostname=this_host() + "-other")
    assert judge(elsewhere, NOW) == "running"  # that pid means nothing here: time only
    assert judge(elsewhere, NOW + timedelta(minutes=5)) == "stale"
