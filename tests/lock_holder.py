"""Another process that opens a DuckDB file and keeps it open, for the tests of what every command
and page does on a warehouse it cannot lock: read-write (no other process may open it) or
read-only (others may read it, none may write)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLD = ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=sys.argv[2] == 'r'); "
        "sys.argv[3] and c.execute(sys.argv[3]); print('ready', flush=True); time.sleep(120)")


def hold(path: Path, read_only: bool = False, sql: str = "") -> subprocess.Popen[str]:
    """The holding process, once it has the file open (and has run `sql` on it)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), "r" if read_only else "w",
                             sql], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def release(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


@contextmanager
def holding(path: Path, read_only: bool = False, sql: str = "") -> Iterator[subprocess.Popen[str]]:
    proc = hold(path, read_only, sql)
    try:
        yield proc
    finally:
        release(proc)
