"""Validating posts where bytes come in: hand-written checks, fastjsonschema and jsonschema.

Candidates, each returning None or a one-line reason for one JSON object:

- ``shipped``: :func:`polarwatch.validation.validate_post`: checks compiled from the JSON Schema
  pass valid posts; fastjsonschema re-checks the records they reject and writes the reason;
- ``fast checks + jsonschema reasons``: what shipped before issue 24 (a jsonschema validator
  wrote the reasons);
- ``fastjsonschema``: the JSON Schema compiled by fastjsonschema alone (``date-time`` left to
  ``parse_created_at``, as in the others), its first error turned into the same reason;
- ``jsonschema``: a jsonschema Draft 2020-12 validator on every record (the reference).

Input: real posts (TweetEval tweets and DEBAGREEMENT Reddit replies, from ``../shared/data``),
then every one of them broken one way from HOSTILE (oversize, NUL and lone surrogates, wrong
types, missing fields, bad timestamps, ...). Without the data, synthetic texts.

Reproduce: ``PYTHONPATH=$PWD python benchmarks/validation_speed.py [--n 20000]``; prints µs per
record (best of 5 rounds, 3 for hostile ones) and each candidate's reason for one record of every hostile kind.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import DATA_DIR  # noqa: E402
from polarwatch.records import DEFAULT_MAX_FUTURE_SKEW, Post  # noqa: E402
from polarwatch.schemas import json_schema  # noqa: E402
from polarwatch.validation import (  # noqa: E402
    _fast_failures,
    _first_error,
    _reason,
    parse_created_at,
    validate_post,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
Reason = Callable[[Any], str | None]

HOSTILE: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "oversize text": lambda p: {**p, "text": (p["text"] + " ") * (10_001 // (len(p["text"]) + 1)
                                                                  + 1)},
    "NUL in text": lambda p: {**p, "text": p["text"][:20] + "\x00" + p["text"][20:]},
    "lone surrogate": lambda p: {**p, "text": p["text"] + "\ud83d"},
    "control char in id": lambda p: {**p, "id": p["id"] + "\x1b[31m"},
    "text is a number": lambda p: {**p, "text": 12345},
    "text is a list": lambda p: {**p, "text": [p["text"]] * 1000},
    "missing text, topic": lambda p: {k: v for k, v in p.items() if k not in ("text", "topic")},
    "empty id": lambda p: {**p, "id": ""},
    "schema_version 99": lambda p: {**p, "schema_version": 99},
    "created_at garbage": lambda p: {**p, "created_at": "yesterday"},
    "created_at naive": lambda p: {**p, "created_at": p["created_at"][:19]},
    "created_at future": lambda p: {**p, "created_at": "2099-01-01T00:00:00+00:00"},
    "bool for version": lambda p: {**p, "schema_version": True},
}


def real_posts(n: int) -> list[dict[str, Any]]:
    """Up to ``n`` posts: Reddit replies (with their parents) and tweets, alternating."""
    tweets: list[str] = []
    for task in ("stance/abortion", "stance/atheism", "stance/climate", "stance/feminist",
                 "stance/hillary", "emotion", "offensive", "hate", "irony"):
        path = DATA_DIR / "tweeteval" / task / "train_text.txt"
        if path.exists():
            tweets += path.read_text(encoding="utf-8").splitlines()
    reddit: list[dict[str, str]] = []
    deb = DATA_DIR / "agreement" / "debagreement_dev.csv"
    if deb.exists():
        with deb.open(encoding="utf-8", newline="") as fh:
            reddit = list(csv.DictReader(fh))
    if not tweets and not reddit:  # no data: synthetic texts of tweet length
        tweets = [f"post {i} about the election, #vote and 🗳️ " * (1 + i % 6) for i in range(n)]
    posts: list[dict[str, Any]] = []
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    for i in range(n):
        ts = (t0 + timedelta(seconds=37 * i)).isoformat()
        if reddit and i % 2:
            row = reddit[(i // 2) % len(reddit)]
            parent = f"t1_p{i}"
            posts.append({"id": f"t1_c{i}", "platform": "reddit", "author_id": f"u{i % 977}",
                          "text": row["body_child"], "created_at": ts, "topic": row["subreddit"],
                          "conversation_id": f"t3_{i % 311}", "parent_id": parent,
                          "lang": None})
        else:
            text = tweets[i % len(tweets)] if tweets else reddit[i % len(reddit)]["body_parent"]
            posts.append({"id": str(1790000000000000000 + i), "platform": "twitter",
                          "author_id": str(i % 1013), "text": text, "created_at": ts,
                          "topic": "climate", "conversation_id": str(1790000000000000000 + i),
                          "parent_id": None, "lang": "en"})
    return posts


def fastjsonschema_candidate() -> Reason:
    """fastjsonschema alone: its first error, worded as the shipped reasons are."""

    def reason(obj: Any) -> str | None:
        if not isinstance(obj, dict):
            return f"expected a JSON object, got {type(obj).__name__}"
        err = _first_error(obj)
        if err is not None:
            return _reason(err)
        return parse_created_at(obj["created_at"], NOW, DEFAULT_MAX_FUTURE_SKEW)[1]

    return reason


def checks_with_jsonschema_reasons() -> Reason:
    """The fast checks, and a jsonschema validator for the reasons (as shipped before issue 24,
    messages included)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema(Post),
                                                format_checker=jsonschema.FormatChecker())
    required = ", ".join(validator.schema["required"])

    def reason(obj: Any) -> str | None:
        if not isinstance(obj, dict):
            return f"expected a JSON object, got {type(obj).__name__}"
        errors = [] if not _fast_failures(obj) else sorted(validator.iter_errors(obj),
                                                            key=lambda e: list(e.path))
        if not errors:
            return parse_created_at(obj["created_at"], NOW, DEFAULT_MAX_FUTURE_SKEW)[1]
        missing = list(dict.fromkeys(m for e in errors if e.validator == "required"
                                     for m in e.validator_value if m not in obj))
        if missing:
            return (f"missing required field(s): {', '.join(missing)} (every post needs "
                    f"{required}; `polarwatch schema` prints the contract)")
        err = errors[0]
        where = ".".join(str(p) for p in err.path) or "record"
        if err.validator == "maxLength":
            msg = f"{len(err.instance):,} characters, more than the {err.validator_value:,} allowed"
        elif err.validator == "pattern":
            bad = re.search(err.validator_value[len("^(?![\\s\\S]*"):-1], err.instance)
            msg = (f"character U+{ord(bad.group()) if bad else 0:04X} is not allowed here "
                   f"(control character or lone surrogate)")
        else:
            msg = err.message if len(err.message) < 200 else err.message[:200] + "…"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return f"{where}: {msg}{more}"

    return reason


