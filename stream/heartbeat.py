"""The running stream's heartbeat (the file and its fields: :mod:`polarwatch.heartbeat`).

:class:`HeartbeatWriter` rewrites ``<warehouse>.stream-heartbeat.json`` from a daemon thread
every ``every_s`` seconds while ``run_stream`` runs, idle or not, and at once when the state
changes (``running``, ``restarting`` with the cause during the supervisor's back-off). Its
:meth:`HeartbeatWriter.close` stops the thread and writes the last beat: ``stopped`` (Ctrl-C,
SIGTERM, the end of a drain) or ``failed`` with the cause. A process killed with ``kill -9``
writes nothing more, so its last beat grows stale. The file is written atomically
(:func:`polarwatch.safe_write.write_text`: a temporary file, then ``os.replace``), never into
DuckDB. A beat that cannot be written is logged (once until one succeeds again); it never stops
the stream.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polarwatch.errors import PolarwatchError
from polarwatch.heartbeat import BEAT_EVERY_S, ENDED, STATES, Heartbeat, heartbeat_path, this_host
from polarwatch.safe_write import write_text

LOG = logging.getLogger(__name__)

# The beat interval, for tests that cannot wait BEAT_EVERY_S (seconds, 0.1–3600); not a setting
EVERY_ENV = "POLARWATCH_HEARTBEAT_S"


def beat_every(env: dict[str, str] | None = None) -> float:
    """BEAT_EVERY_S, or $POLARWATCH_HEARTBEAT_S when it is a number of seconds in 0.1–3600."""
    raw = (os.environ if env is None else env).get(EVERY_ENV)
    if raw is None:
        return BEAT_EVERY_S
    try:
        every = float(raw)
    except ValueError:
        every = -1.0
    if not 0.1 <= every <= 3600:
        LOG.warning(f"${EVERY_ENV}={raw!r} is not a number of seconds in 0.1–3600: the "
                    f"heartbeat beats every {BEAT_EVERY_S:g} s (fix or unset the variable)")
        return BEAT_EVERY_S
    return every


class HeartbeatWriter:
    """Writes the heartbeat of the stream that stores into `warehouse`."""

    def __init__(self, warehouse: str | Path, every_s: float | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.path = heartbeat_path(warehouse)
        self.every_s = beat_every() if every_s is None else every_s
        self.clock = clock
        self.pid, self.hostname = os.getpid(), this_host()
        self.started_at = clock()
        self.state = "starting"
        self.cause: str | None = None
        self.last_batch: tuple[int, datetime] | None = None
        self._lock = threading.Lock()  # one beat at a time, each with the newest state
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self.beats = 0  # beats written

    def start(self) -> HeartbeatWriter:
        """Write the first beat (``starting``) now and keep beating from a daemon thread."""
        self.beat()
        self._thread = threading.Thread(target=self._run, name="polarwatch-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def set_state(self, state: str, cause: str | None = None) -> None:
        """A new state (``running``, ``restarting`` with its cause), written at once."""
        if state not in STATES:
            raise ValueError(f"heartbeat state {state!r} is not one of {STATES}")
        with self._lock:
            self.state, self.cause = state, cause
        self.beat()

    def batch_done(self, batch_id: int) -> None:
        """The sink finished micro-batch `batch_id` (written, or skipped as a replay)."""
        self.last_batch = (batch_id, self.clock())

    def timed(self, sink: Callable[[Any, int], None]) -> Callable[[Any, int], None]:
        """A ``foreachBatch`` target that runs `sink` and then notes the batch it finished."""
        def run(df: Any, batch_id: int) -> None:
            sink(df, batch_id)
            self.batch_done(batch_id)
        return run

    def beat(self) -> Heartbeat:
        """Write one beat with the current state; returns what was written (or tried)."""
        with self._lock:
            last = self.last_batch
            hb = Heartbeat(pid=self.pid, hostname=self.hostname, started_at=self.started_at,
                           beat_at=self.clock(), state=self.state, cause=self.cause,
                           every_s=self.every_s,
                           last_batch_id=last[0] if last else None,
                           last_batch_at=last[1] if last else None)
            try:
                write_text(self.path, hb.to_json(), option="the stream heartbeat")
            except (OSError, PolarwatchError) as exc:
                if not self._failing:
                    LOG.warning(f"could not write the stream heartbeat {self.path}: {exc}; the "
                                f"stream goes on, the dashboard cannot tell it runs (check the "
                                f"directory's space and permissions)")
                self._failing = True
            else:
                if self._failing:
                    LOG.info(f"the stream heartbeat {self.path} is written again")
                self._failing = False
                self.beats += 1
        return hb

    def close(self, state: str = "stopped", cause: str | None = None) -> None:
        """Stop beating and write the last beat: `state` (``stopped`` or ``failed``) and why."""
        if state not in ENDED:
            raise ValueError(f"a last heartbeat says one of {ENDED}, not {state!r}")
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(self.every_s, 5.0))
        self.set_state(state, cause)
