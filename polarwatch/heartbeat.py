"""The stream's heartbeat: a small JSON file beside the warehouse that a running ``polarwatch
stream`` rewrites every few seconds, idle or not, so a reader can tell a running-but-idle stream
from one that stopped or died.

An idle stream commits nothing to DuckDB, so the warehouse alone cannot say whether its writer
still runs; and the heartbeat must not go into DuckDB either (while a process holds the file
read-write, no other process can open it at all: FACTS.md). So ``stream/heartbeat.py`` writes
``<warehouse>.stream-heartbeat.json`` atomically (a temporary file, then ``os.replace``) and the
dashboard reads it (``dashboard/common.py``). This module is what both share: the file name, the
fields, their JSON, the one parser, and :func:`judge` (what a beat says at a given moment).

The fields: ``format`` (1), ``pid`` and ``hostname`` of the process, ``started_at`` and
``beat_at`` (UTC ISO 8601), ``state`` (:data:`STATES`), ``cause`` (why it is restarting, why it
stopped or failed), ``every_s`` (the beat interval, so a reader knows when a beat is late) and
``last_batch_id`` / ``last_batch_at`` (the last micro-batch this process finished). A clean stop
writes ``state = "stopped"`` with ``beat_at`` the time of the stop; a ``kill -9`` leaves the
last beat as it was, and it grows stale.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import stat
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT = 1
SUFFIX = ".stream-heartbeat.json"
BEAT_EVERY_S = 10.0  # how often a running stream rewrites the file
# A beat older than this many intervals (plus a margin for a loaded machine) means the process
# is gone: the writer is a daemon thread of the driver, which one slow micro-batch does not stop
STALE_BEATS, STALE_MARGIN_S = 3, 15.0
# A beat dated further ahead than this is from a clock that disagrees with ours: its age says
# nothing (a small lead is rounding between two machines' clocks, read as "just now")
SKEW_TOLERANCE_S = 60.0
MAX_BYTES = 64 * 1024  # a heartbeat is ~400 bytes; anything far larger is not one
MAX_CAUSE = 300  # characters of a cause kept (as stream.supervise.cause cuts them)
STATES = ("starting", "running", "restarting", "stopped", "failed")
ENDED = ("stopped", "failed")  # the process wrote its last beat on the way out


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pid: int
    hostname: str
    started_at: datetime
    beat_at: datetime
    state: str  # one of STATES
    cause: str | None = None
    every_s: float = BEAT_EVERY_S
    last_batch_id: int | None = None
    last_batch_at: datetime | None = None

    def stale_after(self) -> float:
        """Seconds after `beat_at` from which a live state is not believed any more."""
        return STALE_BEATS * self.every_s + STALE_MARGIN_S

    def to_json(self) -> str:
        data: dict[str, Any] = {"format": FORMAT, **asdict(self)}
        for key in ("started_at", "beat_at", "last_batch_at"):
            if data[key] is not None:
                data[key] = data[key].astimezone(UTC).isoformat()
        return json.dumps(data, ensure_ascii=False) + "\n"


def heartbeat_path(warehouse: str | Path) -> Path:
    """``pw.duckdb`` → ``pw.duckdb.stream-heartbeat.json`` in the same directory."""
    path = Path(warehouse)
    return path.with_name(path.name + SUFFIX)


def this_host() -> str:
    return socket.gethostname()


def _moment(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("a timestamp without a zone")
    return moment.astimezone(UTC)


def _int(value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError("not an integer in range")
    return value


def parse_heartbeat(text: str | bytes) -> Heartbeat | None:
    """The heartbeat in `text`, or None when it is not one (partial, corrupt, another format):
    a reader treats that as no heartbeat at all."""
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        hostname, state, cause = data["hostname"], data["state"], data.get("cause")
        every = data.get("every_s", BEAT_EVERY_S)
        if not isinstance(hostname, str) or not hostname or state not in STATES:
            return None
        if cause is not None and not isinstance(cause, str):
            return None
        if (isinstance(every, bool) or not isinstance(every, int | float)
                or not math.isfinite(every) or not 0 < every <= 3600):
            return None
        batch_id, batch_at = data.get("last_batch_id"), data.get("last_batch_at")
        return Heartbeat(pid=_int(data["pid"], 1), hostname=hostname[:255],
                         started_at=_moment(data["started_at"]), beat_at=_moment(data["beat_at"]),
                         state=state, cause=cause[:MAX_CAUSE] if cause else None,
                         every_s=float(every),
                         last_batch_id=None if batch_id is None else _int(batch_id, 0),
                         last_batch_at=None if batch_at is None else _moment(batch_at))
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError):
        return None  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors


def read_heartbeat(warehouse: str | Path) -> Heartbeat | None:
    """The heartbeat beside `warehouse`; None when there is none or it is unreadable. Only a
    regular file is read (a FIFO put there would block the reader), and at most MAX_BYTES."""
    try:
        fd = os.open(heartbeat_path(warehouse), os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        raw = os.read(fd, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None if len(raw) > MAX_BYTES else parse_heartbeat(raw)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (signal 0 checks, sends nothing)."""
    if pid <= 0:  # 0 and negative ids name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    except OSError:
        return False
    with contextlib.suppress(OSError, IndexError):  # Linux: an exited child not yet reaped
        stat_line = Path(f"/proc/{pid}/stat").read_text()
        if stat_line.rpartition(")")[2].split()[0] == "Z":  # a zombie runs nothing
            return False
    return True


def judge(hb: Heartbeat, now: datetime, host: str | None = None) -> str:
    """What `hb` says at `now`, read on machine `host` (default: this one):

    - ``stopped`` / ``failed``: the process ended and said so (at ``beat_at``);
    - ``skewed``: the beat is dated ahead of `now` by more than SKEW_TOLERANCE_S: the writer's
      clock and ours disagree, so its age says nothing;
    - ``stale``: no beat for longer than :meth:`Heartbeat.stale_after`: the process is gone;
    - ``pid_gone``: written on this machine by a process that no longer exists (the pid is
      judged only on the machine that wrote it);
    - otherwise its state: ``starting``, ``running`` or ``restarting``.
    """
    if hb.state in ENDED:
        return hb.state
    age = (now - hb.beat_at).total_seconds()
    if age < -SKEW_TOLERANCE_S:
        return "skewed"
    if age > hb.stale_after():
        return "stale"
    if hb.hostname == (host or this_host()) and not pid_alive(hb.pid):
        return "pid_gone"
    return hb.state
