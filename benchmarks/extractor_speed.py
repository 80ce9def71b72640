"""Posts/s of the extractor backends on synthetic posts (model load timed separately).

    .venv/bin/python benchmarks/extractor_speed.py [--posts 4000] [--backends lexicon,learned]
        [--batch-sizes 32,64,128] [--threads 2] [--reply-share 0.5] [--duplicate-share 0.1]
        [--heads scoring/heads,/tmp/old-heads]

``--heads`` lists `learned` head directories to compare; the backend builds the encoder variant
the heads were trained on (e.g. ``int8-seq128``, or ``fp32-seq256`` for heads without one).

Posts come from a small built-in generator (two configured topics): a share of them are replies
(the learned backend embeds the parent too, which is usually a cache hit because the parent was
labeled earlier) and a share are exact duplicates (retweets). Each
configuration labels the same posts in batches of 500 (a Spark micro-batch slice), twice: see
`run` for "cold" vs "warm".
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polarwatch.config import load_topics  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402
from scoring.extractors.registry import get_extractor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STREAM_BATCH = 500

OPENERS = ["Honestly,", "Look,", "I think", "Nobody believes", "Everyone knows", "Fact:",
           "Hot take:", "Remember when", "So tired of hearing that", "Can we admit"]
CLAIMS = {
    "gun_control": ["background checks save lives", "the second amendment shall not be infringed",
                    "assault weapons should be banned", "gun owners are law-abiding citizens",
                    "red flag laws work", "more guns make us less safe"],
    "climate_change": ["the climate crisis is real", "global warming is a natural cycle",
                       "we must cut emissions now", "carbon taxes hurt working families",
                       "renewable energy is cheaper", "climate alarmism is a scam"],
}
TAILS = ["", " #2a", " #climatecrisis", " you idiots.", " well said.", " Prove me wrong.",
         " Thoughts?", " 🙄", " and the data backs it up.", " wake up people!"]
REPLIES = ["Exactly, couldn't agree more.", "That's just not true.", "Source?",
           "You clearly have no idea what you are talking about.", "Well said!",
           "Nope, wrong again.", "I used to think so too, but the evidence changed my mind."]


def make_posts(n: int, reply_share: float, duplicate_share: float, seed: int = 0
               ) -> list[PostPair]:
    rng = random.Random(seed)
    posts: list[PostPair] = []
    for i in range(n):
        if posts and rng.random() < duplicate_share:
            src = rng.choice(posts)
            posts.append(PostPair(f"p{i}", src.text, src.topic, src.parent_text))
            continue
        topic = rng.choice(list(CLAIMS))
        text = f"{rng.choice(OPENERS)} {rng.choice(CLAIMS[topic])}{rng.choice(TAILS)} ({i})"
        parent = None
        roots = [p for p in posts[-50:] if p.topic == topic]
        if roots and rng.random() < reply_share:
            parent = rng.choice(roots).text
            text = f"{rng.choice(REPLIES)} {text}"
        posts.append(PostPair(f"p{i}", text, topic, parent))
    return posts


def label_all(extractor: object, posts: list[PostPair]) -> float:
    """Label `posts` in stream-sized batches; return posts/s."""
    t0 = time.perf_counter()
    for i in range(0, len(posts), STREAM_BATCH):
        extractor.extract(posts[i:i + STREAM_BATCH])  # type: ignore[attr-defined]
    return len(posts) / (time.perf_counter() - t0)


def run(backend: str, posts: list[PostPair], **options: object) -> tuple[float, float, float, str]:
    """(load s, cold posts/s, warm posts/s, notes). "Cold" is the first pass of a new instance:
    torch's CPU kernels are set up for each new (batch, sequence length) shape, which costs
    several x on the first ~1,000 texts. "Warm" labels the same posts again with the text cache
    emptied, i.e. steady-state streaming where every text is still new to the cache."""
    topics = load_topics(REPO / "topics.toml")
    t0 = time.perf_counter()
    extractor = get_extractor(backend, topics, **options)
    load_s = time.perf_counter() - t0
    cold = label_all(extractor, posts)
    enc = getattr(extractor, "encoder", None)
    if enc is not None:
        enc._cache.clear()
        enc.hits = enc.misses = 0
    warm = label_all(extractor, posts)
    extra = f"encoded {enc.misses:,} texts, {enc.hits:,} cache hits" if enc is not None else ""
    return load_s, cold, warm, extra


def _variant(heads: str | None) -> str:
    from scoring.extractors.learned import HEADS_DIR, heads_encoder, load_heads

    variant, adapter = heads_encoder(*load_heads(Path(heads) if heads else HEADS_DIR))
    return f"{variant}+adapter {adapter}" if adapter else variant


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=4000)
    ap.add_argument("--backends", default="lexicon,learned")
    ap.add_argument("--batch-sizes", default="32,64,128", help="learned encoder batch sizes")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for `learned`")
    ap.add_argument("--reply-share", type=float, default=0.5)
    ap.add_argument("--duplicate-share", type=float, default=0.1)
    ap.add_argument("--heads", default="", help="comma-separated `learned` head directories "
                    "(default: the shipped scoring/heads)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    posts = make_posts(args.posts, args.reply_share, args.duplicate_share)
    replies = sum(p.parent_text is not None for p in posts)
    print(f"{len(posts):,} posts ({replies:,} replies), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| backend | options | load s | cold posts/s | warm posts/s | notes |\n"
          "|---|---|---:|---:|---:|---|")
    for backend in args.backends.split(","):
        if backend == "learned":
            for heads in args.heads.split(",") if args.heads else [None]:
                for bs in (int(b) for b in args.batch_sizes.split(",")):
                    opts: dict[str, object] = {"batch_size": bs, "num_threads": args.threads}
                    if heads:
                        opts["heads_dir"] = heads
                    load_s, cold, warm, extra = run(backend, posts, **opts)
                    print(f"| learned | {_variant(heads)}, batch_size={bs}, "
                          f"threads={args.threads} | {load_s:.1f} | {cold:,.0f} | {warm:,.0f} | "
                          f"{extra} |", flush=True)
        else:
            load_s, cold, warm, extra = run(backend, posts)
            print(f"| {backend} | | {load_s:.2f} | {cold:,.0f} | {warm:,.0f} | {extra} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
