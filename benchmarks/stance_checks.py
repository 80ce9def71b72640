"""Checks that catch a sentiment model posing as a stance model, on real data and unseen topics.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stance_checks.py [--heads DIR] [--json OUT]
        [--only perspectrum,semeval,...] [--perspectrum-split dev]

Runs the `learned` backend as a user gets it (``LearnedExtractor``: topic-head matching on) on:

1. **PERSPECTRUM test claims** (227 claims, never trained on): every claim is a topic written
   "In favour of <claim>." / "Against <claim>."; each perspective sentence is a post. F_avg =
   mean(F1 pro, F1 anti). Also with a second phrasing ("Supports the view that ..." / "Opposes
   the view that ...") and with matching off (the generic head only).
2. **Description flip**: the same posts with every topic's pro and anti swapped. Share of the
   labels that were pro or anti that flip (pro <-> anti); PERSPECTRUM test, the SemEval val tweets
   (five targets) and the DEBAGREEMENT communities.
3. **Stance vs VADER**: per topic, Pearson r of stance (+1 pro, -1 anti, 0 unclear) with VADER's
   compound polarity. A sentiment model in disguise shows |r| near its accuracy; gold labels set
   the level stance really has (the ``gold r`` column).
4. **Communities** (DEBAGREEMENT dev threads, every distinct post): "US party politics" (pro =
   sides with Democrats) on r/democrats vs r/Republican, "Black Lives Matter" on
   r/BlackLivesMatter; share of pro / anti / unclear.
5. **Coverage**: share of DEBAGREEMENT reply pairs whose reply and parent both get a side (a pair
   with an unclear stance gets no interaction score).
6. **Hand-labelled communities** (``benchmarks/community_stance_sample.py``): 300 posts, gold
   stance against the backend's, per subreddit.
7. **Pairs**: real reply pairs whose agreement people labelled (DEBAGREEMENT dev, the communities'
   topics; SubReddit CovidVaccine / MaskMandate, two topics written here for them): where reply and
   parent both take a side, how often an agreeing reply takes its parent's side and a disagreeing
   one the other side. The rule table's half (same or opposite side) is this decision; a model
   that picks it at random scores 0.5 balanced.
8. **Hostility** on the hand-labelled sample (``benchmarks/hostility_sample.py``): of the posts
   `learned` calls hostile, how many are hostile to the other side, rude at someone else, or not
   hostile; and recall of the hostile-to-the-other-side posts.

The script uses only the extractor's public API, so the same file measures an older checkout
(``POLARWATCH_CODE=<old checkout> python benchmarks/stance_checks.py``: that checkout's code and
heads label the posts) for before/after figures. ``PYTHONPATH`` does not do it: this file puts its
own checkout first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    claim_sides,
    debagreement_rows,
    log,
    perspectrum,
    subreddit_posts,
    tweeteval,
)

if os.environ.get("POLARWATCH_CODE"):  # label with another checkout's code and heads; this file's
    sys.path.insert(0, os.environ["POLARWATCH_CODE"])  # benchmarks package is already imported

from polarwatch.config import Topic  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402

# The topics for the community check, in the words it gives (not the ones training used).
PARTY = Topic(id="us_parties", name="US party politics", pro="Sides with Democrats.",
              anti="Sides with Republicans.")
BLM = Topic(id="blm", name="Black Lives Matter", pro="Supports Black Lives Matter.",
            anti="Opposes Black Lives Matter.")
COMMUNITY = {"democrats": PARTY, "Republican": PARTY, "BlackLivesMatter": BLM,
             "Brexit": Topic(id="brexit", name="Brexit", pro="In favour of Brexit.",
                             anti="Against Brexit."),
             "climate": Topic(id="climate", name="Climate change",
                              pro="Climate change is real and we must act.",
                              anti="Climate change is exaggerated or a hoax.")}
COMMUNITY_TOPICS = list({t.id: t for t in COMMUNITY.values()}.values())  # each topic once
# The same two topics described by what each side argues (``--descriptions argued``), as an
# analyst might write them; written once from general knowledge before any run, never tuned.
ARGUED = {
    "us_parties": Topic(id="us_parties", name="US party politics",
                        pro="Sides with Democrats: supports Biden, Obama and progressive policies, "
                            "and criticises Trump and the Republican Party.",
                        anti="Sides with Republicans: supports Trump and conservative policies, "
                             "and criticises Biden, liberals and the Democratic Party."),
    "blm": Topic(id="blm", name="Black Lives Matter",
                 pro="Supports Black Lives Matter: condemns racism and police brutality against "
                     "Black people and calls for justice.",
                 anti="Opposes Black Lives Matter: defends the police, calls the movement violent "
                      "or divisive, and says all lives matter."),
}
# Topics for the SubReddit reply pairs, in a user's words (no stance model trained on them).
PAIR_TOPICS = {"SubReddit-CovidVaccine": Topic(id="covid_vaccine", name="COVID-19 vaccines",
                                               pro="Supports COVID-19 vaccines.",
                                               anti="Opposes COVID-19 vaccines."),
               "SubReddit-MaskMandate": Topic(id="mask_mandate", name="Mask mandates",
                                              pro="Supports mask mandates.",
                                              anti="Opposes mask mandates.")}
SIGN = {"pro": 1.0, "anti": -1.0, "unclear": 0.0}


def swapped(t: Topic) -> Topic:
    return Topic(id=t.id, name=t.name, pro=t.anti, anti=t.pro)


def label(topics: list[Topic], posts: list[tuple[str, str]], heads: Path | None,
          match: bool = True, parents: list[str] | None = None) -> list[Any]:
    """Labels of ``posts`` (topic id, text) from a fresh extractor built for ``topics``; with
    ``parents`` (one text per post) each is read as a reply to its parent (agreement too)."""
    from scoring.extractors.learned import LearnedExtractor

    kw: dict[str, Any] = {"heads_dir": heads}
    if not match:
        kw["head_match_min"] = 2.0  # no description similarity reaches 2: generic head only
    ext = LearnedExtractor(topics, **kw)
    batch = [PostPair(post_id=str(i), text=text, topic=topic,
                      parent_text=parents[i] if parents is not None else None)
             for i, (topic, text) in enumerate(posts)]
    out: list[Any] = []
    t0 = time.perf_counter()
    for i in range(0, len(batch), 256):
        out += ext.extract(batch[i:i + 256])
    log(f"  labelled {len(batch):,} posts in {time.perf_counter() - t0:.0f} s "
        f"({sys.modules[LearnedExtractor.__module__].__file__})")
    return out


def f_avg(gold: list[str], pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=["pro", "anti"], average=None,
                          zero_division=0).mean())


def flip_share(a: list[str], b: list[str]) -> tuple[float, int]:
    """Of the labels in ``a`` that take a side, the share whose label in ``b`` is the other one."""
    sided = [(x, y) for x, y in zip(a, b, strict=True) if x != "unclear"]
    flips = sum(1 for x, y in sided if {x, y} == {"pro", "anti"})
    return (flips / len(sided) if sided else float("nan")), len(sided)


def vader_r(texts: list[str], labels: list[str]) -> float:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    v = SentimentIntensityAnalyzer()
    comp = np.array([v.polarity_scores(t)["compound"] for t in texts])
    s = np.array([SIGN[x] for x in labels])
    return float(np.corrcoef(comp, s)[0, 1]) if s.std() > 0 and comp.std() > 0 else float("nan")


def perspectrum_checks(heads: Path | None, res: dict[str, Any], split: str = "test") -> None:
    claims = perspectrum(split)
    for name, template, match in (("in favour of / against", 0, True),
                                  ("supports / opposes the view that", 2, True),
                                  ("in favour of / against, generic head only", 0, False)):
        sides = [claim_sides(c.text, template) for c in claims]
        topics = [Topic(id=f"c{c.id}", name="", pro=pro, anti=anti)
                  for c, (pro, anti) in zip(claims, sides, strict=True)]
        posts = [(f"c{c.id}", text) for c in claims for text, _ in c.perspectives]
        gold = [STANCE_NAMES[y] for c in claims for _, y in c.perspectives]
        log(f"PERSPECTRUM {split}, {name}: {len(claims)} claims, {len(posts):,} perspectives")
        pred = [lab.stance for lab in label(topics, posts, heads, match)]
        row: dict[str, Any] = {"f_avg": f_avg(gold, pred), "n": len(posts),
                               "labels": dict(Counter(pred))}
        if template == 0 and match:
            # 26 % of the test perspectives (37 % of dev's) also appear in train, under other
            # claims: the figure on the others is stance on text as well as topics never seen
            seen = {text for c in perspectrum("train") for text, _ in c.perspectives}
            new = [i for i, (_, text) in enumerate(posts) if text not in seen]
            old = [i for i, (_, text) in enumerate(posts) if text in seen]
            row["f_avg_unseen_text"] = f_avg([gold[i] for i in new], [pred[i] for i in new])
            row["n_unseen_text"] = len(new)
            row["f_avg_train_text"] = f_avg([gold[i] for i in old], [pred[i] for i in old])
            flipped = [lab.stance for lab in label([swapped(t) for t in topics], posts, heads)]
            row["flip"], row["flip_n"] = flip_share(pred, flipped)
            row["vader_r"] = vader_r([p[1] for p in posts], pred)
            row["gold_vader_r"] = vader_r([p[1] for p in posts], gold)
        res.setdefault("perspectrum" if split == "test" else f"perspectrum_{split}", {})[name] = row
        print(f"PERSPECTRUM {split} ({name}): F_avg {row['f_avg']:.3f} (n={len(posts):,})"
              + (f"; on perspectives not in train {row['f_avg_unseen_text']:.3f} "
                 f"(n={row['n_unseen_text']:,}), on those also in train "
                 f"{row['f_avg_train_text']:.3f}; flip {row['flip']:.1%} of {row['flip_n']:,}; "
                 f"VADER r {row['vader_r']:+.3f} (gold {row['gold_vader_r']:+.3f})"
                 if "flip" in row else ""), flush=True)


def semeval_checks(heads: Path | None, res: dict[str, Any]) -> None:
    topics = [Topic(id=t, name=STANCE_TARGET_NAMES[t], pro=p, anti=a)
              for t, (p, a) in STANCE_TARGETS.items()]
    posts, gold = [], []
    for t in STANCE_TARGETS:
        texts, y = tweeteval(f"stance/{t}", "val")
        posts += [(t, x) for x in texts]
        gold += [STANCE_NAMES[int(k)] for k in y]
    log(f"SemEval val: {len(posts)} tweets")
    pred = [lab.stance for lab in label(topics, posts, heads)]
    flipped = [lab.stance for lab in label([swapped(t) for t in topics], posts, heads)]
    flip, n = flip_share(pred, flipped)
    per = {}
    for t in STANCE_TARGETS:
        idx = [i for i, p in enumerate(posts) if p[0] == t]
        texts = [posts[i][1] for i in idx]
        per[t] = {"vader_r": vader_r(texts, [pred[i] for i in idx]),
                  "gold_vader_r": vader_r(texts, [gold[i] for i in idx]),
                  "f_avg": f_avg([gold[i] for i in idx], [pred[i] for i in idx])}
    res["semeval"] = {"f_avg": f_avg(gold, pred), "flip": flip, "flip_n": n, "per_target": per}
    print(f"SemEval val (shipped descriptions): F_avg {res['semeval']['f_avg']:.3f}; flip "
          f"{flip:.1%} of {n}", flush=True)
    for t, row in per.items():
        print(f"  {t}: F_avg {row['f_avg']:.3f}, VADER r {row['vader_r']:+.3f} "
              f"(gold {row['gold_vader_r']:+.3f})")


def community_checks(heads: Path | None, res: dict[str, Any]) -> None:
    rows = debagreement_rows()
    texts = subreddit_posts(rows)
    topics = COMMUNITY_TOPICS
    posts = [(COMMUNITY[sub].id, x) for sub in texts for x in texts[sub]]
    subs = [sub for sub in texts for _ in texts[sub]]
    log(f"DEBAGREEMENT dev: {len(posts):,} distinct posts")
    pred = [lab.stance for lab in label(topics, posts, heads)]
    flipped = [lab.stance for lab in label([swapped(t) for t in topics], posts, heads)]
    flip, n = flip_share(pred, flipped)
    res["community"] = {"flip": flip, "flip_n": n, "subreddits": {}}
    print(f"DEBAGREEMENT communities: flip {flip:.1%} of {n:,}")
    for sub in texts:
        idx = [i for i, s in enumerate(subs) if s == sub]
        c = Counter(pred[i] for i in idx)
        shares = {k: c[k] / len(idx) for k in ("pro", "anti", "unclear")}
        r = vader_r([posts[i][1] for i in idx], [pred[i] for i in idx])
        res["community"]["subreddits"][sub] = {**shares, "n": len(idx), "vader_r": r,
                                               "topic": COMMUNITY[sub].name}
        print(f"  r/{sub} ({COMMUNITY[sub].name}, n={len(idx):,}): pro {shares['pro']:.0%}, "
              f"anti {shares['anti']:.0%}, unclear {shares['unclear']:.0%}; VADER r {r:+.3f}")
    s = res["community"]["subreddits"]
    gap = s["democrats"]["pro"] - s["Republican"]["pro"]
    print(f"  pro share r/democrats - r/Republican: {gap:+.0%} (target >= +25 points); "
          f"r/BlackLivesMatter majority: {max(('pro', 'anti', 'unclear'), key=lambda k: s['BlackLivesMatter'][k])}")
    # Coverage: reply pairs whose two posts both take a side.
    by_text = {(posts[i][0], posts[i][1]): pred[i] for i in range(len(posts))}
    sided = [by_text[COMMUNITY[r["subreddit"]].id, r["body_child"]] != "unclear"
             and by_text[COMMUNITY[r["subreddit"]].id, r["body_parent"]] != "unclear"
             for r in rows]
    res["coverage"] = float(np.mean(sided))
    print(f"  coverage: {res['coverage']:.1%} of {len(rows):,} reply pairs have two sides")


def sample_checks(heads: Path | None, res: dict[str, Any]) -> None:
    """The backend against the hand-labelled community sample (``community_stance_sample.py``)."""
    from benchmarks.community_stance_sample import SUBREDDITS, load_sample, shares

    sample = load_sample()
    pred = [lab.stance for lab in label(COMMUNITY_TOPICS, [(COMMUNITY[sub].id, text)
                                                           for _, sub, text, _ in sample], heads)]
    res["sample"] = {}
    print(f"Hand-labelled community sample (n={len(sample)}), gold -> backend:")
    for sub in SUBREDDITS:
        idx = [i for i, (_, s, _, _) in enumerate(sample) if s == sub]
        g, p = [sample[i][3] for i in idx], [pred[i] for i in idx]
        gs, ps = shares(g), shares(p)
        acc = sum(a == b for a, b in zip(g, p, strict=True)) / len(idx)
        sided = [(a, b) for a, b in zip(g, p, strict=True) if a != "unclear" and b != "unclear"]
        right = sum(a == b for a, b in sided) / max(len(sided), 1)
        fa = f_avg(g, p)
        res["sample"][sub] = {"gold": gs, "backend": ps, "accuracy": acc, "f_avg": fa,
                              "side_right": right, "both_sided": len(sided)}
        print(f"  r/{sub}: " + ", ".join(f"{k} {gs[k]:.0%} -> {ps[k]:.0%}" for k in gs)
              + f"; accuracy {acc:.0%}, F_avg {fa:.3f}; where both take a side, "
              f"the side is right {right:.0%} of {len(sided)}")
    gap = {k: res["sample"]["democrats"][k]["pro"] - res["sample"]["Republican"][k]["pro"]
           for k in ("gold", "backend")}
    print(f"  pro share r/democrats - r/Republican: gold {gap['gold']:+.0%}, backend "
          f"{gap['backend']:+.0%}")


def side_consistency(agreement: list[int], parent: list[str], reply: list[str]
                     ) -> dict[str, float]:
    """Of the pairs labelled agree (2) or disagree (0) whose two posts both take a side: the share
    of agreeing replies on their parent's side, of disagreeing ones on the other side, and the
    mean of the two (balanced: 0.5 is a coin flip, whatever the share of agreeing pairs). The
    product's ``scoring.side_check`` reads the same shares from the warehouse; this file does not
    import it, so that ``POLARWATCH_CODE`` can point at checkouts from before it."""
    both = [(y, p == r) for y, p, r in zip(agreement, parent, reply, strict=True)
            if y != 1 and "unclear" not in (p, r)]
    same = [s for y, s in both if y == 2]
    other = [not s for y, s in both if y == 0]
    a, d = float(np.mean(same)) if same else float("nan"), float(np.mean(other)) if other else float("nan")
    return {"agree_same": a, "disagree_opposite": d, "balanced": (a + d) / 2,
            "n_agree": len(same), "n_disagree": len(other)}


def pair_checks(heads: Path | None, res: dict[str, Any]) -> None:
    from benchmarks.heads_data import Pairs, agreement_pairs, agreement_split

    deb, other = agreement_pairs()
    _, held_out = agreement_split(deb)
    topic = {**{sub: t.id for sub, t in COMMUNITY.items()},
             **{sub: t.id for sub, t in PAIR_TOPICS.items()}}
    sets: dict[str, tuple[Pairs, range | np.ndarray]] = {
        "DEBAGREEMENT dev": (deb, range(len(deb.labels))),
        "DEBAGREEMENT held out from the agreement head": (deb, held_out),
        "SubReddit CovidVaccine + MaskMandate": (other, range(len(other.labels)))}
    posts = sorted({(topic[p.groups[i]], text) for p, idx in sets.values() for i in idx
                    for text in (p.parents[i], p.children[i])})
    log(f"reply pairs: {len(posts):,} distinct posts")
    stance = dict(zip(posts, (lab.stance for lab in label(COMMUNITY_TOPICS + list(
        PAIR_TOPICS.values()), posts, heads)), strict=True))
    # The dashboard's check reads the agreement head's verdicts instead of the people's labels.
    replies = [(p, i) for p, idx in (sets["DEBAGREEMENT dev"], sets["SubReddit CovidVaccine + "
                                                                   "MaskMandate"]) for i in idx]
    verdict = {(id(p), i): ["disagree", "unclear", "agree"].index(lab.agreement) for (p, i), lab
               in zip(replies, label(COMMUNITY_TOPICS + list(PAIR_TOPICS.values()),
                                     [(topic[p.groups[i]], p.children[i]) for p, i in replies],
                                     heads, parents=[p.parents[i] for p, i in replies]),
                      strict=True)}
    res["pairs"] = {}
    print("Reply pairs (agreement labelled by people): is the reply on its parent's side?")
    for name, (p, idx) in sets.items():
        sides = ([stance[topic[p.groups[i]], p.parents[i]] for i in idx],
                 [stance[topic[p.groups[i]], p.children[i]] for i in idx])
        row = side_consistency([int(p.labels[i]) for i in idx], *sides)
        row["balanced_by_agreement_head"] = side_consistency(
            [verdict[id(p), i] for i in idx], *sides)["balanced"]
        res["pairs"][name] = row
        print(f"  {name}: agreeing replies on the parent's side {row['agree_same']:.0%} of "
              f"{row['n_agree']:,}, disagreeing on the other side {row['disagree_opposite']:.0%} "
              f"of {row['n_disagree']:,}; balanced {row['balanced']:.3f} (coin flip 0.5); "
              f"against the agreement head's verdicts (the dashboard's check) "
              f"{row['balanced_by_agreement_head']:.3f}")


def hostility_checks(heads: Path | None, res: dict[str, Any]) -> None:
    from benchmarks.hostility_sample import load_sample

    sample = load_sample()
    posts = [(COMMUNITY[sub].id, text) for _, sub, text, _ in sample]
    gold = [g for *_, g in sample]
    pred = [lab.affect for lab in label(COMMUNITY_TOPICS, posts, heads)]
    hostile = [g for g, p in zip(gold, pred, strict=True) if p == "yes"]
    c = Counter(hostile)
    side = sum(1 for g in gold if g == "other_side")
    caught = sum(1 for g, p in zip(gold, pred, strict=True) if g == "other_side" and p == "yes")
    res["hostility"] = {"n": len(gold), "called_hostile": len(hostile), "of_which": dict(c),
                        "other_side": side, "other_side_caught": caught}
    print(f"Hostility sample (n={len(gold)}, r/democrats + r/Republican): learned calls "
          f"{len(hostile)} hostile ({len(hostile) / len(gold):.0%}); of those "
          + ", ".join(f"{k} {v}" for k, v in c.most_common())
          + f"; hostile to the other side caught {caught} of {side}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", type=Path, default=None, help="heads directory (default: shipped)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--only", default="perspectrum,semeval,community,sample,pairs,hostility")
    ap.add_argument("--perspectrum-split", choices=("test", "dev"), default="test",
                    help="PERSPECTRUM claims to check; dev is the split train_heads.py picks on")
    ap.add_argument("--descriptions", choices=("issue", "argued"), default="issue",
                    help="community topics in the issue's words or saying what each side argues")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.descriptions == "argued":
        global COMMUNITY, COMMUNITY_TOPICS
        COMMUNITY = {sub: ARGUED.get(t.id, t) for sub, t in COMMUNITY.items()}
        COMMUNITY_TOPICS = list({t.id: t for t in COMMUNITY.values()}.values())
    res: dict[str, Any] = {}
    checks: dict[str, Callable[[Path | None, dict[str, Any]], None]] = {
        "perspectrum": partial(perspectrum_checks, split=args.perspectrum_split),
        "semeval": semeval_checks,
        "community": community_checks, "sample": sample_checks,
        "pairs": pair_checks, "hostility": hostility_checks}
    for name in args.only.split(","):
        checks[name](args.heads, res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
