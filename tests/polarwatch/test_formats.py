"""One `detect_format` for `ingest file` (JSONL/CSV/Parquet, .gz, no sniffing) and for `label` /
`train` (JSONL/CSV/TSV, plain, a name that says nothing is sniffed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.sources.base import SourceError
from ingest.sources.files import FORMATS as INGEST_FORMATS
from ingest.sources.files import FileSource
from polarwatch.errors import SchemaError
from polarwatch.formats import detect_format
from scoring.io import READ_FORMATS, iter_table


def ingest_format(path: Path) -> str:
    return detect_format(path, INGEST_FORMATS, gzip=True)


def scoring_format(path: Path) -> str:
    return detect_format(path, READ_FORMATS, sniff=True)


@pytest.mark.parametrize(("name", "fmt"), [
    ("x.jsonl", "jsonl"), ("x.ndjson", "jsonl"), ("x.JSON", "jsonl"), ("x.csv", "csv"),
    ("x.parquet", "parquet"), ("x.pq", "parquet"), ("x.jsonl.gz", "jsonl"),
    ("x.CSV.GZ", "csv"), ("dump.2024.ndjson.gz", "jsonl")])
def test_ingest_formats_from_the_name(name: str, fmt: str) -> None:
    assert ingest_format(Path(name)) == fmt


@pytest.mark.parametrize(("name", "match"), [
    ("x.txt", r"cannot tell the format of x\.txt from its name; pass --format "
              r"\(jsonl\|csv\|parquet\)"),
    ("x", "cannot tell the format"),
    ("x.gz", r"\.gz is read for jsonl, csv files .*decompress it and pass the plain file"),
    ("x.parquet.gz", r"decompress a parquet file and pass the plain file"),
    ("x.tsv", r"x\.tsv: tsv files cannot be read here; readable formats are jsonl, csv, "
              r"parquet")])
def test_ingest_refuses_names_it_cannot_read(name: str, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        ingest_format(Path(name))


def test_file_source_raises_its_own_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "posts.txt").write_text('{"id": "1"}\n')
    with pytest.raises(SourceError, match=r"posts\.txt from its name; pass --format"):
        FileSource(tmp_path / "posts.txt")
    assert FileSource(tmp_path / "posts.txt", fmt="jsonl").format == "jsonl"


@pytest.mark.parametrize(("name", "fmt"), [
    ("x.jsonl", "jsonl"), ("x.ndjson", "jsonl"), ("x.json", "jsonl"), ("x.csv", "csv"),
    ("x.tsv", "tsv")])
def test_scoring_formats_from_the_name(tmp_path: Path, name: str, fmt: str) -> None:
    (tmp_path / name).write_text("")
    assert scoring_format(tmp_path / name) == fmt


@pytest.mark.parametrize(("head", "fmt"), [
    ('\n\n  {"id": "1", "text": "a"}\n', "jsonl"), ("id,text\n1,a\n", "csv"), ("", "csv")])
def test_scoring_sniffs_a_name_that_says_nothing(tmp_path: Path, head: str, fmt: str) -> None:
    for name in ("posts.txt", "posts"):
        (tmp_path / name).write_text(head)
        assert scoring_format(tmp_path / name) == fmt


@pytest.mark.parametrize(("name", "match"), [
    ("posts.parquet", r"parquet files cannot be read here; readable formats are jsonl, csv, "
                      r"tsv"),
    ("posts.jsonl.gz", r"compressed input cannot be read here; decompress it first")])
def test_scoring_refuses_what_it_would_misread(tmp_path: Path, name: str, match: str) -> None:
    (tmp_path / name).write_bytes(b'{"id": "1"}\n')  # sniffing would have said jsonl / csv
    with pytest.raises(SchemaError, match=match):
        list(iter_table(tmp_path / name, ("id",)))


def test_tsv_is_read_with_tabs(tmp_path: Path) -> None:
    (tmp_path / "posts.tsv").write_text("id\ttext\n1\ta, b\n")
    rows = [row for _, row, _ in iter_table(tmp_path / "posts.tsv", ("id", "text"))]
    assert rows == [{"id": "1", "text": "a, b"}]
