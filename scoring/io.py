"""Batch files in and out: JSONL/CSV posts for ``polarwatch label``, labeled rows for ``train``.

Rows that cannot be used are returned as ``(line number, reason)`` next to the good rows — the
caller reports them; nothing is dropped silently. A file-level problem (missing columns, unknown
format, text that is not UTF-8) raises :class:`SchemaError` naming the file (and the lines).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from polarwatch.errors import SchemaError
from polarwatch.formats import csv_records, detect_format, long_number
from polarwatch.records import Labels, parent_or_root
from scoring.extractors.base import Extractor, PostPair
from scoring.rules import score_pair

POST_COLUMNS = ("id", "text", "topic")
OPTIONAL_POST_COLUMNS = ("parent_id", "parent_text", "created_at", "author_id")
Row = dict[str, str | None]
READ_FORMATS = ("jsonl", "csv", "tsv")  # plain files; a name that says nothing is sniffed
LISTED_LINES = 5  # line numbers quoted in a file-level error; the count is always complete
# A lone UTF-16 surrogate: JSON's \ud800 escape decodes to one, and UTF-8 cannot encode it (a
# valid pair decodes to one character beyond U+FFFF). Ingest dead-letters it (TEXT_FORBIDDEN).
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def check_utf8(path: Path) -> None:
    """Raise :class:`SchemaError` unless ``path`` is UTF-8 text (a UTF-8 byte-order mark is
    fine): a UTF-16/32 file, or lines with bytes that are not UTF-8, named by line number."""
    bad: list[int] = []
    with path.open("rb") as fh:
        if fh.read(4).startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise SchemaError(f"{path}: the file is UTF-16 or UTF-32 (it starts with that "
                              f"byte-order mark); save it as UTF-8")
        fh.seek(0)
        for line_no, raw in enumerate(fh, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                bad.append(line_no)
    if bad:
        listed = ", ".join(map(str, bad[:LISTED_LINES])) + (
            f" and {len(bad) - LISTED_LINES:,} more" if len(bad) > LISTED_LINES else "")
        raise SchemaError(f"{path}: {len(bad):,} line(s) hold bytes that are not UTF-8 (line(s) "
                          f"{listed}); save the file as UTF-8, or drop those bytes with "
                          f"`iconv -f utf-8 -t utf-8 -c`")


def skipped_reasons(skipped: Sequence[tuple[int, str]], listed: int = 3) -> str:
    """``(line, reason)`` rows counted by reason, the most common first: ``5 × missing label
    (first on line 1); ...`` (at most ``listed`` reasons, then how many other rows)."""
    by_reason: dict[str, list[int]] = {}
    for line, reason in skipped:
        by_reason.setdefault(reason, []).append(line)
    common = sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    parts = [f"{len(lines):,} × {reason} "
             + (f"(first on line {lines[0]})" if len(lines) > 1 else f"(line {lines[0]})")
             for reason, lines in common[:listed]]
    rest = sum(len(lines) for _, lines in common[listed:])
    return "; ".join(parts) + (f"; {rest:,} more row(s) for other reasons" if rest else "")


def _not_text(value: Any) -> str | None:
    """What a JSON value that cannot be a cell is ("a JSON boolean (true)", ...), or None when
    it can be one: a string, a number (it becomes a string) or null (absent)."""
    if isinstance(value, bool):  # a bool is an int to Python: checked first
        return f"a JSON boolean ({'true' if value else 'false'})"
    if value is None or isinstance(value, str | int | float):
        return None
    kinds: dict[type, str] = {dict: "a JSON object", list: "a JSON array"}
    return kinds.get(type(value), type(value).__name__)


def _json_problem(exc: json.JSONDecodeError) -> str:
    """json's complaint, once: its messages that end in "at" ("Invalid control character at")
    take the column directly; a raw control character is named, with its escape."""
    where = f"{exc.msg} column {exc.colno}" if exc.msg.endswith(" at") \
        else f"{exc.msg} at column {exc.colno}"
    if exc.msg.startswith("Invalid control character") and exc.pos < len(exc.doc):
        code = ord(exc.doc[exc.pos])
        where += (f" (a raw U+{code:04X} inside a string: JSON needs it escaped as "
                  f"\\u{code:04x})")
    return f"malformed JSON: {where}"


def _value_problem(line: str, exc: ValueError) -> str:
    """Why valid JSON could not be read: a number too long for Python (long_number)."""
    return long_number(line) or f"unreadable JSON: {exc}"


def iter_table(path: Path, required: Sequence[str], optional: Sequence[str] = ()
               ) -> Iterator[tuple[int, Row | None, str | None]]:
    """Yield ``(line, row, None)`` for usable rows and ``(line, None, reason)`` for the rest.

    ``row`` holds the required and optional columns (missing optional ones are None)."""
    if not path.is_file():
        raise SchemaError(f"input file {path} " + (
            "is a directory, not a file" if path.is_dir() else "does not exist"))
    wanted = (*required, *optional)
    fmt = detect_format(path, READ_FORMATS, sniff=True)
    check_utf8(path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if fmt == "jsonl":
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.rstrip("\r\n"))  # the line end is not in a string
                except json.JSONDecodeError as exc:
                    yield line_no, None, _json_problem(exc)
                    continue
                except RecursionError:
                    yield line_no, None, "JSON nested too deeply to read (posts are flat objects)"
                    continue
                except ValueError as exc:  # valid JSON Python will not convert (a huge number)
                    yield line_no, None, _value_problem(line, exc)
                    continue
                if not isinstance(obj, dict):
                    yield line_no, None, f"expected a JSON object, got {type(obj).__name__}"
                    continue
                yield line_no, *_check({k: obj.get(k) for k in wanted}, required)
            return
        records = csv_records(fh, "excel-tab" if fmt == "tsv" else "excel")
        first = next(records, None)
        header = first.fields or [] if first is not None else []
        missing = [c for c in required if c not in header]
        if missing:
            raise SchemaError(f"{path}: missing column(s) {', '.join(missing)}; the header has "
                              f"{', '.join(header) or 'no columns'} (required: "
                              f"{', '.join(required)})")
        for rec in records:  # a quote that never closes costs its line (csv_records)
            if rec.fields is None:
                yield rec.line, None, str(rec.error)
            elif len(rec.fields) > len(header):
                yield rec.line, None, f"{len(rec.fields)} fields, the header has {len(header)}"
            elif len(rec.fields) < len(header):
                yield rec.line, None, f"fewer fields than the {len(header)} in the header"
            else:
                cells = dict(zip(header, rec.fields, strict=True))
                yield rec.line, *_check({k: cells.get(k) or None for k in wanted}, required,
                                        empty_text_ok=True)


def _check(raw: dict[str, Any], required: Sequence[str], empty_text_ok: bool = False
           ) -> tuple[Row | None, str | None]:
    for key, value in raw.items():
        kind = _not_text(value)
        if kind is not None:
            return None, f"{key}: expected a string (or a number), got {kind}"
        lone = LONE_SURROGATE.search(value) if isinstance(value, str) else None
        if lone is not None:
            return None, (f"{key}: a lone UTF-16 surrogate (\\u{ord(lone.group()):04x} at "
                          f"character {lone.start() + 1}), which UTF-8 cannot encode; escape a "
                          f"character beyond U+FFFF as a pair (\\ud83d\\ude00) or drop it")
    row: Row = {k: None if v is None else str(v) for k, v in raw.items()}
    missing = [c for c in required if row.get(c) is None and not (c == "text" and empty_text_ok)]
    if missing:
        return None, f"missing {', '.join(missing)}"
    if "text" in row and row["text"] is None:
        row["text"] = ""
    return row, None


# --------------------------------------------------------------------------------------------
# Posts for `polarwatch label`


@dataclass(frozen=True, slots=True)
class InputPost:
    line: int
    id: str
    text: str
    topic: str
    parent_id: str | None
    parent_text: str | None


def read_posts(path: Path, topics: Sequence[str]
               ) -> tuple[list[InputPost], list[tuple[int, str]]]:
    """Good posts and ``(line, reason)`` for the rows that were skipped."""
    posts: list[InputPost] = []
    errors: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    known = set(topics)
    for line, row, reason in iter_table(path, POST_COLUMNS, OPTIONAL_POST_COLUMNS):
        if row is None:
            errors.append((line, reason or "unreadable"))
            continue
        pid, topic = str(row["id"]), str(row["topic"])
        if topic not in known:
            errors.append((line, f"topic {topic!r} is not configured (known: "
                                 f"{', '.join(sorted(known))}); pass --topics FILE"))
        elif pid in seen:
            errors.append((line, f"duplicate id {pid!r} (first on line {seen[pid]})"))
        else:
            seen[pid] = line  # an empty or self-naming parent_id is a root, as in the stream
            posts.append(InputPost(line, pid, row["text"] or "", topic,
                                   parent_or_root(pid, row["parent_id"]),
                                   row["parent_text"]))
    return posts, errors


def other_topic_parent(post: InputPost, by_id: dict[str, InputPost]) -> bool:
    """Whether `post` replies to a row of the file on another topic: never paired (the stream
    pairs a reply only with a parent of its own topic; stances on two topics do not compare)."""
    parent = by_id.get(post.parent_id) if post.parent_id is not None else None
    return parent is not None and parent.topic != post.topic


def unpaired_replies(posts: Sequence[InputPost]) -> int:
    """How many replies :func:`other_topic_parent` leaves unpaired."""
    by_id = {p.id: p for p in posts}
    return sum(other_topic_parent(p, by_id) for p in posts)


def to_pairs(posts: Sequence[InputPost]) -> list[PostPair]:
    """Parent text from the row, else from the parent's own row in the file; a reply whose
    parent is nowhere gets ``""`` (a reply with an unknown parent, as in the stream stage). A
    root (no, an empty or its own parent_id) has only a ``parent_text`` its row gives; a reply
    to another topic's row gets none."""
    by_id = {p.id: p for p in posts}
    pairs = []
    for p in posts:
        parent_text = p.parent_text
        if other_topic_parent(p, by_id):
            parent_text = None
        elif parent_text is None and p.parent_id is not None:
            parent = by_id.get(p.parent_id)
            parent_text = parent.text if parent is not None else ""
        pairs.append(PostPair(p.id, p.text, p.topic, parent_text))
    return pairs