def jsonschema_candidate() -> Reason:
    import jsonschema

    validator = jsonschema.Draft202012Validator(json_schema(Post),
                                                format_checker=jsonschema.FormatChecker())

    def reason(obj: Any) -> str | None:
        err = jsonschema.exceptions.best_match(validator.iter_errors(obj))
        if err is not None:
            return f"{'.'.join(map(str, err.path)) or 'record'}: {err.message[:200]}"
        return parse_created_at(obj["created_at"], NOW, DEFAULT_MAX_FUTURE_SKEW)[1]

    return reason


def timed(reason: Reason, records: list[dict[str, Any]], rounds: int = 5) -> float:
    """Best µs per record over ``rounds`` passes."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for rec in records:
            reason(rec)
        best = min(best, time.perf_counter() - t0)
    return best / len(records) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="real posts (default 20,000)")
    args = ap.parse_args()
    posts = real_posts(args.n)
    kinds = list(HOSTILE)
    hostile = [HOSTILE[kinds[i % len(kinds)]](p) for i, p in enumerate(posts)]
    t0 = time.perf_counter()
    validate_post(hostile[0], NOW)  # compiles fastjsonschema's validator once
    setup = time.perf_counter() - t0
    candidates: dict[str, Reason] = {
        "shipped: fast checks + fastjsonschema reasons": lambda o: validate_post(o, NOW),
        "fast checks + jsonschema reasons (before)": checks_with_jsonschema_reasons(),
        "fastjsonschema alone": fastjsonschema_candidate(),
        "jsonschema alone (reference)": jsonschema_candidate(),
    }
    for name, reason in candidates.items():  # every candidate agrees on every verdict
        for rec in posts[:2000] + hostile[:2000]:
            if (reason(rec) is None) != (validate_post(rec, NOW) is None):
                print(f"{name} disagrees on {str(rec)[:200]}: {reason(rec)}", file=sys.stderr)
                return 1
    print(f"{len(posts):,} real posts ({sum(p['platform'] == 'reddit' for p in posts):,} Reddit "
          f"replies, the rest tweets), {len(hostile):,} hostile ones ({len(kinds)} kinds); "
          f"fastjsonschema compiles in {setup * 1e3:.0f} ms\n")
    print("| validator | valid posts µs/record | hostile posts µs/record | valid posts/s |\n"
          "|---|---:|---:|---:|")
    for name, reason in candidates.items():
        ok, bad = timed(reason, posts), timed(reason, hostile, rounds=3)
        print(f"| {name} | {ok:.2f} | {bad:.2f} | {1e6 / ok:,.0f} |", flush=True)
    shown = list(candidates)[:2]
    print(f"\n| hostile kind | {' | '.join(shown)} |\n|---|{'---|' * len(shown)}")
    for i, kind in enumerate(kinds):
        cells = [str(candidates[c](hostile[i])).replace("|", "\\|")[:140] for c in shown]
        print(f"| {kind} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
