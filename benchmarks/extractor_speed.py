"""Posts/s of the extractor backends on synthetic and real posts (model load timed separately).

    .venv/bin/python benchmarks/extractor_speed.py [--posts 4000] [--backends lexicon,learned]
        [--batch-sizes 32,64,128] [--threads 2] [--reply-share 0.5] [--duplicate-share 0.1]
        [--heads scoring/heads,/tmp/old-heads] [--runtimes onnx,torch] [--no-real]
        [--real-limit N] [--token-budgets 96,128]

Real text (``benchmarks/real_text.py``, from ``../shared/data``): "tweets" = the 1,618 TweetEval
stance + offensive validation tweets; "Reddit replies" = 4,288 DEBAGREEMENT replies, each with its
parent's text, as `polarwatch label` gets them (parent and reply both new to the cache); "Reddit
threads" = the same messages rebuilt as threads, parents first, as the stream sees them (8,402
posts; a parent was labeled before its replies, so its embedding is a cache hit). Each real set
is labeled once with a fresh text cache, after the synthetic passes. "load s" is measured in a
fresh Python process: imports plus building the backend, i.e. what `polarwatch label` waits for.

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
import itertools
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from polarwatch.config import load_topics  # noqa: E402
from scoring.extractors.base import Extractor, PostPair  # noqa: E402
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


def label_all(extractor: Extractor, posts: list[PostPair]) -> float:
    """Label `posts` in stream-sized batches; return posts/s."""
    t0 = time.perf_counter()
    for i in range(0, len(posts), STREAM_BATCH):
        extractor.extract(posts[i:i + STREAM_BATCH])
    return len(posts) / (time.perf_counter() - t0)


def fresh_load_seconds(backend: str, options: dict[str, object]) -> float:
    """Seconds to import and build the backend in a new Python process (as the CLI does)."""
    code = ("import json, time, sys; t = time.perf_counter(); sys.path.insert(0, sys.argv[1]); "
            "from polarwatch.config import load_topics; "
            "from scoring.extractors.registry import get_extractor; "
            "get_extractor(sys.argv[2], load_topics(sys.argv[1] + '/topics.toml'), "
            "**json.loads(sys.argv[3])); print(time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code, str(REPO), backend, json.dumps(options)],
                         check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def real_sets(limit: int | None = None) -> dict[str, list[PostPair]]:
    from benchmarks.heads_data import DATA_DIR
    from benchmarks.real_text import real_tweets, reddit_replies, reddit_threads

    if not DATA_DIR.exists():
        print(f"no real text: {DATA_DIR} is missing (set POLARWATCH_DATA)")
        return {}
    return {"tweets": real_tweets()[:limit], "Reddit replies": reddit_replies()[:limit],
            "Reddit threads": reddit_threads(max_replies=limit // 2 if limit else None).posts}


def real_rates(extractor: Extractor, sets: dict[str, list[PostPair]]) -> dict[str, float]:
    rates = {}
    for name, posts in sets.items():
        enc = getattr(extractor, "encoder", None)
        if enc is not None:
            enc._cache.clear()
        rates[name] = label_all(extractor, posts)
    return rates


def run(backend: str, posts: list[PostPair], **options: object
        ) -> tuple[Extractor, float, float, float, str]:
    """(extractor, load s, cold posts/s, warm posts/s, notes). "Cold" is the first pass of a new instance:
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
    return extractor, load_s, cold, warm, extra


def _variant(heads: str | None) -> str:
    from scoring.extractors.learned import HEADS_DIR, heads_encoder, load_heads

    variant, adapter = heads_encoder(*load_heads(Path(heads) if heads else HEADS_DIR))
    return f"{variant}+adapter {adapter}" if adapter else variant


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--posts", type=int, default=4000)
    ap.add_argument("--backends", default="lexicon,learned")
    ap.add_argument("--batch-sizes", default="64", help="learned encoder batch sizes")
    ap.add_argument("--threads", type=int, default=2, help="torch/onnx threads for `learned`")
    ap.add_argument("--reply-share", type=float, default=0.5)
    ap.add_argument("--duplicate-share", type=float, default=0.1)
    ap.add_argument("--heads", default="", help="comma-separated `learned` head directories "
                    "(default: the shipped scoring/heads)")
    ap.add_argument("--runtimes", default="onnx,torch", help="`learned` encoder runtimes")
    ap.add_argument("--token-budgets", default="96",
                    help="`learned` onnx token budgets (128 = the variant's plain truncation)")
    ap.add_argument("--no-real", action="store_true", help="synthetic posts only")
    ap.add_argument("--real-limit", type=int, default=None, help="at most N posts per real set")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    posts = make_posts(args.posts, args.reply_share, args.duplicate_share)
    sets = {} if args.no_real else real_sets(args.real_limit)
    replies = sum(p.parent_text is not None for p in posts)
    print(f"{len(posts):,} synthetic posts ({replies:,} replies); real: "
          + (", ".join(f"{k} {len(v):,}" for k, v in sets.items()) or "none")
          + f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| backend | options | load s (fresh process) | synthetic cold posts/s | synthetic warm "
          "posts/s | " + "".join(f"{k} posts/s | " for k in sets) + "notes |\n"
          "|---|---|---:|---:|---:|" + "---:|" * len(sets) + "---|")
    configs: list[tuple[str, str, dict[str, object]]] = []
    for backend in args.backends.split(","):
        if backend != "learned":
            configs.append((backend, "", {}))
            continue
        for heads in args.heads.split(",") if args.heads else [None]:
            for runtime in args.runtimes.split(","):
                budgets = args.token_budgets.split(",") if runtime == "onnx" else ["0"]
                for bs, budget in itertools.product(map(int, args.batch_sizes.split(",")),
                                                    map(int, budgets)):
                    opts: dict[str, object] = {"batch_size": bs, "num_threads": args.threads,
                                               "runtime": runtime, "token_budget": budget or None}
                    if heads:
                        opts["heads_dir"] = heads
                    configs.append((backend, f"{_variant(heads)}, {runtime}"
                                             + (f", token_budget={budget}" if budget else "")
                                             + f", batch_size={bs}, threads={args.threads}",
                                    opts))
    for backend, label, opts in configs:
        extractor, _, cold, warm, extra = run(backend, posts, **opts)
        rates = real_rates(extractor, sets)
        load_s = fresh_load_seconds(backend, opts)
        print(f"| {backend} | {label} | {load_s:.2f} | {cold:,.0f} | {warm:,.0f} | "
              + "".join(f"{rates[k]:,.0f} | " for k in sets) + f"{extra} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
