"""Posts from files: JSONL, CSV and Parquet; rows of other schemas are mapped to posts by
:mod:`ingest.sources.mapping`.

The position of a file source is the number of rows consumed. A progress file
(:mod:`ingest.sources.progress`) keyed by the file's absolute path and the posts topic records
the last *confirmed* row, with a fingerprint of the file as it was read (its bytes up to its size
then) so a file changed or cut short since is not silently resumed (rows appended are fine), and
the broker offsets that row's delivery reached.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ingest.sources.base import (
    Position,
    Source,
    SourceError,
    SourceRecord,
)
from ingest.sources.mapping import (
    MAPPING_ERRORS,
    RowMapper,
    duplicated_columns,
    has_column,
    missing_columns_error,
    required_columns,
)
from polarwatch.errors import SchemaError
from polarwatch.formats import csv_records, detect_format
from polarwatch.records import MAX_DEAD_LETTER_BYTES, MAX_RECORD_BYTES
from polarwatch.validation import (
    REQUIRED_FIELDS,
    cut_reason,
    empty_reason,
    missing_reason,
    parse_record,
)

FORMATS = ("jsonl", "csv", "parquet")  # JSONL and CSV also .gz (polarwatch.formats)
FINGERPRINT_BYTES = 64 * 1024  # what progress files before 2026-12-07 hashed: the first 64 KiB
HASH_CHUNK = 1 << 20
# A line (JSONL) or CSV field longer than one record may be is dead-lettered, and only its first
# MAX_DEAD_LETTER_BYTES are held: the rest is skipped in chunks, never read into memory whole.
MAX_LINE_BYTES = MAX_RECORD_BYTES
SKIP_CHUNK = 1 << 20
# A .gz file that expands past BOMB_MIN_BYTES at more than BOMB_RATIO x its compressed size is
# refused (text compresses about 5-10x; a decompression bomb 1,000x).
BOMB_RATIO, BOMB_MIN_BYTES = 200, 256 * 1024 * 1024


def fingerprint(path: Path, size: int = FINGERPRINT_BYTES) -> str:
    """The SHA-1 of the file's first `size` bytes (all of them, if it holds fewer), read in
    chunks (about 1 s per GB here)."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while size > 0 and (chunk := f.read(min(HASH_CHUNK, size))):
            digest.update(chunk)
            size -= len(chunk)
    return digest.hexdigest()


class DecompressionBomb(SourceError):
    """A .gz file refused by :class:`_BombGuard`: never a reason to read on."""


class _BombGuard(gzip.GzipFile):
    """A .gz reader that stops with a SourceError once the output outgrows the input by more
    than BOMB_RATIO (past BOMB_MIN_BYTES)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "rb")
        self.path, self.out = path, 0
        self.size = max(1, path.stat().st_size)

    def _checked(self, data: bytes) -> bytes:
        self.out += len(data)
        if self.out > BOMB_MIN_BYTES and self.out > BOMB_RATIO * self.size:
            raise DecompressionBomb(f"{self.path}: {self.size:,} compressed bytes expand past "
                              f"{self.out:,} ({BOMB_RATIO}x): refused as a decompression bomb; "
                              f"if the data is genuine, decompress it and ingest the plain file")
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._checked(super().read(size))

    def read1(self, size: int = -1) -> bytes:
        return self._checked(super().read1(size))

    def readline(self, size: int | None = -1) -> bytes:
        return self._checked(super().readline(size))


class WideText(SourceError):
    """A JSONL or CSV file in UTF-16 or UTF-32: every line would be a dead letter."""


def _open_binary(path: Path) -> IO[bytes]:
    """The file's bytes (decompressed for .gz); one that starts with a UTF-16 or UTF-32
    byte-order mark is refused (:class:`WideText`), since no line of it would decode."""
    f: Any = _BombGuard(path) if path.suffix.lower() == ".gz" else open(path, "rb")  # noqa: SIM115 (the caller closes)
    try:
        wide = f.peek(4)[:4].startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    except BaseException:
        f.close()
        raise
    if wide:
        f.close()
        raise WideText(f"{path}: the file is UTF-16 or UTF-32 (it starts with that byte-order "
                       f"mark); save it as UTF-8 and ingest it again")
    return f


def bounded_lines(f: IO[Any], limit: int = MAX_LINE_BYTES) -> Iterator[tuple[Any, int, bool]]:
    """(line, size, too_long) for each line of `f` (bytes or text): a line longer than `limit`
    comes back cut to MAX_DEAD_LETTER_BYTES with its full size and ``too_long``; the rest of it
    is skipped in chunks, so memory stays bounded whatever the file holds."""
    newline = b"\n" if isinstance(f.read(0), bytes) else "\n"
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(newline):
            yield line, len(line), False
            continue
        head, size = line[:MAX_DEAD_LETTER_BYTES], len(line)
        while line and not line.endswith(newline):
            line = f.readline(SKIP_CHUNK)
            size += len(line)
        ending = len(line) - len(line.rstrip("\r\n" if newline == "\n" else b"\r\n"))
        yield head, size - ending, True  # the size of the line's content, as a record's


class Cut(bytes):
    """The kept start of an overlong line; ``size`` is the whole line's."""

    size: int

    def __new__(cls, head: bytes, size: int) -> Cut:
        cut = super().__new__(cls, head)
        cut.size = size
        return cut


