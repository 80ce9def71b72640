"""A warehouse path with non-ASCII characters under a locale whose file-system encoding is not
UTF-8 (LC_ALL=C with Python's UTF-8 mode off): DuckDB failed inside with `RuntimeError:
std::bad_cast` (a traceback), or opened another file. Now one WarehouseUnreadable with the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from polarwatch.errors import WarehouseUnreadable
from polarwatch.warehouse import init_schema
path = sys.argv[1].encode("utf-8", "surrogateescape").decode(  # the bytes of a UTF-8 name
    sys.getfilesystemencoding(), "surrogateescape")
try:
    init_schema(path)
except WarehouseUnreadable as exc:
    print("refused:", str(exc).encode("ascii", "backslashreplace").decode())
else:
    print("opened")
"""


def _run(directory: Path, env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(directory / "w.duckdb")],
                          env={**os.environ, "PYTHONPATH": str(REPO), **env},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_a_non_ascii_path_under_an_ascii_locale_is_refused_with_the_fix(tmp_path: Path) -> None:
    directory = tmp_path / "dir ü x"
    directory.mkdir()
    said = _run(directory, {"LC_ALL": "C", "PYTHONUTF8": "0"})
    assert said.startswith("refused:") and "PYTHONUTF8=1" in said, said
    assert list(directory.iterdir()) == []  # nothing created, under this name or another
    assert _run(directory, {"PYTHONUTF8": "1"}) == "opened"  # the fix it names works
    assert [p.name for p in directory.iterdir()] == ["w.duckdb"]


def test_a_warehouse_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    """Under a UTF-8 locale a name with a Latin-1 byte (Python holds it with a lone surrogate)
    ended in DuckDB's `RuntimeError: std::bad_cast` traceback."""
    from polarwatch.errors import WarehouseUnreadable
    from polarwatch.warehouse import connect

    path = tmp_path / os.fsdecode(b"caf\xe9.duckdb")
    with pytest.raises(WarehouseUnreadable, match=r"caf\\udce9\.duckdb: DuckDB cannot open a "
                                                  r"path whose name is not UTF-8"), connect(path):
        pass
    assert list(tmp_path.iterdir()) == []
