"""A Kafka record's value as the text the stream parses, or why it cannot be a post."""

from __future__ import annotations

import codecs
import json

from polarwatch.records import MAX_DEAD_LETTER_BYTES, MAX_RECORD_BYTES


def decode_value(raw: bytes | None) -> tuple[str, str | None, int]:
    """(value as text, why it cannot be a post or None, its size in bytes): a value over
    MAX_RECORD_BYTES is kept only as far as a dead letter keeps it; a value that is not UTF-8
    is a dead letter naming the first bad byte and its offset, in the words ``ingest file``
    uses for the same bytes (json.loads' error), never a post with U+FFFD in place of them.
    A leading UTF-8 byte-order mark is dropped, as `ingest file` drops it from a file; UTF-16
    and UTF-32 (which JSON between systems must not use, RFC 8259 §8.1) are named as such."""
    raw = raw or b""
    if len(raw) > MAX_RECORD_BYTES:
        return (raw[:MAX_DEAD_LETTER_BYTES].decode("utf-8", "replace"),
                f"record: {len(raw):,} bytes, more than the {MAX_RECORD_BYTES:,} allowed",
                len(raw))
    encoding = json.detect_encoding(raw)
    if encoding not in ("utf-8", "utf-8-sig") and _is_json_in(raw, encoding):
        return (raw[:MAX_DEAD_LETTER_BYTES].decode(encoding, "replace"),
                f"malformed JSON: the value is {encoding.upper()}; send posts as UTF-8",
                len(raw))
    bom = len(codecs.BOM_UTF8) if encoding == "utf-8-sig" else 0
    try:
        return raw[bom:].decode("utf-8"), None, len(raw)
    except UnicodeDecodeError as exc:  # shown with U+FFFD: the dead letter's raw is text
        return raw.decode("utf-8", "replace"), f"malformed JSON: {exc}", len(raw)


def _is_json_in(raw: bytes, encoding: str) -> bool:
    """Whether `raw` reads as a JSON object in `encoding` (its zero bytes made json guess it),
    rather than another binary format that starts with a zero byte (Confluent's Avro does)."""
    try:
        return raw.decode(encoding).lstrip("\ufeff \t\r\n").startswith("{")
    except UnicodeDecodeError:
        return False
