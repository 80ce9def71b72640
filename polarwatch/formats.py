"""The format of an input file, from its name (or its first bytes): one answer for every reader;
and CSV records read so that a stray quote costs one row (:func:`csv_records`); why a JSON
line with a number too long for Python cannot be read (:func:`long_number`).

``ingest file`` reads JSONL, CSV and Parquet, plain or ``.gz`` (Parquet compresses inside);
``label`` and ``train`` read JSONL, CSV and TSV, plain, and sniff a file whose name says
nothing. Each caller passes what it reads; a name that maps to something else is refused with
the formats it does read, never read as the wrong one.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from polarwatch.errors import SchemaError

FORMATS = ("jsonl", "csv", "tsv", "parquet")
SUFFIXES: dict[str, str] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
                            ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
TEXT_FORMATS = ("jsonl", "csv", "tsv")  # the ones a .gz can hold line by line
SNIFF_CHARS = 4096  # read to find the first non-blank character of an unnamed file


def detect_format(path: Path, accepted: Sequence[str] = FORMATS, *, gzip: bool = False,
                  sniff: bool = False) -> str:
    """The format of ``path`` from its suffix (a trailing ``.gz`` is looked through when the
    caller reads ``gzip``), one of ``accepted``; raises SchemaError naming the file otherwise.

    With ``sniff``, a plain file whose suffix names no format is JSONL when its first
    non-blank character is ``{`` and CSV otherwise.
    """
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes.pop()
    fmt = SUFFIXES.get(suffixes[-1] if suffixes else "")
    if compressed and not gzip:
        raise SchemaError(f"{path}: compressed input cannot be read here; decompress it first")
    if compressed and fmt not in TEXT_FORMATS:
        gz = [f for f in accepted if f in TEXT_FORMATS]
        raise SchemaError(f"{path}: .gz is read for {', '.join(gz)} files (name it e.g. "
                          f"posts.{gz[0] if gz else 'jsonl'}.gz); decompress "
                          f"{'a ' + fmt + ' file' if fmt else 'it'} and pass the plain file")
    if fmt is None and sniff:
        with path.open(encoding="utf-8", errors="replace") as fh:
            fmt = "jsonl" if fh.read(SNIFF_CHARS).lstrip().startswith("{") else "csv"
    if fmt is None:
        raise SchemaError(f"cannot tell the format of {path} from its name; pass --format "
                          f"({'|'.join(accepted)})")
    if fmt not in accepted:
        raise SchemaError(f"{path}: {fmt} files cannot be read here; readable formats are "
                          f"{', '.join(accepted)}")
    return fmt


class CsvRecord(NamedTuple):
    """One record of a CSV file: the line it starts on, its fields (None when unreadable), the
    text it was read from, and why it is unreadable (None when it is not)."""

    line: int
    fields: list[str] | None
    text: str
    error: str | None


class _Lines:
    """Numbered lines that can be given back: what a CSV reader reads, and what it took."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.source = enumerate(lines, 1)
        self.back: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        item = self.back.popleft() if self.back else next(self.source)
        self.taken.append(item)
        return item[1]

    def pull(self) -> tuple[int, str] | None:
        """The next numbered line, not recorded as taken; None at the end."""
        return self.back.popleft() if self.back else next(self.source, None)


def _well_quoted(text: str, dialect: str) -> bool:
    """True when `text` reads as one CSV record under the strict rules: every quoted field
    closes before the end, and each closing quote is followed by a delimiter or the line's end.
    A stray quote instead ends at the end of the file or at the next quote character, which in
    a row of other fields stands inside a field ("a "quoted" word")."""
    try:
        return len(list(csv.reader(io.StringIO(text, newline=""), dialect=dialect,
                                   strict=True))) == 1
    except csv.Error:
        return False


# How far a quoted field is followed to its closing quote, in characters (csv_records); a
# quote still open then is taken for a stray one. Its lines are held until it closes (to be
# given back if it is no record) and read again as one: 1 MiB of text costs ~6.5 MiB here.
LONG_FIELD_FOLLOW = 1024 * 1024


def _past_long_field(src: _Lines, taken: list[tuple[int, str]], error: str | None,
                     width: int | None, dialect: str) -> int | None:
    """After the reader stopped inside a quoted field longer than ``csv.field_size_limit()``:
    take the lines up to the one where that field's quote closes and return its number, so the
    whole record is one dead letter (before, every line of a 350 KB quoted text came back as a
    row of its own). The lines must read as one well-quoted record of the header's width. None,
    with the lines given back, when the reader stopped for another reason, or the quote does not
    close within :data:`LONG_FIELD_FOLLOW` characters, or what it closes is no such record (a
    stray quote: :func:`csv_records` then sets its first line aside)."""
    if not taken or error is None or not error.startswith("field larger than field limit"):
        return None
    quote = csv.get_dialect(dialect).quotechar or '"'
    record = list(taken)
    closed = sum(t.count(quote) for _, t in taken) % 2 == 0  # on the last line taken
    size = sum(len(t) for _, t in taken)
    while not closed and size <= LONG_FIELD_FOLLOW and (item := src.pull()) is not None:
        record.append(item)
        size += len(item[1])
        closed = item[1].count(quote) % 2 == 1  # a doubled quote counts twice
    rows: list[list[str]] = []
    if closed:
        limit = csv.field_size_limit()
        csv.field_size_limit(size + 1)
        try:
            rows = list(csv.reader((t for _, t in record), dialect=dialect, strict=True))
        except csv.Error:
            pass
        finally:
            csv.field_size_limit(limit)
    if len(rows) == 1 and width in (None, len(rows[0])):
        return record[-1][0]
    src.back.extendleft(reversed(record[len(taken):]))
    return None


def csv_records(lines: Iterable[str], dialect: str = "excel") -> Iterator[CsvRecord]:
    """Every CSV record of `lines` (the header first; blank lines skipped).

    A quote that never closes makes one record of everything up to the next quote character,
    or the end of the file. So a record that runs over several lines, has a field count other
    than the header's (or cannot be read at all) and is not well quoted (:func:`_well_quoted`:
    its stray quote ends inside a field, or at the end of the file) comes back as its first line
    alone, with that reason, and reading goes on from the line after it: one stray quote costs
    one row, not the rest of the file. A record that fits on one line is given as it is,
    whatever its count, and so is a well-quoted one over several lines: the lines of a quoted
    text are never read as rows of their own. A quoted field over ``csv.field_size_limit()``
    that runs over many lines is one record with its reason, up to the line where its quote
    closes (followed at most 1 MiB: :func:`_past_long_field`), never its lines as rows.
    """
    src = _Lines(lines)
    reader = csv.reader(src, dialect=dialect)
    width: int | None = None
    while True:
        src.taken = []
        try:
            fields: list[str] | None = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:  # a field over csv.field_size_limit(), ...
            fields, error = None, str(exc)
        taken = src.taken
        if fields is None and (end := _past_long_field(src, taken, error, width, dialect)):
            reader = csv.reader(src, dialect=dialect)
            first, text = taken[0]
            yield CsvRecord(first, None, text, (
                f"a quoted field longer than the {csv.field_size_limit():,}-character limit, in "
                f"the record on line{f's {first:,}-{end:,}' if end > first else f' {first:,}'}; "
                f"the record is set aside and reading goes on from line {end + 1:,}"))
            continue
        if len(taken) > 1 and (fields is None or width is not None and len(fields) != width
                               and not _well_quoted("".join(t for _, t in taken), dialect)):
            (first, text), rest = taken[0], taken[1:]
            src.back.extendleft(reversed(rest))
            reader = csv.reader(src, dialect=dialect)
            found = error if fields is None else f"{len(fields)} fields where the header has {width}"
            yield CsvRecord(first, None, text, (
                f"unterminated quote: the quoted field opened on line {first:,} runs on over "
                f"{len(rest):,} more line(s) ({found}); line {first:,} is set aside and reading "
                f"goes on from line {first + 1:,}"))
            continue
        if fields == []:
            continue
        if width is None and fields is not None:
            width = len(fields)
        yield CsvRecord(taken[0][0] if taken else 0, fields, "".join(t for _, t in taken), error)


def long_number(line: str) -> str | None:
    """Why valid JSON holding a number of more digits than Python converts
    (``sys.get_int_max_str_digits()``, 4,300 by default) cannot be read, naming its column and
    length; None when ``line`` holds no such number. (Python's own message tells a programmer
    to raise the limit, not a producer what to send.)"""
    limit = sys.get_int_max_str_digits()
    long = re.search(rf"[:,\[]\s*(-?)([0-9]{{{limit + 1},}})", line) if limit else None
    if long is None:
        return None
    return (f"a JSON number of {len(long.group(2)):,} digits at column {long.start(1) + 1}, more "
            f"than the {limit:,} Python reads; write it as a string (\"...\") if it is an id")
