"""One alert delivery at a time per warehouse.

Two `forecast` runs at once (cron overlapping `report --every --forecast`, or the demo's loop)
would both read the same pending messages and both send them: the delivery log that
de-duplicates is written after each receiver's answer. So :func:`send_flag_alerts
<forecast.alerts.delivery.send_flag_alerts>` holds an exclusive ``flock`` on
``.<warehouse name>.alerts.lock`` beside the warehouse from reading ``alert_state`` to recording
what was sent. A run that finds it held waits up to :data:`LOCK_WAIT_SECONDS` for it, then
sends nothing: what it would send stays pending for the next run. The lock goes with the
process (a killed run leaves no stale lock); the file stays, holding the last holder's PID.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# How long a run waits for another run's delivery: a quick one (a few messages to live
# receivers) ends within it; a dead receiver's retry schedule (12 minutes by default) does not.
LOCK_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.1


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(f".{warehouse.name}.alerts.lock")


@contextmanager
def delivery_lock(warehouse: Path) -> Iterator[str | None]:
    """Hold the delivery lock of ``warehouse``: yields None while it is held, or, when another
    process kept it for :data:`LOCK_WAIT_SECONDS`, who holds it (``PID n``) without it."""
    fd = os.open(lock_path(warehouse), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                    yield f"PID {holder}" if holder.isdigit() else "a process"
                    return
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield None
    finally:
        os.close(fd)  # releases the lock
