"""How many replies get an interaction score, and what abstaining less costs in stance F_avg.

    .venv/bin/python benchmarks/stance_coverage.py

A reply is scored when neither it nor its parent has an "unclear" stance (scoring/rules.py).
``LearnedExtractor(unclear_above=τ)`` reports "unclear" only when the head gives it probability
≥ τ (τ = 0: the plain argmax, as before). For each τ:
- SemEval val (294 tweets, five targets): pooled F_avg and the share of tweets with a stance,
  with the topic heads (shipped descriptions) and with the generic head (the five targets
  described in other words, matching off);
- real Reddit threads (DEBAGREEMENT Brexit + climate rebuilt as threads, ``real_text.py``):
  the share of replies (parent known) that get an interaction score. climate uses topics.toml's
  climate_change (its SemEval head); Brexit is described in ``real_text.BREXIT`` (generic head).
The shipped τ (``STANCE_UNCLEAR_ABOVE``) is the largest τ whose F_avg is within ``TOLERANCE`` of
the argmax's on both SemEval rows (294 tweets: a difference of 0.005 is 1-2 tweets).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import STANCE_NAMES, STANCE_TARGET_NAMES, STANCE_TARGETS, tweeteval  # noqa: E402
from benchmarks.real_text import BREXIT, reddit_threads  # noqa: E402
from benchmarks.topic_heads import PARAPHRASES_B  # noqa: E402
from polarwatch.config import Topic, load_topics  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOLERANCE = 0.005
GRID = (0.0, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.01)


def semeval_curve(described: dict[str, tuple[str, str, str]], head_match_min: float | None
                  ) -> dict[float, tuple[float, float]]:
    """τ -> (pooled F_avg, share of tweets with a stance)."""
    from sklearn.metrics import f1_score

    from scoring.extractors.learned import LearnedExtractor

    ext = LearnedExtractor([Topic(id=t, name=n, pro=p, anti=a)
                            for t, (n, p, a) in described.items()], head_match_min=head_match_min)
    posts, gold = [], []
    for t in described:
        texts, y = tweeteval(f"stance/{t}", "val")
        posts += [PostPair(f"{t}{i}", x, t) for i, x in enumerate(texts)]
        gold += [STANCE_NAMES[int(v)] for v in y]
    out = {}
    for tau in GRID:
        ext.unclear_above = tau
        pred = [lab.stance for lab in ext.extract(posts)]
        f = float(f1_score(gold, pred, labels=["pro", "anti"], average=None,
                           zero_division=0).mean())
        out[tau] = (f, sum(p != "unclear" for p in pred) / len(pred))
    return out


def reddit_coverage() -> tuple[dict[float, dict[str, float]], int]:
    """τ -> {subreddit: share of replies scored}, and the number of replies."""
    from scoring.extractors.learned import LearnedExtractor

    threads = reddit_threads(["Brexit", "climate"])
    topics = [*load_topics(REPO / "topics.toml"),
              Topic(id=BREXIT[0], name=BREXIT[1], pro=BREXIT[2], anti=BREXIT[3])]
    ext = LearnedExtractor(topics)
    out: dict[float, dict[str, float]] = {}
    for tau in GRID:
        ext.unclear_above = tau
        stance = {}
        for i in range(0, len(threads.posts), 500):
            batch = threads.posts[i:i + 500]
            stance.update({p.post_id: lab.stance for p, lab in zip(batch, ext.extract(batch),
                                                                      strict=True)})
        scored: dict[str, list[bool]] = {}
        for reply, parent in threads.parent_of.items():
            ok = "unclear" not in (stance[reply], stance[parent])
            scored.setdefault(threads.subreddit[reply], []).append(ok)
            scored.setdefault("all", []).append(ok)
        out[tau] = {k: sum(v) / len(v) for k, v in scored.items()}
    return out, len(threads.parent_of)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scoring.extractors.decisions import STANCE_UNCLEAR_ABOVE

    shipped = {t: (STANCE_TARGET_NAMES[t], *d) for t, d in STANCE_TARGETS.items()}
    heads = semeval_curve(shipped, None)
    generic = semeval_curve(PARAPHRASES_B, 2.0)
    reddit, n_replies = reddit_coverage()
    print(f"| τ (unclear only if p ≥ τ) | SemEval F_avg, topic heads | share with a stance | "
          f"SemEval F_avg, generic head | share with a stance | Reddit replies scored, all "
          f"(n={n_replies:,}) | Brexit | climate |\n|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tau in GRID:
        r = reddit[tau]
        mark = " (shipped)" if abs(tau - STANCE_UNCLEAR_ABOVE) < 1e-9 else ""
        print(f"| {tau:.2f}{mark} | {heads[tau][0]:.3f} | {heads[tau][1]:.0%} | "
              f"{generic[tau][0]:.3f} | {generic[tau][1]:.0%} | {r['all']:.0%} | "
              f"{r['Brexit']:.0%} | {r['climate']:.0%} |", flush=True)
    for tol in (0.0, TOLERANCE):
        ok = [t for t in GRID if heads[t][0] >= heads[0.0][0] - tol
              and generic[t][0] >= generic[0.0][0] - tol]
        print(f"largest τ with F_avg at least the argmax's - {tol} on both SemEval rows: "
              f"{max(ok):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
