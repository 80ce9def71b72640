"""Input files cannot make ingest hold more than one record's worth of a line: an overlong JSONL
line, CSV line or quoted CSV field is dead-lettered in its place (the file goes on), and a .gz
decompression bomb is refused with a clear error."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest

from ingest.sources.base import SourceError
from ingest.sources.files import BOMB_MIN_BYTES, MAX_LINE_BYTES, FileSource
from polarwatch.records import MAX_DEAD_LETTER_BYTES

POST = {"platform": "reddit", "author_id": "a", "text": "hello", "topic": "gun_control",
        "created_at": "2024-01-01T00:00:00Z", "conversation_id": "c"}
BIG = 32 * 1024 * 1024  # 128x the line limit
PEAK = 8 * 1024 * 1024  # what reading it may hold at once


def rows_and_peak(path: Path) -> tuple[list[tuple[int, str | None, str | None]], int]:
    tracemalloc.start()
    try:
        rows = [(len(raw), (row or {}).get("id"), error) for raw, row, error
                in FileSource(path).rows()]
        return rows, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_an_overlong_jsonl_line_is_one_dead_letter(tmp_path: Path, suffix: str) -> None:
    lines = [json.dumps(POST | {"id": "1"}).encode(), b'{"text": "' + b"x" * BIG + b'"}',
             json.dumps(POST | {"id": "2"}).encode()]
    path = tmp_path / f"posts{suffix}"
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    rows, peak = rows_and_peak(path)
    assert [r[1] for r in rows] == ["1", None, "2"]
    assert rows[1][0] == MAX_DEAD_LETTER_BYTES
    assert rows[1][2] == (f"line of {BIG + 12:,} bytes, more than the {MAX_LINE_BYTES:,} one "
                          f"record may hold (only its first {MAX_DEAD_LETTER_BYTES:,} are kept "
                          f"here)")
    assert peak < PEAK, peak  # never read whole


def test_overlong_csv_lines_and_fields_are_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    quoted = "\n".join(["z" * 1000] * 400)  # 400 short lines inside one quoted field
    path.write_text(f"id,text\n1,hello\n2,{'y' * BIG}\n3,\"{quoted}\"\n4,bye\n")
    rows, peak = rows_and_peak(path)
    assert [r[1] for r in rows[:3]] == ["1", None, None] and rows[-1][1] == "4"
    assert rows[1][2] is not None and rows[1][2].startswith(f"line of {BIG + 2:,} bytes")
    # the quoted field's record is one dead letter (its 400 lines came back as rows without
    # text before), the file goes on after it, and it is not held beyond a bound
    assert len(rows) == 4 and rows[2][2] == (
        "unreadable CSV row on line 4: a quoted field longer than the 262,144-character limit, "
        "in the record on lines 4-403; the record is set aside and reading goes on from line 404")
    assert peak < PEAK, peak


def test_a_gzip_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(BOMB_MIN_BYTES // (1 << 20) + 8):
            f.write(b"0" * (1 << 20))
    with pytest.raises(SourceError, match=r"refused as a decompression bomb; if the data is "
                                          r"genuine, decompress it"):
        list(FileSource(path).rows())
