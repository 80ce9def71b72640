"""A full disk while writing output: `polarwatch label ... -o /dev/full` printed two chained
tracebacks ending ``OSError: [Errno 28] No space left on device`` (the write, then the close),
and `polarwatch schema > /dev/full` one (an OSError without a file name was re-raised as a
bug). Now it is one error line naming what was being written, exit 2 as for any other file
error. /dev/full is a real device that answers every write with ENOSPC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polarwatch.safe_write import STDOUT, writing

REPO = Path(__file__).resolve().parents[2]
FULL = Path("/dev/full")
pytestmark = pytest.mark.skipif(not FULL.exists(), reason="needs Linux's /dev/full")
ERROR = "polarwatch: error: No space left on device: {what}; free some space on that disk, " \
        "or write elsewhere\n"


def _run(tmp_path: Path, argv: list[str], unbuffered: bool, stdout: int | None = None
         ) -> subprocess.CompletedProcess[str]:
    """`polarwatch ARGV` in a child, output to /dev/full unless `stdout` is given; with
    PYTHONUNBUFFERED (each print fails at once) or without (the flush at the end fails)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    with FULL.open("w") as full:
        return subprocess.run([sys.executable, "-m", "polarwatch.cli", "--config",
                               str(REPO / "polarwatch.toml"), *argv], cwd=tmp_path, env=env,
                              stdout=full if stdout is None else stdout, stderr=subprocess.PIPE,
                              text=True, timeout=120, check=False)


@pytest.fixture()
def posts(tmp_path: Path) -> Path:
    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "text": "Ban assault weapons now",
                                       "topic": "gun_control"}) + "\n" for i in range(50)))
    return src


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
def test_label_to_a_full_disk_is_one_line_naming_the_file(
        tmp_path: Path, posts: Path, unbuffered: bool) -> None:
    out = _run(tmp_path, ["label", "--backend", "lexicon", str(posts), "-o", str(FULL)],
               unbuffered, stdout=subprocess.DEVNULL)
    assert (out.returncode, out.stderr) == (2, ERROR.format(what=repr(str(FULL))))


@pytest.mark.parametrize("unbuffered", [True, False], ids=["unbuffered", "buffered"])
@pytest.mark.parametrize("argv", [["schema"], ["label", "--backend", "lexicon", "posts.jsonl"]],
                         ids=["schema", "label"])
def test_standard_output_on_a_full_disk_is_one_line(
        tmp_path: Path, posts: Path, argv: list[str], unbuffered: bool) -> None:
    out = _run(tmp_path, argv, unbuffered)
    assert (out.returncode, out.stderr) == (2, ERROR.format(what=STDOUT)), out.stderr


def test_writing_names_the_output_and_leaves_other_errors_alone() -> None:
    with pytest.raises(OSError, match="No space left on device") as caught, \
            writing("labels.jsonl"), FULL.open("w") as fh:
        fh.write("x")
        fh.flush()
    assert caught.value.filename == "labels.jsonl"
    with pytest.raises(FileNotFoundError) as missing, writing("other"):
        Path("/nonexistent/dir/file").read_text()
    assert missing.value.filename == "/nonexistent/dir/file"
    with pytest.raises(BrokenPipeError), writing(STDOUT):
        raise BrokenPipeError(32, "Broken pipe")
