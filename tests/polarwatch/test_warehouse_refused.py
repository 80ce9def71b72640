"""A warehouse the operating system will not let polarwatch write: on a full disk, or on a
read-only file system. `polarwatch relabel` (which labels, then writes in one transaction) ended
in DuckDB's TransactionException (`Failed to commit: Could not write file "….wal": No space left
on device`) or, read-only, in "cannot be opened as the DuckDB warehouse … move this file away so
that a new warehouse is created" (advice that does not fit a file that is merely read-only).
Now each is the one line the CLI gives any file the system refuses: what, which file, the fix,
exit 2, and the warehouse is as it was.

The disk is real: a small tmpfs in a private mount namespace (`unshare -rm`, no root needed
where user namespaces are allowed), filled with dd, or remounted read-only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polarwatch.warehouse import connect, init_schema

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
TOPICS = ('[[topic]]\nid = "gun_control"\nname = "Gun control"\npro = "For stricter laws."\n'
          'anti = "Against them."\n')


def _namespaces() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True,
                          check=False).returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces(),
                                reason="needs `unshare -rm` (a private mount namespace)")


def _warehouse(path: Path) -> None:
    """20 gun-control posts labelled by a backend called "before"."""
    init_schema(path)
    with connect(path) as con:
        for i in range(20):
            con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                        "conversation_id, stance, affect, emotion, intensity, stance_conf, "
                        "affect_conf, emotion_conf, backend, schema_version) VALUES (?, 'x', "
                        "'a', 'ban assault weapons', ?, 'gun_control', 'c', 'anti', 'no', "
                        "'neutral', 0, 0.9, 0.9, 0.9, 'before', 1)",
                        [f"p{i}", T0 + timedelta(minutes=i)])
        con.execute("CHECKPOINT")


@pytest.mark.parametrize(("how", "said"), [
    ("dd if=/dev/zero of=$DISK/pad bs=64k 2>/dev/null || true",
     "polarwatch: error: No space left on device: '{disk}/w.duckdb.wal'; free some space on "
     "that disk, or write elsewhere"),
    # the options named: a bare `remount,ro` resends the mount's uid=/gid=, which a non-root
    # user's namespace does not map (EINVAL: the test passed only as root)
    ("mount -o remount,ro,size=8m tmpfs $DISK",
     "polarwatch: error: Read-only file system: '{disk}/w.duckdb'; check the path and its "
     "permissions")], ids=["full", "read-only"])
def test_relabel_on_a_refused_disk_is_one_line_and_writes_nothing(
        tmp_path: Path, how: str, said: str) -> None:
    disk, kept = tmp_path / "disk", tmp_path / "after.duckdb"
    disk.mkdir()
    _warehouse(tmp_path / "w.duckdb")
    (tmp_path / "topics.toml").write_text(TOPICS)
    (tmp_path / "polarwatch.toml").write_text(
        '[warehouse]\npath = "disk/w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "lexicon"\n'
        'fallback = []\ntopics_file = "topics.toml"\n')
    script = (f'mount -t tmpfs -o size=8m tmpfs $DISK && cp w.duckdb $DISK/ && {how} && '
              f'"$PY" -m polarwatch.cli --config polarwatch.toml relabel; rc=$?; '
              f'cp $DISK/w.duckdb {kept.name}; exit $rc')
    out = subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=tmp_path,
                         env={**os.environ, "DISK": str(disk), "PY": sys.executable},
                         capture_output=True, text=True, timeout=300, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    assert (out.returncode, out.stderr.splitlines()[-1:]) == (2, [said.format(disk=disk)]), \
        out.stderr
    with connect(kept, read_only=True) as con:  # the transaction left the file as it was
        assert con.execute("SELECT count(*), count(relabelled_at), count(*) FILTER (backend = "
                           "'before') FROM posts").fetchone() == (20, 0, 20)
