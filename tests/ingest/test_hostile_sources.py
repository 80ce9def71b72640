"""Live-source parsers on hostile messages: each becomes a record with an error (dead-lettered
by the producer) or a post the record contract rejects, never an exception (issue #13)."""

from __future__ import annotations

import json

import pytest

from ingest.sources.jetstream import parse_message
from ingest.sources.mastodon import MastodonSource
from polarwatch.validation import validate_post

DEEP = b'{"kind": "commit", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
HUGE_INT = b'{"kind": "commit", "time_us": ' + b"9" * 5000 + b"}"


def _js(time_us: int, created: object) -> bytes:
    return json.dumps({"did": "did:plc:a", "time_us": time_us, "kind": "commit", "commit": {
        "operation": "create", "collection": "app.bsky.feed.post", "rkey": "r1",
        "record": {"text": "gun laws", "createdAt": created}}}).encode()


@pytest.mark.parametrize("raw, reason", [
    (DEEP, "nested deeper than"), (HUGE_INT, "a JSON number of 5,000 digits"), (b"\xff\xfe", "malformed JSON"),
    (b"[" * 300_000, "bytes, more than the"),
])
def test_jetstream_hostile_messages_are_errors(raw: bytes, reason: str) -> None:
    rec = parse_message(raw)
    assert rec.post is None and rec.error is not None and reason in rec.error


def test_jetstream_time_us_overflow_leaves_a_post_the_contract_rejects() -> None:
    post = parse_message(_js(10**30, "not a date")).post
    assert post is not None and post["created_at"] is None
    assert validate_post({**post, "topic": "gun_control"}) is not None
    post = parse_message(_js(1, "2300-01-01T00:00:00Z")).post  # plausible-looking, future,
    assert post is not None  # capped by a relay time of 1970: the contract rejects that
    reason = validate_post({**post, "topic": "gun_control"})
    assert reason is not None and "is before 2000-01-01" in reason
    relay = 1_714_521_600_000_000  # 2024-05-01: the future date is capped to the relay's time
    post = parse_message(_js(relay, "2300-01-01T00:00:00Z")).post
    assert post is not None and post["created_at"] == "2024-05-01T00:00:00+00:00"


@pytest.mark.parametrize("raw", [DEEP, HUGE_INT, b"\xff", b'"just a string"'])
def test_mastodon_hostile_statuses_are_errors(raw: bytes) -> None:
    rec = MastodonSource("https://mastodon.example", tag="x").parse_status(raw)
    assert rec.post is None and rec.error is not None


@pytest.mark.parametrize(("header", "expected"), [
    ("30", 30.0), ("999999999999999999999999", 600.0), ("Fri, 31 Dec 9999 23:59:59 GMT", 600.0),
    ("Mon, 01 Jan 2001 00:00:00 GMT", 5.0), ("soon", 5.0), (None, 5.0), ("0", 5.0),
    ("\u00b2", 5.0)])  # never shorter than the backoff (5 s here); a superscript is not a number
def test_retry_after_is_capped_at_ten_minutes(header: str | None, expected: float) -> None:
    from ingest.sources.reconnect import retry_after_seconds

    assert retry_after_seconds(header, 5.0) == expected


@pytest.mark.parametrize("status", ["<" * 262_144, "<p" * 131_072, "</p " * 65_536 + "x"])
def test_html_to_text_is_linear_on_unclosed_tags(status: str) -> None:
    """A 256 KiB status of unclosed tags took about 40 s (the tag pattern rescanned to the end
    from every "<"); now it is one pass."""
    import time

    from ingest.normalize import html_to_text

    start = time.process_time()
    html_to_text(status)
    assert time.process_time() - start < 1.0
