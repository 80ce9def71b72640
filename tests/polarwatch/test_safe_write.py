"""polarwatch.safe_write: a symlink is written through, a special file is never replaced.

As root, `polarwatch report -o /dev/null` once replaced the machine's /dev/null with a regular
file; these tests use a FIFO and links made in tmp_path instead."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from polarwatch.safe_write import OutputPathError, output_target, refuse_input, write_text


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_a_symlink_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real" / "target.html"
    target.parent.mkdir()
    target.write_text("original")
    target.chmod(0o640)
    link = tmp_path / "link.html"
    link.symlink_to(target)
    assert write_text(link, "new") == target
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640  # the replaced file's mode is kept
    assert leftovers(tmp_path) == leftovers(target.parent) == []
    dangling = tmp_path / "dangling.html"  # a link to a file not written yet: that file
    dangling.symlink_to(tmp_path / "real" / "later.html")
    write_text(dangling, "first")
    assert dangling.is_symlink() and (tmp_path / "real" / "later.html").read_text() == "first"


@pytest.mark.parametrize(("make", "says"), [
    ("fifo", "is a FIFO (named pipe), not a regular file"),
    ("link_to_fifo", "is a FIFO (named pipe) (the link resolves to"),
    ("directory", "is a directory, not a regular file"),
])
def test_a_special_file_or_directory_is_refused_and_left_alone(
        tmp_path: Path, make: str, says: str) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "dir").mkdir()
    (tmp_path / "link_to_fifo").symlink_to(fifo)
    path = {"fifo": fifo, "link_to_fifo": tmp_path / "link_to_fifo",
            "directory": tmp_path / "dir"}[make]
    with pytest.raises(OutputPathError, match=f"^-o {path} {says}".replace("(", r"\(")
                       .replace(")", r"\)")):
        write_text(path, "text")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and (tmp_path / "dir").is_dir()
    assert (tmp_path / "link_to_fifo").is_symlink()
    assert leftovers(tmp_path) == []


def test_empty_paths_trailing_slashes_and_loops_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(OutputPathError, match="^-o is empty; name the file to write"):
        output_target("")
    with pytest.raises(OutputPathError, match="ends in '/', a directory; name a file in it"):
        output_target(f"{tmp_path}/new/")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutputPathError, match="loop"):
        output_target(loop, "--file")
    assert output_target(tmp_path / "a" / "b.html") == tmp_path / "a" / "b.html"  # new: fine


def test_the_input_file_is_refused_as_output_by_any_path(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("timestamp,value\n")
    (tmp_path / "alias.csv").symlink_to(src)
    for output in (src, tmp_path / "." / "in.csv", tmp_path / "alias.csv"):
        with pytest.raises(OutputPathError, match="is the input file"):
            refuse_input(src, output, "it would be replaced")
    refuse_input(src, tmp_path / "out.csv", "it would be replaced")  # another file: fine
