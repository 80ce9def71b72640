"""`relabel` on a warehouse an older polarwatch wrote (before migration 6 gave posts
`labelled_by` and `relabelled_at`; replayed from the fixture of tests/polarwatch/
test_warehouse_migrations.py). Before, both `relabel` and `relabel --dry-run` ended in DuckDB's
BinderException with a traceback, exit 1: the read named the new columns. Now a run upgrades the
file first (it writes anyway, as the stream and forecast do) and a dry run, which only reads,
reads the file as it is."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from polarwatch.cli import main
from polarwatch.migrations import LATEST_VERSION
from polarwatch.warehouse import connect, schema_version
from tests.polarwatch.test_warehouse_migrations import FIXTURE
from tests.stream.test_relabel_safety import GUN


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    (tmp_path / "topics.toml").write_text(GUN)
    (tmp_path / "polarwatch.toml").write_text(
        '[warehouse]\npath = "w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "lexicon"\n'
        'fallback = []\ntopics_file = "topics.toml"\n')
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute(FIXTURE.read_text())  # 2 gun-control posts, a root and its reply
    finally:
        con.close()
    return tmp_path / "polarwatch.toml"


def _version(db: Path) -> int:
    with connect(db, read_only=True) as con:
        return schema_version(con)


def test_a_dry_run_reads_an_old_file_as_it_is(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = config.parent / "w.duckdb"
    before = db.read_bytes()
    assert main(["--config", str(config), "relabel", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "relabel (dry run: nothing written): 2 posts" in out, err
    assert db.read_bytes() == before and _version(db) == 0  # only read


def test_a_run_upgrades_an_old_file_then_relabels_it(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = config.parent / "w.duckdb"
    assert main(["--config", str(config), "relabel"]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err and out.startswith("relabel: 2 posts"), err
    assert _version(db) == LATEST_VERSION
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts WHERE labelled_by = 'lexicon' AND "
                           "relabelled_at IS NOT NULL").fetchone() == (2,)


def test_a_run_on_a_missing_file_still_says_so_and_makes_none(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = config.parent / "w.duckdb"
    db.unlink()
    assert main(["--config", str(config), "relabel"]) == 2
    assert "does not exist yet" in capsys.readouterr().err and not db.exists()
