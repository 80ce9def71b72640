"""Hypothesis strategies for post-shaped records, valid and hostile (issue #13's property tests).

Each field of a record is either a plausible value (so a fair share of records is valid and
takes the storing path) or any JSON value: huge or non-finite numbers, lone surrogates, control
characters, long strings, nested lists and objects.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from polarwatch.records import MAX_ID_CHARS

ANY_CHAR = st.characters(exclude_categories=())  # includes lone surrogates (category Cs)
ID_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x2FF)
NOW = datetime.now(UTC)

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(ANY_CHAR, max_size=40))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(ANY_CHAR, max_size=8), inner, max_size=4)),
    max_leaves=12)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """created_at: mostly ISO strings from year 1 to 9999 with odd offsets, sometimes epochs."""
    kind = draw(st.sampled_from(["recent", "iso", "epoch", "other"]))
    if kind == "recent":
        ts = NOW - timedelta(seconds=draw(st.integers(0, 10 * 365 * 86400)))
        return ts.isoformat()
    if kind == "iso":
        naive = draw(st.datetimes(min_value=datetime(1, 1, 2),  # noqa: DTZ001 (naive bounds:
                                  max_value=datetime(9999, 12, 30)))  # noqa: DTZ001 hypothesis API)
        minutes = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
        return naive.replace(tzinfo=timezone(timedelta(minutes=minutes))).isoformat()
    if kind == "epoch":
        return draw(st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True)))
    return draw(json_values)


@st.composite
def post_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A post-shaped object; each field is plausible nine times in ten (so about a third of the
    objects are valid posts), else any JSON value; sometimes a field is missing or extra."""

    def maybe(valid: st.SearchStrategy[Any]) -> Any:
        return draw(valid) if draw(st.integers(0, 9)) else draw(json_values)

    ident = st.text(ID_CHARS, min_size=1, max_size=12)
    obj: dict[str, Any] = {
        "id": maybe(ident),
        "platform": maybe(st.sampled_from(["x", "reddit", "bluesky"])),
        "author_id": maybe(ident),
        "text": maybe(st.text(max_size=60)) if draw(st.integers(0, 3)) else
        draw(st.text(ANY_CHAR, max_size=60)),
        "created_at": maybe(st.builds(lambda s: (NOW - timedelta(seconds=s)).isoformat(),
                                      st.integers(0, 10 * 365 * 86400)))
        if draw(st.integers(0, 2)) else draw(timestamps()),
        "topic": maybe(st.sampled_from(["gun_control", "climate_change"])),
        "conversation_id": maybe(ident),
        "parent_id": maybe(st.one_of(st.none(), ident)),
        "lang": maybe(st.one_of(st.none(), st.sampled_from(["en", "de"]))),
    }
    if draw(st.integers(0, 9)) == 0:
        obj.pop(draw(st.sampled_from(sorted(obj))))
    if draw(st.booleans()):
        obj["schema_version"] = maybe(st.just(1))
    if draw(st.integers(0, 9)) == 0:
        obj["extra"] = draw(json_values)
    if draw(st.integers(0, 19)) == 0:
        obj["id"] = "i" * (MAX_ID_CHARS + 1)
    return obj


def encode_json(obj: Any) -> bytes:
    """JSON bytes of any generated value (surrogates escaped, NaN/Infinity as Python writes)."""
    return json.dumps(obj, ensure_ascii=True).encode()


@st.composite
def raw_records(draw: st.DrawFn) -> bytes:
    """Bytes as they may arrive: a post as JSON (mostly), any JSON, deep nesting or junk."""
    kind = draw(st.sampled_from(["post", "post", "post", "json", "deep", "junk"]))
    if kind == "post":
        return encode_json(draw(post_dicts()))
    if kind == "json":
        return encode_json(draw(json_values))
    if kind == "deep":
        depth = draw(st.integers(50, 5000))
        return b'{"id": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}"
    return draw(st.binary(max_size=200))