def label_posts(posts: Sequence[InputPost], extractor: Extractor, batch_size: int = 256,
                on_batch: Callable[[int], None] | None = None) -> list[Labels]:
    """One Labels per post, in order, in batches of ``batch_size``."""
    pairs = to_pairs(posts)
    out: list[Labels] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        labels = extractor.extract(chunk)
        if len(labels) != len(chunk):
            raise SchemaError(f"backend {extractor.name} returned {len(labels)} labels for "
                              f"{len(chunk)} posts")
        out.extend(labels)
        if on_batch:
            on_batch(len(chunk))
    return out


def output_records(posts: Sequence[InputPost], labels: Sequence[Labels]
                   ) -> Iterator[dict[str, Any]]:
    """The output JSONL objects; ``interaction_score`` when the parent's row is in the file and
    of the same topic. Each carries the post's ``text`` and the ``parent_text`` its agreement
    was judged against (None for a root), so ``polarwatch train`` reads the file as it is."""
    by_id = {p.id: lab for p, lab in zip(posts, labels, strict=True)}
    post_of = {p.id: p for p in posts}
    pairs = to_pairs(posts)
    for post, lab, pair in zip(posts, labels, pairs, strict=True):
        score = rule = None
        parent = by_id.get(post.parent_id) if post.parent_id is not None else None
        if parent is not None and not other_topic_parent(post, post_of):
            scored = score_pair(lab.stance, parent.stance, lab.affect, parent.affect,
                                lab.agreement)
            if scored is not None:
                score, rule = scored
        yield {
            "id": post.id, "topic": post.topic, "parent_id": post.parent_id,
            "stance": lab.stance, "affect": lab.affect, "agreement": lab.agreement,
            "emotion": lab.emotion, "intensity": lab.intensity,
            "confidences": {"stance": lab.stance_conf, "affect": lab.affect_conf,
                            "agreement": lab.agreement_conf, "emotion": lab.emotion_conf},
            "interaction_score": score, "interaction_rule": rule, "backend": lab.backend,
            "explanation": lab.explanation, "text": post.text, "parent_text": pair.parent_text,
        }


def write_jsonl(records: Iterator[dict[str, Any]], out: IO[str]) -> int:
    """Write one JSON object a line (UTF-8 as it is); a record holding a lone surrogate (a
    backend's explanation: input rows with one are skipped) is written with it escaped
    (``\\ud800``, as ASCII JSON), never left to fail the encoding part-way through the file."""
    n = 0
    for rec in records:
        line = json.dumps(rec, ensure_ascii=False)
        if LONE_SURROGATE.search(line):
            line = json.dumps(rec)
        out.write(line + "\n")
        n += 1
    return n
