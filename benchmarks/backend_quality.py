"""Validation quality of any extractor backend, through the same API the stream uses.

    .venv/bin/python benchmarks/backend_quality.py [--backends lexicon,learned] [--limit N]
        [-O llm.base_url=http://127.0.0.1:8080/v1]

Labels the validation splits of ``../shared/data`` with each backend's ``extract`` (slices of
500 posts) and scores them like ``train_heads.py`` does: stance F_avg pooled over the five
SemEval targets (each configured as a topic with the descriptions in ``heads_data``; the climate
target is ``topics.toml``'s climate_change, cue terms included), agreement macro-F1 on the
DEBAGREEMENT held-out 25 %, affect macro-F1 on OffensEval val, emotion macro-F1 over the four
TweetEval classes (a "neutral" or other label counts as wrong). ``--limit`` takes a seeded sample
per task, for slow backends. Nothing here trains.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    AGREEMENT_NAMES,
    EMOTION_NAMES,
    STANCE_NAMES,
    STANCE_TARGETS,
    agreement_pairs,
    agreement_split,
    log,
    tweeteval,
)
from polarwatch.config import Topic, load_topics  # noqa: E402
from polarwatch.records import Labels  # noqa: E402
from scoring.extractors.base import Extractor, PostPair  # noqa: E402
from scoring.extractors.registry import get_extractor  # noqa: E402
from scoring.runs import parse_options  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SLICE = 500


def target_topics() -> list[Topic]:
    configured = {(t.pro, t.anti): t for t in load_topics(REPO / "topics.toml")}
    out = []
    for target, (pro, anti) in STANCE_TARGETS.items():
        known = configured.get((pro, anti))
        out.append(Topic(id=target, name=target, pro=pro, anti=anti,
                         keywords=known.keywords if known else (),
                         pro_terms=known.pro_terms if known else (),
                         anti_terms=known.anti_terms if known else ()))
    return out


def sample(n: int, limit: int | None, seed: int = 0) -> list[int]:
    idx = list(range(n))
    if limit is not None and limit < n:
        idx = sorted(random.Random(seed).sample(idx, limit))
    return idx


class Labeler:
    """Labels posts in stream-sized slices, keeping the post count and the time spent."""

    def __init__(self, ext: Extractor) -> None:
        self.ext, self.posts, self.secs = ext, 0, 0.0

    def __call__(self, pairs: Sequence[PostPair]) -> list[Labels]:
        t0 = time.perf_counter()
        out: list[Labels] = []
        for i in range(0, len(pairs), SLICE):
            out += self.ext.extract(pairs[i:i + SLICE])
        self.secs += time.perf_counter() - t0
        self.posts += len(pairs)
        return out


def evaluate(name: str, options: dict[str, dict[str, object]], limit: int | None
             ) -> dict[str, float]:
    from sklearn.metrics import f1_score

    topics = target_topics()
    t0 = time.perf_counter()
    label = Labeler(get_extractor(name, topics, **options.get(name, {})))
    res: dict[str, float] = {"load_s": time.perf_counter() - t0}

    gold_s, pred_s = [], []
    for t in STANCE_TARGETS:
        texts, y = tweeteval(f"stance/{t}", "val")
        idx = sample(len(texts), limit // 5 if limit else None)
        pred_s += [lab.stance for lab in label([PostPair(f"{t}{i}", texts[i], t) for i in idx])]
        gold_s += [STANCE_NAMES[int(y[i])] for i in idx]
    res["stance_f_avg"] = float(f1_score(gold_s, pred_s, labels=["pro", "anti"],
                                         average=None, zero_division=0).mean())

    texts, y = tweeteval("offensive", "val")
    idx = sample(len(texts), limit)
    affect = [lab.affect for lab in label([PostPair(f"o{i}", texts[i], "abortion") for i in idx])]
    gold = ["yes" if y[i] == 1 else "no" for i in idx]
    res["affect_macro_f1"] = float(f1_score(gold, affect, labels=["no", "yes"], average="macro",
                                            zero_division=0))

    texts, y = tweeteval("emotion", "val")
    idx = sample(len(texts), limit)
    emotion = [lab.emotion for lab in label([PostPair(f"e{i}", texts[i], "abortion")
                                              for i in idx])]
    res["emotion_macro_f1"] = float(f1_score([EMOTION_NAMES[int(y[i])] for i in idx], emotion,
                                             labels=list(EMOTION_NAMES), average="macro",
                                             zero_division=0))
    res["emotion_neutral_share"] = float(np.mean([e == "neutral" for e in emotion]))

    deb, _ = agreement_pairs()
    _, held = agreement_split(deb)
    held = held[sample(len(held), limit)]
    agreement = [lab.agreement or "unclear" for lab in label(
        [PostPair(f"a{i}", deb.children[i], "climate", deb.parents[i]) for i in held])]
    res["agreement_macro_f1"] = float(f1_score([AGREEMENT_NAMES[int(deb.labels[i])] for i in held],
                                               agreement, labels=list(AGREEMENT_NAMES),
                                               average="macro", zero_division=0))
    res["posts"], res["posts_per_s"] = label.posts, label.posts / max(label.secs, 1e-9)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="lexicon,learned")
    ap.add_argument("--limit", type=int, default=None, help="posts per task (seeded sample)")
    ap.add_argument("--option", "-O", action="append", default=[],
                    metavar="BACKEND.KEY=VALUE", help="backend option (repeatable)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = []
    for name in [b.strip() for b in args.backends.split(",") if b.strip()]:
        log(f"{name}: labeling the validation splits" + (f" ({args.limit} per task)"
                                                          if args.limit else ""))
        res = evaluate(name, parse_options(args.option, name), args.limit)
        rows.append((name, res))
        log(f"{name}: {res}")
    print("\n| backend | stance F_avg | agreement macro-F1 | affect macro-F1 | emotion macro-F1 "
          "(neutral share) | posts | posts/s (incl. parents) | load s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| {name} | {r['stance_f_avg']:.3f} | {r['agreement_macro_f1']:.3f} | "
              f"{r['affect_macro_f1']:.3f} | {r['emotion_macro_f1']:.3f} "
              f"({r['emotion_neutral_share']:.0%}) | {int(r['posts']):,} | "
              f"{r['posts_per_s']:,.{0 if r['posts_per_s'] >= 10 else 2}f} | {r['load_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
