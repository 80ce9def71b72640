"""How fast ingest routes posts to topics by their keywords, with the shipped topics and with 200.

    .venv/bin/python benchmarks/routing_speed.py [--data ../shared/data] [--repeat 3]

Posts: real text, the 2,000 TweetEval sentiment tweets and the 8,576 bodies of the DEBAGREEMENT
dev pairs (../shared/data). Topics: the shipped topics.toml, and 200 topics whose keywords are
the 2 longest words of 9 letters or more of each of PERSPECTRUM's claims, in file order, plus
the shipped ones (what an analyst adding many topics gives the router, roughly: specific words). Printed per topic set: the share of posts routed, and
posts/s of `TopicRouter.route` with its no-topic shortcut (one pattern of every keyword first)
and with a scan of every topic's pattern (the router before it), the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.normalize import TopicRouter  # noqa: E402
from polarwatch.topics import Topic, load_topics  # noqa: E402


def texts(data: Path) -> list[str]:
    tweets = (data / "tweeteval/sentiment/val_text.txt").read_text(encoding="utf-8").splitlines()
    with (data / "agreement/debagreement_dev.csv").open(encoding="utf-8", newline="") as fh:
        reddit = [body for row in csv.DictReader(fh)
                  for body in (row["body_parent"], row["body_child"])]
    return tweets + reddit


def claim_topics(data: Path, n: int) -> list[Topic]:
    claims = json.loads((data / "perspectrum/perspectrum_with_answers_v1.0.json").read_text())
    out: list[Topic] = []
    for c in claims:
        if len(out) == n:
            break
        words = sorted(set(re.findall(r"[A-Za-z]{9,}", c["text"])), key=len, reverse=True)[:2]
        if words:
            out.append(Topic(f"claim_{c['cId']}", c["text"][:60], "supports the claim",
                             "undermines the claim", keywords=tuple(w.lower() for w in words)))
    return out


def rate(router: TopicRouter, posts: list[str], repeat: int) -> tuple[float, float]:
    """(posts/s, share routed), the best of `repeat` passes."""
    best, routed = 0.0, 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        routed = sum(router.route(p) is not None for p in posts)
        best = max(best, len(posts) / (time.perf_counter() - t0))
    return best, routed / len(posts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    posts = texts(args.data)
    shipped = load_topics(REPO / "topics.toml")
    sets = {"shipped topics.toml": shipped,
            "200 topics": shipped + claim_topics(args.data, 200 - len(shipped))}
    print(f"{len(posts):,} real posts")
    for name, topics in sets.items():
        router = TopicRouter.from_topics(topics)
        scan = TopicRouter(router.topics, router.patterns, router.mention_patterns)
        fast, share = rate(router, posts, args.repeat)
        slow, _ = rate(scan, posts, args.repeat)
        print(f"{name} ({len(topics)} topics): {share:.1%} routed; {fast:,.0f} posts/s with the "
              f"no-topic shortcut, {slow:,.0f} posts/s scanning every topic")


if __name__ == "__main__":
    main()
