"""Files that are damaged or read differently on a second run: a CSV quote that never closes,
bytes that are not UTF-8, a truncated .gz, a file that is not Parquet, rows appended after a
run, and a run resumed with other reading options. Each costs what it must and says so."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingest.sources.base import SourceError, pump
from ingest.sources.files import FileSource
from ingest.sources.mapping import RowMapper, parse_mapping
from ingest.sources.progress import open_progress, saver
from tests.ingest.test_files import FakeProducer, thread_rows, write_jsonl

HEADER = "id,platform,author_id,text,created_at,topic,conversation_id,parent_id\n"


def csv_line(i: int, text: str | None = None) -> str:
    return f"u{i},file,a,{text or f'gun control {i}'},2024-05-01T12:00:{i % 60:02d}Z,gun_control,cu,\n"


def read(path: Path) -> tuple[list[str], list[tuple[bytes, str]]]:
    """(ids of the posts, (raw, reason) of the dead letters) of a whole file."""
    posts, dead = [], []
    for rec in FileSource(path).records(None):
        if rec.error is not None:
            dead.append((bytes(rec.raw), rec.error))
        elif rec.post is not None:
            posts.append(rec.post["id"])
    return posts, dead


def test_a_quote_that_never_closes_costs_its_row_not_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text(HEADER + csv_line(0) + csv_line(1, '"he said ""guns"" are fine')
                    + "".join(csv_line(i) for i in range(2, 100))
                    + 'u100,file,a,"a field\nover two lines",2024-05-01T12:01:40Z,gun_control,cu,\n')
    posts, dead = read(path)
    assert posts == ["u0"] + [f"u{i}" for i in range(2, 101)]
    assert len(dead) == 1
    raw, reason = dead[0]
    assert raw.startswith(b'u1,file,a,"he said') and raw.count(b"\n") == 1
    assert reason.startswith("unreadable CSV row on line 3: unterminated quote: the quoted field "
                             "opened on line 3 runs on over 99 more line(s)")


def test_csv_bytes_that_are_not_utf8_are_a_dead_letter_with_those_bytes(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes((HEADER + csv_line(0)).encode() + csv_line(1, "caf\xe9").encode("latin-1")
                     + csv_line(2).encode())
    posts, dead = read(path)
    assert posts == ["u0", "u2"]
    assert dead == [(csv_line(1, "caf\xe9").encode("latin-1"),
                     "line 3 is not UTF-8 (byte 0xe9); save the file as UTF-8 and ingest it "
                     "again")]


def _gzipped_rows(n: int) -> bytes:
    rows = [{**r, "text": r["text"] + " " + "x" * 300} for r in thread_rows(n)]
    return gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in rows))


def test_a_truncated_gzip_stops_with_the_row_and_keeps_what_was_sent(tmp_path: Path) -> None:
    data = _gzipped_rows(2000)
    path = tmp_path / "t.jsonl.gz"
    path.write_bytes(data[:len(data) // 2])
    saved: list[Any] = []
    producer = FakeProducer()
    with pytest.raises(SourceError) as err:
        pump(FileSource(path).records(None), producer, topic="gun_control",
             checkpoint=saved.append, confirm_every=10**9)
    sent = len(producer.sent)
    assert 0 < sent < 2000
    assert saved == [sent]  # what was sent is confirmed before the error
    assert str(err.value).startswith(f"{path}: the gzip data ends early (a truncated file) "
                                     f"after {sent:,} row(s) (EOFError")
    assert str(err.value).endswith(f"(before it: {sent:,} posts sent, 0 dead-lettered, "
                                   f"progress saved)")


@pytest.mark.parametrize(("name", "data", "fmt", "said"), [
    ("x.jsonl.gz", b"this is plain text\n", None, "not a gzip file, though its name ends in .gz,"),
    ("c.parquet", b"PAR1garbage", None, "not a readable Parquet file"),
    ("p.jsonl", b'{"id": "p1"}\n', "parquet", "not a readable Parquet file"),
])
def test_a_file_that_is_not_what_it_says_is_a_clear_error(
        tmp_path: Path, name: str, data: bytes, fmt: str | None, said: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(SourceError, match=f"^{path}: {said} at its start"):
        list(FileSource(path, fmt).records(None))


def test_a_csv_row_with_more_fields_than_the_header_is_a_dead_letter_not_cut(
        tmp_path: Path) -> None:
    """An unquoted comma in a text split it into fields past the header, and they were dropped:
    "gun control, background checks, and red flag laws" stored as "gun control". Empty extra
    fields (a trailing comma) lose nothing and are read as before."""
    last = tmp_path / "text_last.csv"  # the audit's file: a post "gun control", no word said
    last.write_text("id,author_id,created_at,text\n"
                    "w1,u,2024-05-01T10:00:00Z,gun control, background checks, and red flags\n")
    assert read(last)[0] == []
    path = tmp_path / "a.csv"
    path.write_text(HEADER + csv_line(1, "gun control, background checks, and red flag laws")
                    + csv_line(2) + csv_line(3).replace("\n", ",,\n"))
    posts, dead = read(path)
    assert posts == ["u2", "u3"]
    assert [reason for _, reason in dead] == [
        "line 2 has 10 fields and the header 8: the fields past the header would be lost; quote "
        "a field that holds a comma"]
    assert dead[0][0].startswith(b"u1,file,a,gun control, background checks")


@pytest.mark.parametrize("name", ["a.jsonl", "a.csv", "a.jsonl.gz", "a.csv.gz"])
@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_utf16_or_utf32_file_is_refused_before_anything_is_sent(
        tmp_path: Path, name: str, encoding: str) -> None:
    """Ingest read such a JSONL file's first line as a post and dead-lettered the rest one by
    one (with a stray NUL record), and told a CSV file's owner to --map columns named
    '\\udcff\\udcfei\\x00d\\x00' (the audit); `polarwatch label` already said what it is."""
    text = (HEADER + csv_line(1) if ".csv" in name
            else "".join(json.dumps(r) + "\n" for r in thread_rows(3)))
    data = text.encode(encoding)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    said = "the file is UTF-16 or UTF-32 .*; save it as UTF-8 and ingest it again"
    with pytest.raises(SourceError, match=f"^{re.escape(str(path))}: {said}; nothing was sent$"):
        FileSource(path).check_columns()
    with pytest.raises(SourceError, match=f"^{re.escape(str(path))}: {said}$"):
        list(FileSource(path).records(None))


def test_rows_appended_after_a_run_are_read_on_resume(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", thread_rows(3))  # far below the 64 KiB hashed
    src = FileSource(path)
    saver(open_progress(src, tmp_path, "posts"), src)(3)
    with path.open("a") as f:
        f.write(json.dumps(thread_rows(4)[3]) + "\n")
    resumed = open_progress(FileSource(path), tmp_path, "posts")
    assert resumed.position == 3
    assert [r.post["id"] for r in FileSource(path).records(3) if not r.replayed
            and r.post is not None] == ["p3"]
    path.write_text(path.read_text().replace("p0", "q0"))  # a changed start is still refused
    with pytest.raises(SourceError, match="changed since rows 1-3 were ingested"):
        open_progress(FileSource(path), tmp_path, "posts")


def test_a_file_rewritten_or_cut_past_its_first_64_kib_is_not_resumed(tmp_path: Path) -> None:
    """The fingerprint covers the whole file as it was read, not only its first 64 KiB: rows
    1,000-1,999 rewritten (the audit's case: resuming after row 2,000 skipped 1,000 new rows
    silently) or the file cut short is refused; rows appended to a large file still resume."""
    rows = thread_rows(2_500)
    path = write_jsonl(tmp_path / "a.jsonl", rows[:2_000])
    assert path.stat().st_size > 2 * 64 * 1024
    src = FileSource(path)
    saver(open_progress(src, tmp_path, "posts"), src)(2_000)
    write_jsonl(path, rows)  # appended: resumed
    assert open_progress(FileSource(path), tmp_path, "posts").position == 2_000
    renamed = [dict(r, id=f"new{i}") for i, r in enumerate(rows[1_000:])]
    write_jsonl(path, rows[:1_000] + renamed)  # longer than before, its start unchanged
    with pytest.raises(SourceError, match=r"changed since rows 1-2,000 were ingested: they "
                                          r"were read from its first [\d,]+ bytes, and it holds "
                                          r"other bytes now .*--restart"):
        open_progress(FileSource(path), tmp_path, "posts")
    write_jsonl(path, rows[:1_500])
    with pytest.raises(SourceError, match=r"and it is [\d,]+ bytes now"):
        open_progress(FileSource(path), tmp_path, "posts")
    assert open_progress(FileSource(path), tmp_path, "posts", restart=True).position == 0


@pytest.mark.parametrize("saved", [{"position": "3 rows"}, {"position": 3, "fingerprint_bytes": -1},
                                   {"position": True}, [1, 2]])
def test_a_progress_file_of_other_types_is_refused_not_a_traceback(
        tmp_path: Path, saved: Any) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", thread_rows(3))
    progress = open_progress(FileSource(path), tmp_path, "posts")
    progress.checkpoint.path.parent.mkdir(parents=True, exist_ok=True)
    progress.checkpoint.path.write_text(json.dumps(saved))
    with pytest.raises(SourceError, match=r"progress file .* is damaged .*--restart"):
        open_progress(FileSource(path), tmp_path, "posts")


def test_a_resume_with_other_reading_options_is_refused(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", thread_rows(3))
    first = FileSource(path)
    saver(open_progress(first, tmp_path, "posts"), first)(2)
    assert open_progress(FileSource(path), tmp_path, "posts").position == 2  # same options
    for other, what in [(RowMapper(assume_utc=True), "--assume-utc"),
                        (RowMapper(parse_mapping("text=body")), "column mapping")]:
        with pytest.raises(SourceError, match=f"rows 1-2 were read with other {what} than this "
                                              f"run's .*pass --restart"):
            open_progress(FileSource(path, mapper=other), tmp_path, "posts")
    restarted = FileSource(path, mapper=RowMapper(assume_utc=True))
    assert open_progress(restarted, tmp_path, "posts", restart=True).position == 0
