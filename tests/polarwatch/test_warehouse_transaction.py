"""warehouse.transaction: one unit of write work, committed or rolled back as a whole."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from polarwatch import warehouse
from polarwatch.warehouse import connect, scalar, transaction


def _count(path: Path) -> int:
    with connect(path, read_only=True) as con:
        return int(scalar(con, "SELECT count(*) FROM t"))


def test_a_block_that_ends_normally_commits(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with transaction(path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (1), (2)")
    assert _count(path) == 2


def test_a_block_that_raises_rolls_everything_back_and_reraises(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with transaction(path) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError, match="boom"), transaction(path) as con:
        con.execute("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")
    assert _count(path) == 0
    with transaction(path) as con:  # the file is usable (closed, not locked) afterwards
        con.execute("INSERT INTO t VALUES (3)")
    assert _count(path) == 1


def test_a_return_inside_the_block_commits(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"

    def write() -> str:
        with transaction(path) as con:
            con.execute("CREATE TABLE t (x INTEGER)")
            con.execute("INSERT INTO t VALUES (1)")
            return "done"

    assert write() == "done"
    assert _count(path) == 1


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def test_connect_waits_for_another_process_to_release_the_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "held.duckdb"
    monkeypatch.setattr(warehouse, "LOCK_RETRY_SECONDS", 0.1)
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 200)  # up to 20 s: outlasts 1.5 s
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "1.5"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with transaction(path) as con:  # retried while the other process holds the file
        con.execute("CREATE TABLE t (x INTEGER)")
    holder.wait(30)
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 3)  # 0.3 s: gives up, says why
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "5"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    try:
        with pytest.raises(Exception, match="(?i)lock") as err, connect(path):
            pass
        assert warehouse.is_lock_error(err.value)
    finally:
        holder.kill()
        holder.wait(30)
