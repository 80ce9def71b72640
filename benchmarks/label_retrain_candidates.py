"""Why a retrain from 30-100 labels helps some topics and not others: every candidate the
retrain chooses from (``scoring.retrain.CANDIDATES``: the prior's logits re-weighted, or the
prior's logits plus every feature at each C), fitted on the same labels as
``benchmarks/label_retrain.py``'s simulated analyst, scored on the posts nobody labelled, next
to the serving head and the candidate the retrain's inner cross-validation picks.

    HF_HUB_OFFLINE=1 python benchmarks/label_retrain_candidates.py [--semeval feminist hillary]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import STANCE_TARGETS  # noqa: E402
from benchmarks.label_retrain import (  # noqa: E402
    Source,
    claims,
    config,
    label_until,
    semeval,
    store,
)
from scoring.extractors.base import PostPair  # noqa: E402
from scoring.retrain import CANDIDATES, f_avg, fit_candidate, pick_candidate  # noqa: E402


def study(src: Source, checkpoints: list[int], random_share: float, tmp: Path) -> None:
    from scoring.extractors.decisions import abstain
    from scoring.extractors.features import prior_logits, stance_features
    from scoring.extractors.learned import LearnedExtractor
    from scoring.extractors.registry import get_extractor

    config(tmp, src.topic)
    path = tmp / "w.duckdb"
    options = {"heads_dir": src.heads_dir} if src.heads_dir else {}
    ext = get_extractor("learned", [src.topic], **options)
    assert isinstance(ext, LearnedExtractor)
    labels = ext.extract([PostPair(str(i), t, src.topic.id) for i, t in enumerate(src.texts)])
    store(path, src, labels)
    serving = [lab.stance for lab in labels]
    t_pro, t_anti = ext.encoder.encode([src.topic.pro, src.topic.anti])
    e = ext.encoder.encode(src.texts)
    x_all = np.asarray(stance_features(e, t_pro, t_anti), dtype=np.float64)
    g_all = np.asarray(prior_logits(ext.heads["stance"], x_all), dtype=np.float64)
    done: list[int] = []
    for n in checkpoints:
        if len(src.texts) - n < 30:
            break
        label_until(path, src, "stance", n, random_share, done)
        held = sorted(set(range(len(src.texts))) - set(done))
        gold = [src.gold[i] for i in held]
        truth = [src.gold[i] for i in done]
        classes = [s for s in ("unclear", "anti", "pro") if truth.count(s) >= 5]
        if "pro" not in classes or "anti" not in classes:
            print(f"| {src.topic.id} | {n} | too few labels of a side |", flush=True)
            continue
        keep = [i for i in done if src.gold[i] in classes]
        y = np.array([classes.index(src.gold[i]) for i in keep])
        scores = {}
        for kind, c in CANDIDATES:
            model = fit_candidate(x_all[keep], g_all[keep], y, len(classes), kind, c)
            pred = [classes[abstain(row, classes, ext.unclear_above)]
                    for row in model.proba(x_all[held], g_all[held])]
            scores[f"{kind} C={c:g}"] = f_avg(gold, pred)
        kind, c = pick_candidate(x_all[keep], g_all[keep], y, classes, ext.unclear_above, 0)
        picked = f"{kind} C={c:g}"
        print(f"| {src.topic.id} | {n} | {f_avg(gold, [serving[i] for i in held]):.3f} | "
              + " | ".join(f"**{v:.3f}**" if k == picked else f"{v:.3f}"
                           for k, v in scores.items()) + " |", flush=True)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--semeval", nargs="*", default=sorted(STANCE_TARGETS),
                    choices=sorted(STANCE_TARGETS))
    ap.add_argument("--claims", type=int, default=2)
    ap.add_argument("--labels", type=int, nargs="+", default=[30, 60, 100])
    ap.add_argument("--random-share", type=float, default=0.3)
    args = ap.parse_args()
    print("| topic | labels | serving head | " + " | ".join(f"{k} C={c:g}" for k, c in CANDIDATES)
          + " |\n|---|---:|---:|" + "---:|" * len(CANDIDATES) + "  (bold: the retrain's pick)")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        sources = [semeval(t, tmp) for t in args.semeval] + claims(args.claims)
        for src in sources:
            study(src, sorted(args.labels), args.random_share, tmp / src.topic.id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
