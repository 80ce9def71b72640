"""Readers on a snapshot of the DuckDB file instead of the live file (issue 13).

Every reader connection holds DuckDB's file lock, and the stream's sink cannot write while one
does: ten dashboard sessions refreshing every 5 s kept it waiting (benchmarks/readers.py). With
``$POLARWATCH_DASHBOARD_SNAPSHOT_S`` > 0, :func:`readable` hands readers a copy instead.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from pathlib import Path

from polarwatch.warehouse import connect, is_lock_error

SNAPSHOT_ENV = "POLARWATCH_DASHBOARD_SNAPSHOT_S"
# snapshot -> until when (time.time()) readers take the copy there is without trying to refresh
# it: another process kept the live file locked through the retries of the last refresh
_locked_until: dict[Path, float] = {}


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def readable(path: str | Path) -> Path:
    """The file readers open: the live DuckDB file, or — with ``$POLARWATCH_DASHBOARD_SNAPSHOT_S``
    > 0 — a snapshot copy ``.<name>.snapshot`` next to it (with ``.<name>.snapshot.lock``, and
    ``.<name>.snapshot.wal`` when the writer left a WAL), at most that many seconds old and
    shared by every reader process. A missing warehouse creates nothing (its reader raises
    ``FileNotFoundError``); a directory the dashboard cannot write means reading the live file.
    While another process keeps the live file locked past the retries (a writer storing a long
    batch), readers take the older copy: one refresh per period waits for the lock, not every
    query (:func:`locked_out` says how old the copy is then).

    The snapshot takes DuckDB's file lock once per period, for one file copy under a read-only
    connection (so no writer changes the bytes meanwhile); one reader refreshes it (an flock),
    the others keep reading the previous copy, which nobody writes.
    """
    path = Path(path)
    max_age = float(os.environ.get(SNAPSHOT_ENV) or 0)
    if max_age <= 0 or not path.exists():  # a missing file: the reader says so, nothing made
        return path
    snap = path.with_name(f".{path.name}.snapshot")
    if _age(snap) < max_age or (snap.exists() and time.time() < _locked_until.get(snap, 0)):
        return snap
    try:
        return _refresh(path, snap, max_age)
    except PermissionError:  # a directory the dashboard may not write: read the live file
        return path
    except Exception as exc:  # duckdb.IOException: the lock, still held after the retries
        if not is_lock_error(exc) or not snap.exists():
            raise
        _locked_until[snap] = time.time() + max_age
        return snap


def locked_out(path: str | Path) -> float | None:
    """How old (seconds) the copy readers take instead of the live file `path` is, when the
    last refresh found the live file locked by another process; None otherwise."""
    path = Path(path)
    snap = path.with_name(f".{path.name}.snapshot")
    if snap not in _locked_until or not snap.exists():
        return None
    age = _age(snap)
    max_age = float(os.environ.get(SNAPSHOT_ENV) or 0)
    return age if age >= max_age > 0 else None


def _refresh(path: Path, snap: Path, max_age: float) -> Path:
    """Copy `path` to `snap` unless another reader is doing it or just did."""
    with open(path.with_name(f".{path.name}.snapshot.lock"), "a") as guard:
        try:
            fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # another reader is refreshing it: read the copy there is
            return snap if snap.exists() else path
        if _age(snap) < max_age:
            return snap
        _locked_until.pop(snap, None)
        tmp = snap.with_name(f"{snap.name}.{os.getpid()}.tmp")
        wal = Path(f"{path}.wal")
        with connect(path, read_only=True):  # the shared lock: no writer during the copy
            shutil.copyfile(path, tmp)
            if wal.exists():  # a writer that died left it: the copy needs it too
                shutil.copyfile(wal, f"{tmp}.wal")
        if Path(f"{tmp}.wal").exists():
            os.replace(f"{tmp}.wal", f"{snap}.wal")
        else:
            Path(f"{snap}.wal").unlink(missing_ok=True)
        os.replace(tmp, snap)
    return snap