def too_long(size: int, what: str = "line") -> str:
    return (f"{what} of {size:,} bytes, more than the {MAX_LINE_BYTES:,} one record may hold "
            f"(only its first {MAX_DEAD_LETTER_BYTES:,} are kept here)")


class FileSource(Source):
    """Rows of one file, mapped to posts; position = rows consumed so far."""

    def __init__(self, path: str | Path, fmt: str | None = None,
                 mapper: RowMapper | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"{self.path} does not exist or is not a file")
        try:
            self.format = fmt or detect_format(self.path, FORMATS, gzip=True)
        except SchemaError as exc:
            raise SourceError(str(exc)) from exc
        if self.format not in FORMATS:
            raise SourceError(f"unknown format {self.format!r}; valid formats are {FORMATS}")
        self.mapper = mapper or RowMapper()
        self.name = f"file:{self.path.resolve()}"

    def rows(self) -> Iterator[tuple[bytes, dict[str, Any] | None, str | None]]:
        """(original bytes, row dict or None, error or None) for every row of the file; a file
        that cannot be read on (damaged gzip, not Parquet) raises SourceError saying where."""
        n = 0
        try:
            for n, row in enumerate(self._rows(), 1):  # noqa: B007 (n says where it broke)
                yield row
        except (OSError, EOFError, zlib.error, ValueError) as exc:  # BadGzipFile, ArrowInvalid
            where = f"after {n:,} row(s)" if n else "at its start"
            raise SourceError(f"{self.path}: {_broken(exc, self.format)} {where} "
                              f"({type(exc).__name__}: {exc}); repair or re-export the file, "
                              f"then run the same command again to go on from there") from None

    def _rows(self) -> Iterator[tuple[bytes, dict[str, Any] | None, str | None]]:
        if self.format == "jsonl":
            with _open_binary(self.path) as f:
                for line, size, cut in bounded_lines(f):
                    raw = line.rstrip(b"\r\n")
                    if cut:
                        yield Cut(raw, size), None, too_long(size)
                        continue
                    if not raw.strip():
                        yield raw, None, None
                        continue
                    obj, reason = parse_record(raw)
                    if reason is not None:
                        yield raw, None, reason
                        continue
                    if isinstance(obj, dict):
                        yield raw, obj, None
                    else:
                        yield raw, None, f"expected a JSON object, got {type(obj).__name__}"
        elif self.format == "csv":
            with _open_text(self.path) as f:
                yield from _csv_rows(f)
        else:
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(self.path)
            for batch in pf.iter_batches(batch_size=4096):
                for row in batch.to_pylist():
                    yield _row_bytes(row), row, None

    def records(self, position: Position | None) -> Iterator[SourceRecord]:
        done = int(position or 0)
        for i, (raw, row, error) in enumerate(self.rows(), 1):
            post = None
            if row is not None:
                try:
                    post = self.mapper(row)
                except MAPPING_ERRORS as exc:  # this row is dead-lettered, the file goes on
                    error = cut_reason(str(exc) if isinstance(exc, ValueError)
                                       else f"cannot map the row: {type(exc).__name__}: {exc}")
                if post is not None and (error := _without_text(post)) is not None:
                    post = None
            yield SourceRecord(i, post, raw, error, replayed=i <= done,
                               raw_size=raw.size if isinstance(raw, Cut) else None)

    def check_columns(self) -> None:
        """Raise SourceError when no row has the column of a post field the mapping reads from
        one (:func:`~ingest.sources.mapping.required_columns`): every row would be lost. Reads
        the CSV header, the Parquet schema, or JSONL rows until they hold them all (the whole
        file when one is in none). A file that cannot be read is left to :meth:`rows`; a .gz
        bomb is refused here (:class:`DecompressionBomb`), before any row is dead-lettered."""
        wanted, found = required_columns(self.mapper.mapping), dict[str, None]()

        def missing() -> list[str]:
            return [f for f, cols in wanted.items() if not any(has_column(found, c) for c in cols)]

        twice = None  # a CSV header or Parquet schema naming a column it reads twice
        try:
            for keys in self._columns():
                if self.format != "jsonl" and (twice := duplicated_columns(
                        self.mapper.mapping, [str(k) for k in keys])):
                    break
                found.update(dict.fromkeys(keys))
                if not missing():
                    return
        except (DecompressionBomb, WideText) as exc:  # rows() would dead-letter every row
            raise type(exc)(f"{exc}; nothing was sent") from None
        except (OSError, EOFError, zlib.error, ValueError, SourceError):
            return
        if twice:
            raise SourceError(f"{self.path}: {twice}")
        if not found or not missing():  # no row at all: nothing is lost
            return
        names = [str(k) for k in found]
        if self.format == "csv" and names[0].lstrip().startswith("{"):
            raise SourceError(f"{self.path}: its first line is a JSON object, not a CSV header: "
                              f"read it as JSONL (--format jsonl); nothing was sent")
        raise SourceError(f"{self.path}: "
                          f"{missing_columns_error(self.mapper.mapping, names, missing())}")

    def _columns(self) -> Iterator[list[str]]:
        """The column names of the file (CSV, Parquet), or of each JSONL row."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            yield list(pq.ParquetFile(self.path).schema_arrow.names)
            return
        if self.format == "csv":
            with _open_text(self.path) as f:  # the header: the first record (unreadable: none)
                header = next(csv_records(line for line, _, _ in bounded_lines(f)), None)
            yield (header.fields or []) if header else []
            return
        with _open_binary(self.path) as b:
            for line, _, over in bounded_lines(b):
                obj = None if over else parse_record(line)[0]
                if isinstance(obj, dict):
                    yield list(obj)

    def checkpoint_key(self) -> str:
        return str(self.path.resolve())


def _without_text(post: dict[str, Any]) -> str | None:
    """Why a mapped post without a text (absent or "") is a dead letter, as the producer would
    say it; None when it has one. Rows without text are never routed: no topic is no reason."""
    if post.get("text"):
        return None
    missing = [f for f in REQUIRED_FIELDS if f not in post and f != "topic"]  # routed later
    return missing_reason(missing) if missing else empty_reason("text")


def _broken(exc: BaseException, fmt: str) -> str:
    if isinstance(exc, gzip.BadGzipFile):
        return "not a gzip file, though its name ends in .gz,"
    if isinstance(exc, EOFError):
        return "the gzip data ends early (a truncated file)"
    if isinstance(exc, zlib.error):
        return "the gzip data is damaged"
    if fmt == "parquet" and not isinstance(exc, OSError):
        return "not a readable Parquet file"
    return "the file could not be read on"


def _open_text(path: Path) -> IO[str]:
    # bytes that are not UTF-8 stay recoverable (surrogateescape): such a row is dead-lettered
    # with its own bytes, never read with U+FFFD in place of them
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", errors="surrogateescape",
                            newline="")


def _csv_rows(f: IO[str]) -> Iterator[tuple[bytes, dict[str, Any] | None, str | None]]:
    """The rows of a CSV file, each line and field bounded: an overlong line or field, a line
    that is not UTF-8 and a quote that never closes are dead-lettered in their place and the
    file goes on (:func:`polarwatch.formats.csv_records`)."""
    cut: list[tuple[str, int]] = []  # overlong lines met while the reader fetched a row

    def lines() -> Iterator[str]:
        for line, size, over in bounded_lines(f):
            if over:
                cut.append((line, size))
                yield "\n"  # an empty line: the reader skips it
            else:
                yield line

    csv.field_size_limit(MAX_LINE_BYTES)
    header: list[str] | None = None
    def overlong() -> Iterator[tuple[bytes, None, str]]:  # in their place, before the row
        for line, size in cut:
            yield Cut(_raw(line), size), None, too_long(size)
        cut.clear()

    for rec in csv_records(lines()):
        yield from overlong()
        bad = _NOT_UTF8.search(rec.text)
        if bad is not None:
            yield _raw(rec.text), None, (
                f"line {rec.line:,} is not UTF-8 (byte 0x{ord(bad.group()) - 0xDC00:02x}); "
                f"save the file as UTF-8 and ingest it again")
        elif rec.fields is None:
            yield _raw(rec.text), None, f"unreadable CSV row on line {rec.line:,}: {rec.error}"
        elif header is None:
            header = rec.fields
        elif any(rec.fields[len(header):]):  # empty ones (a trailing comma) are no loss
            yield _raw(rec.text), None, (
                f"line {rec.line:,} has {len(rec.fields):,} fields and the header "
                f"{len(header):,}: the fields past the header would be lost; quote a field "
                f"that holds a comma")
        else:
            row = _as_dict(header, rec.fields)
            yield _row_bytes(row), row, None
    yield from overlong()


_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, as surrogateescape keeps them


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _as_dict(header: list[str], fields: list[str]) -> dict[str, Any]:
    """A row as csv.DictReader gives it, missing fields None; extra fields (all empty: others
    are dead letters) are dropped."""
    row: dict[Any, Any] = dict(zip(header, fields, strict=False))
    row.update((k, None) for k in header[len(fields):])
    return row


def _row_bytes(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False, default=str).encode()
