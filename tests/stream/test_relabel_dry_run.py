"""`relabel --dry-run` reports the label changes a run makes and leaves the warehouse file as it
was. It only reads: a dry run that ran the write transaction and rolled it back (briefly
shipped) held the writer's lock long enough for a running stream's batch to fail on it (46 s on
500,000 posts), and failed on a warehouse the analyst may only read."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarwatch.cli import main
from tests.stream.test_relabel_safety import CLIMATE, GUN, setup


def test_a_dry_run_reports_the_label_changes_of_a_run_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, GUN + CLIMATE)
    db = tmp_path / "w.duckdb"
    before = db.read_bytes()
    assert main(["--config", str(config), "relabel", "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert db.read_bytes() == before and not Path(f"{db}.wal").exists()
    assert main(["--config", str(config), "relabel"]) == 0
    real = capsys.readouterr().out.splitlines()
    assert dry[0].startswith("relabel (dry run: nothing written): 6 posts")
    assert any("a dry run reads only" in line for line in dry), dry
    labels = [line for line in dry[1:] if "a dry run reads only" not in line]
    assert labels == [line for line in real[1:] if not line.strip().startswith("agreement of")]
    assert db.read_bytes() != before  # the run did write
