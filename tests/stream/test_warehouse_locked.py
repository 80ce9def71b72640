"""A warehouse whose lock another process keeps (a duckdb shell, a notebook): `relabel` (also
`--dry-run`, which reads only) and `train --from-warehouse` stop in one line naming the holder's
PID and what to do, exit 2, and write nothing. Before, each ended in DuckDB's IOException with a
traceback, exit 1. The holder is a real process with a real DuckDB connection."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarwatch import warehouse
from polarwatch.cli import main
from polarwatch.warehouse import connect
from tests.lock_holder import holding
from tests.stream.test_relabel_safety import GUN, setup


@pytest.fixture()
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 4)  # 0.1 s of retries, not 5 s
    return setup(tmp_path, GUN)


@pytest.fixture()
def holder(config: Path) -> Iterator[subprocess.Popen[str]]:
    with holding(config.parent / "w.duckdb") as proc:
        yield proc


@pytest.mark.parametrize(("command", "doing"), [
    (["relabel", "--backend", "lexicon"], "polarwatch relabel"),
    (["relabel", "--backend", "lexicon", "--dry-run"], "polarwatch relabel"),
    (["train", "--from-warehouse", "--topic", "gun_control"],
     "polarwatch train --from-warehouse")])
def test_a_locked_warehouse_is_one_line_naming_the_holder(
        command: list[str], doing: str, config: Path, holder: subprocess.Popen[str],
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_BACKEND", "learned")  # train's own check passes
    db = config.parent / "w.duckdb"
    rc = main(["--config", str(config), *command])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("polarwatch: error:")]
    assert rc == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    assert f"{db} is locked" in lines[0] and f"PID {holder.pid}" in lines[0]
    assert f"so {doing} did not run" in lines[0]
    holder.kill()
    holder.wait()
    with connect(db, read_only=True) as con:  # nothing was written
        assert con.execute("SELECT count(*) FROM posts WHERE relabelled_at IS NOT NULL "
                           "OR backend <> 'before'").fetchone() == (0,)
