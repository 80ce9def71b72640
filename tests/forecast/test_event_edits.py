"""Edits of the event calendar at the same time keep each other's events: `events add` read the
file, added its event and replaced the file, so two at once kept only the one that wrote last
(an audit: 10 parallel adds, all said "added", 6 to 8 kept)."""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from forecast.event_calendar import add_event
from polarwatch.events import load_events, remove_event

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 1, tzinfo=UTC)


def _fields(i: int) -> dict[str, object]:
    return {"name": f"vote {i}", "topic": "gun_control", "kind": "scheduled",
            "start": START + timedelta(days=i)}


def test_threads_adding_and_removing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    for i in range(0, 40, 2):  # the even ones exist; the odd ones are added while they go
        add_event(path, _fields(i), None)
    barrier = threading.Barrier(40)

    def edit(i: int) -> None:
        barrier.wait()
        if i % 2:
            add_event(path, _fields(i), None)
        else:
            remove_event(path, "gun_control", f"vote {i}")

    threads = [threading.Thread(target=edit, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.name for e in load_events(path)) == sorted(f"vote {i}" for i in range(1, 40, 2))


def test_parallel_events_add_commands_keep_every_event(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    procs = [subprocess.Popen(
        [sys.executable, "-m", "polarwatch.cli", "events", "--file", str(path), "add",
         f"summit {i}", "--topic", "climate_change", "--start", f"2026-04-{i + 1:02d}T10:00Z",
         "--kind", "scheduled"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(8)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
    assert sorted(e.name for e in load_events(path)) == [f"summit {i}" for i in range(8)]
