"""The format of an input file, from its name (or its first bytes): one answer for every reader.

``ingest file`` reads JSONL, CSV and Parquet, plain or ``.gz`` (Parquet compresses inside);
``label`` and ``train`` read JSONL, CSV and TSV, plain, and sniff a file whose name says
nothing. Each caller passes what it reads; a name that maps to something else is refused with
the formats it does read, never read as the wrong one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
