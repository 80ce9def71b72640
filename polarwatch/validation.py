"""Where bytes come in: parse a raw record and check it against the record contract.

Every reason returned here is one line naming the field and what is wrong with it; the caller
dead-letters the record with it (ingest, the stream) or raises :class:`SchemaError`
(:func:`post_from_dict`). Nothing here raises on hostile input.
"""

from __future__ import annotations

import json
import re
import reprlib
from datetime import UTC, datetime, timedelta
from typing import Any

from polarwatch.errors import SchemaError
from polarwatch.formats import long_number
from polarwatch.records import (
    DEFAULT_MAX_FUTURE_SKEW,
    MAX_DEAD_LETTER_BYTES,
    MAX_NESTING,
    MAX_REASON_CHARS,
    MAX_RECORD_BYTES,
    MIN_CREATED_AT,
    Post,
    parent_or_root,
)
from polarwatch.schemas import fields_of, json_schema

_POST_SCHEMA = json_schema(Post)
REQUIRED_FIELDS: tuple[str, ...] = tuple(_POST_SCHEMA["required"])
_REQUIRED = ", ".join(REQUIRED_FIELDS)
_ISO_DATE = re.compile(r"^\d{4}-\d\d-\d\d")  # from_iso upper-cases such a text
_PATTERN_HEAD = "^(?![\\s\\S]*"  # json_schema writes "forbidden nowhere" as ^(?![\s\S]*[...])
_schema_check: Any = None


def _first_error(obj: dict[str, Any]) -> Any:
    """fastjsonschema's first error for `obj` against the Post schema, or None. ``date-time``
    is left to :func:`parse_created_at`, which names what is wrong with a timestamp."""
    global _schema_check
    import fastjsonschema

    if _schema_check is None:
        _schema_check = fastjsonschema.compile(_POST_SCHEMA, formats={"date-time": lambda _: True})
    try:
        _schema_check(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        return exc
    return None


_JSON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,),
                                             "number": (int, float), "null": (type(None),)}
FastCheck = tuple[str, bool, tuple[type, ...], frozenset | None, int, int, Any, float, float]


def _compile_fast_checks(schema: dict[str, Any]) -> list[FastCheck]:
    """Per property: (name, required, python types, enum, minLength, maxLength, forbidden
    characters, minimum, maximum), derived from the JSON Schema so the fast path can only be
    stricter than the schema, never looser."""
    checks = []
    for name, prop in schema["properties"].items():
        kinds = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        types = tuple(t for k in kinds for t in _JSON_TYPES[k])
        enum = frozenset(prop["enum"]) if "enum" in prop else None
        forbidden = None
        if "pattern" in prop:  # ^(?![\s\S]*[...]): search for the class itself
            forbidden = re.compile(prop["pattern"][len(_PATTERN_HEAD):-1])
        checks.append((name, name in schema["required"], types, enum,
                       prop.get("minLength", 0), prop.get("maxLength", 1 << 62), forbidden,
                       prop.get("minimum", float("-inf")), prop.get("maximum", float("inf"))))
    return checks


_FAST_CHECKS = _compile_fast_checks(_POST_SCHEMA)


def _fast_failures(obj: dict[str, Any]) -> list[str]:
    """The fields of `obj` that break the schema (missing required ones included); [] when it
    is valid. Measured 2x faster than fastjsonschema on valid posts (benchmarks/
    validation_speed.py), which is why it decides and fastjsonschema only writes reasons."""
    failed = []
    for name, required, allowed, enum, min_len, max_len, forbidden, lo, hi in _FAST_CHECKS:
        if name not in obj:
            if required:
                failed.append(name)
            continue
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, allowed) \
                or enum is not None and value not in enum:
            failed.append(name)
        elif isinstance(value, str):
            if not min_len <= len(value) <= max_len \
                    or forbidden is not None and forbidden.search(value):
                failed.append(name)
        elif isinstance(value, int) and not lo <= value <= hi:
            failed.append(name)
    return failed


