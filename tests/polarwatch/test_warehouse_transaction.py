"""warehouse.transaction: one unit of write work, committed or rolled back as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest

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
