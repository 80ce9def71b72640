"""`relabel --dry-run` reports everything a run changes (labels, the replies' agreement, the
interactions scored again, the windows recomputed) with the counts of a real run, and leaves
the warehouse file as it was."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from polarwatch.cli import main
from tests.stream.test_relabel_safety import CLIMATE, GUN, setup


def test_a_dry_run_reports_the_counts_of_a_run_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, GUN + CLIMATE)
    db = tmp_path / "w.duckdb"
    before = db.read_bytes()
    assert main(["--config", str(config), "relabel", "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert db.read_bytes() == before  # rolled back: not a byte changed
    assert not Path(f"{db}.wal").exists()
    assert main(["--config", str(config), "relabel"]) == 0
    real = capsys.readouterr().out.splitlines()

    agreement = [line for line in dry if line.strip().startswith("agreement of the")]
    assert len(agreement) == 1, dry
    counted = re.search(r"; (\d+) interactions would be scored again, (\d+) windows would be "
                        r"recomputed$", agreement[0])
    assert counted is not None and int(counted.group(1)) > 0 and int(counted.group(2)) > 0
    assert dry[0].startswith("relabel (dry run: nothing written): 6 posts")
    # line by line what the run then did (the dry run's wording aside)
    assert [line.replace("would be ", "") for line in dry[1:]] == real[1:]
    assert db.read_bytes() != before  # the run did write