_SHORT = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 2, 3, 3
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 40


def _short(value: Any) -> str:
    """A bounded repr: a hostile value (a list of a million texts) costs no more than a small one."""
    return _SHORT.repr(value)


def _reason(err: Any) -> str:
    """One line naming the field and what is wrong, from a fastjsonschema error (the wording
    of jsonschema's messages, with long values cut)."""
    where = err.name.removeprefix("data").lstrip(".") or "record"
    rule, bound, value = err.rule, err.rule_definition, err.value
    if rule == "type":
        kinds = bound if isinstance(bound, list) else [bound]
        msg = f"{_short(value)} is not of type {', '.join(map(repr, kinds))}"
    elif rule == "maxLength":
        msg = f"{len(value):,} characters, more than the {bound:,} allowed"
    elif rule == "minLength" and bound == 1:
        return empty_reason(where)
    elif rule == "minLength":
        msg = f"{_short(value)} is shorter than {bound} characters"
    elif rule == "pattern":
        bad = re.search(bound[len(_PATTERN_HEAD):-1], value)
        msg = (f"character U+{ord(bad.group()) if bad else 0:04X} is not allowed here "
               f"(control character or lone surrogate)")
    elif rule == "maximum":
        msg = f"{_short(value)} is greater than the maximum of {bound}"
    elif rule == "minimum":
        msg = f"{_short(value)} is less than the minimum of {bound}"
    elif rule == "enum":
        msg = f"{_short(value)} is not one of {bound}"
    else:
        msg = err.message.removeprefix(err.name + " ")[:200]
    return f"{where}: {msg}"


def missing_reason(fields: list[str]) -> str:
    """The reason of a record without the required `fields` (absent: a null is of the wrong
    type)."""
    return (f"missing required field(s): {', '.join(fields)} (every post needs {_REQUIRED}; "
            f"`polarwatch schema` prints the contract)")


def empty_reason(field: str) -> str:
    """The reason of a record whose required string `field` is present but empty ("")."""
    return f"{field} is empty: every post needs a non-empty {field}"


def from_iso(value: str) -> datetime:
    """``datetime.fromisoformat``, also for RFC 3339's lower-case "t" and "z"
    (``2026-03-04t18:00:00z``), which it refuses."""
    return datetime.fromisoformat(value.upper() if _ISO_DATE.match(value) else value)


def parse_created_at(value: str, now: datetime | None = None,
                     max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW
                     ) -> tuple[datetime | None, str | None]:
    """(timestamp, None) when `value` is an ISO-8601 time with offset inside
    [MIN_CREATED_AT, now + max_future_skew]; else (None, a one-line reason)."""
    try:
        ts = from_iso(value)
    except ValueError:
        return None, f"created_at: {value!r} is not an ISO-8601 timestamp"
    if ts.tzinfo is None:
        return None, f"created_at: {value!r} has no timezone offset (use e.g. '+00:00' or 'Z')"
    now = datetime.now(UTC) if now is None else now
    try:
        ts = ts.astimezone(UTC)
    except OverflowError:
        return None, f"created_at: {value!r} is out of range"
    if ts < MIN_CREATED_AT:
        return None, f"created_at: {value!r} is before {MIN_CREATED_AT:%Y-%m-%d}"
    if ts > now + max_future_skew:
        hours = max_future_skew.total_seconds() / 3600
        return None, (f"created_at: {value!r} is in the future (more than {hours:g} h after "
                      f"the ingest clock {now:%Y-%m-%d %H:%M} UTC; [ingest] "
                      f"max_future_skew_hours)")
    return ts, None


