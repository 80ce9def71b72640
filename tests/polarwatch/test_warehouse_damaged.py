"""A cut copy of the warehouse (DuckDB opens it, a later read fails) is one WarehouseUnreadable
naming the file. (A writer is not refused up front: comparing the file's size with the blocks
DuckDB counts would refuse a file whose write-ahead log is being replayed.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from polarwatch.cli import main
from polarwatch.errors import WarehouseUnreadable
from polarwatch.warehouse import connect, init_schema

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cut_copy(tmp_path: Path) -> Path:
    """A warehouse with enough posts for several data blocks, and a copy cut to its first
    300 kB: DuckDB still opens the copy, reading the posts fails."""
    db = tmp_path / "full.duckdb"
    init_schema(db)
    with connect(db) as con:
        con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                    "conversation_id, stance, affect, emotion, intensity, stance_conf, "
                    "affect_conf, emotion_conf, backend, schema_version) "
                    "SELECT 'p' || i, 'x', 'a' || i, md5(i::VARCHAR) || repeat('t', 200), "
                    "?::TIMESTAMPTZ + to_seconds(i), 'gun_control', 'c' || (i % 97), 'pro', "
                    "'no', 'neutral', 0, 0.9, 0.9, 0.9, 'lexicon', 1 FROM range(40000) r(i)",
                    [T0])
        con.execute("CHECKPOINT")
    cut = tmp_path / "cut.duckdb"
    cut.write_bytes(db.read_bytes()[:300_000])
    raw = duckdb.connect(str(cut), read_only=True)  # the precondition: opens, fails on reading
    try:
        with pytest.raises(duckdb.IOException, match="Could not read enough bytes"):
            raw.execute("SELECT max(text), count(*) FROM posts").fetchall()
    finally:
        raw.close()
    return cut


def test_reading_a_cut_copy_is_one_line_naming_the_file(tmp_path: Path) -> None:
    cut = cut_copy(tmp_path)
    says = f"{cut} cannot be read as the DuckDB warehouse: it is cut short or damaged"
    with pytest.raises(WarehouseUnreadable, match=says) as e, connect(cut, read_only=True) as con:
        con.execute("SELECT max(text), count(*) FROM posts").fetchall()
    assert "move it away so that a new warehouse is created" in str(e.value)


def test_relabel_on_a_cut_copy_exits_2_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut = cut_copy(tmp_path)
    (tmp_path / "topics.toml").write_text(
        '[[topic]]\nid = "gun_control"\nname = "Gun control"\npro = "For stricter laws."\n'
        'anti = "Against them."\n')
    (tmp_path / "polarwatch.toml").write_text(
        f'[warehouse]\npath = "{cut.name}"\nlake_dir = ""\n[extractor]\nbackend = "lexicon"\n'
        f'fallback = []\ntopics_file = "topics.toml"\n')
    since = (T0 + timedelta(hours=1)).isoformat()
    assert main(["--config", str(tmp_path / "polarwatch.toml"), "relabel", "--dry-run",
                 "--since", since]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "IOException" not in err.split("(")[0]
    assert f"{cut} cannot be read as the DuckDB warehouse" in err