def validate_post(obj: Any, now: datetime | None = None,
                  max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW) -> str | None:
    """Return None when `obj` is a valid post, else a one-line reason naming the field.

    `now` is the ingest clock (default: the wall clock); ``created_at`` may not be later than
    ``now + max_future_skew``. Checks compiled from the JSON Schema pass valid posts; a record
    they reject is re-checked by fastjsonschema (the same schema, and the authority: the fast
    checks may only be stricter), whose first error names the field and what is wrong with it;
    ``(+N more)`` counts the other fields the fast checks found wrong.
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    failed = _fast_failures(obj)
    if not failed:
        return parse_created_at(obj["created_at"], now, max_future_skew)[1]
    missing = [name for name in failed if name not in obj]
    if missing:
        return missing_reason(missing)
    err = _first_error(obj)
    if err is None:  # the fast path is stricter than the schema here (1.0 is a JSON integer)
        return parse_created_at(obj["created_at"], now, max_future_skew)[1]
    return _reason(err) + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")


def json_depth_exceeds(obj: Any, limit: int = MAX_NESTING) -> bool:
    """True when `obj` nests lists/dicts deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def raw_size(raw: bytes | str) -> int:
    """Size in bytes of a raw record (UTF-8 for text; lone surrogates count as 3 bytes)."""
    if isinstance(raw, bytes):
        return len(raw)
    return len(raw.encode("utf-8", "surrogatepass"))


def parse_record(raw: bytes | str, max_bytes: int = MAX_RECORD_BYTES) -> tuple[Any, str | None]:
    """(JSON value, None), or (None, reason) for input that is too big, not UTF-8, not JSON or
    nested deeper than MAX_NESTING. Never raises on any input."""
    if not raw.strip():  # a Kafka tombstone (null value) reaches here as b""
        return None, "record: empty (no JSON); a post is one JSON object (`polarwatch schema`)"
    if len(raw) > max_bytes or (not isinstance(raw, bytes) and 4 * len(raw) > max_bytes
                                and raw_size(raw) > max_bytes):
        return None, f"record: {raw_size(raw):,} bytes, more than the {max_bytes:,} allowed"
    try:
        obj = json.loads(raw)
    except RecursionError:
        return None, f"record: JSON nested deeper than {MAX_NESTING} levels"
    except (UnicodeError, ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return None, cut_reason(long_number(text) or f"malformed JSON: {exc}")
    # fewer brackets than the limit cannot nest deeper (a C-speed count spares the walk)
    brackets = (raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes)
                else raw.count("[") + raw.count("{"))
    if brackets > MAX_NESTING and json_depth_exceeds(obj):
        return None, f"record: JSON nested deeper than {MAX_NESTING} levels"
    return obj, None


def cut_reason(reason: str) -> str:
    """A dead-letter reason of at most MAX_REASON_CHARS characters, safe to encode as UTF-8."""
    reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
    return reason if len(reason) <= MAX_REASON_CHARS else reason[:MAX_REASON_CHARS - 1] + "…"


def truncate_raw(raw: bytes, limit: int = MAX_DEAD_LETTER_BYTES) -> tuple[bytes, int]:
    """(the first `limit` bytes of `raw`, its original size) for a dead letter."""
    return raw[:limit], len(raw)


def parent_of(obj: dict[str, Any]) -> str | None:
    """The parent a valid post object names, or None for a conversation root: ``parent_id``
    absent, null, empty, or the post's own id (a post cannot reply to itself). The stream
    (:mod:`stream.udfs`) and :func:`post_from_dict` apply it to every valid record, whichever
    producer sent it (``ingest file``'s column mapping also turns a self-parent into a root), so
    a self-parent is stored as a root and never paired with itself, and an empty one is not an
    orphan waiting for a parent."""
    return parent_or_root(obj.get("id"), obj.get("parent_id"))


def post_from_dict(obj: dict[str, Any]) -> Post:
    """Build a Post from a validated JSON object (raises SchemaError with the reason); an empty
    or self-naming ``parent_id`` makes a root (:func:`parent_of`)."""
    reason = validate_post(obj)
    if reason:
        raise SchemaError(reason)
    names = {s.name for s in fields_of(Post)}
    data = {k: v for k, v in obj.items() if k in names}
    data["created_at"] = from_iso(obj["created_at"])
    data["parent_id"] = parent_of(obj)
    return Post(**data)

