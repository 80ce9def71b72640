"""What a weak-label topic head buys on a SemEval target no supervised head was trained for.

    .venv/bin/python benchmarks/weak_labels.py

For each SemEval-2016 target, the cue terms below (hashtags and phrases a user would put in
``pro_terms`` / ``anti_terms``; written from general knowledge of each debate, not tuned on the
data) label that target's *training* tweets, gold labels ignored (``scoring.weak_labels``, as
``polarwatch train --task stance --weak-labels`` does); the head is trained on them
(``scoring.training.train_rows``) and scored on the target's validation tweets, next to the
generic head refitted without that target (leave-one-target-out, as in ``topic_heads.py``) and
the supervised topic head (trained on the gold labels, the ceiling). A target whose cues label
fewer than ``MIN_PER_SIDE`` posts on a side keeps the generic head. Encoder: the shipped one;
its adapter was fine-tuned on all five targets' training tweets with gold labels, so neither the
weak nor the leave-one-target-out figure is a clean zero-shot figure (see benchmarks/README.md).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    tweeteval,
)
from polarwatch.config import Topic  # noqa: E402

CUES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "abortion": (("#prochoice", "pro-choice", "pro choice", "my body my choice", "#mybodymychoice",
                  "reproductive rights", "#reprorights", "#standwithpp", "women's rights"),
                 ("#prolife", "pro-life", "pro life", "unborn", "#defundpp", "baby killers",
                  "abortion is murder", "right to life", "#babylivesmatter")),
    "atheism": (("#atheism", "#atheist", "#freethinker", "no god", "religion is poison",
                 "#secular", "#nogod", "#religionofpeace"),
                ("#god", "#jesus", "#faith", "#prayer", "pray", "#bible", "#christian", "lord",
                 "#blessed", "amen", "#islam")),
    "climate": (("#climatechange", "#climateaction", "#actonclimate", "global warming is real",
                 "#renewables", "#sustainability", "#climatejustice", "#green"),
                ("hoax", "#climatescam", "climate alarmism", "#globalwarminghoax", "junk science",
                 "#climatehoax")),
    "feminist": (("#feminism", "#yesallwomen", "#equality", "#heforshe", "#womensrights",
                  "gender equality", "#feminist"),
                 ("#gamergate", "#antifeminism", "#meninist", "feminazi", "feminazis",
                  "#notallmen", "#womenagainstfeminism")),
    "hillary": (("#hillary2016", "#imwithher", "#readyforhillary", "#hillaryforpresident",
                 "#madamepresident"),
                ("#stophillary", "#benghazi", "#nohillary2016", "#hillaryforprison",
                 "#wakeupamerica", "#tcot", "#stophillary2016", "emails")),
}


MIN_PER_SIDE = 10  # fewer weak labels on a side: no weak head, the generic head stays


def f_avg(gold: list[str], pred: list[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=["pro", "anti"], average=None,
                          zero_division=0).mean())


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from benchmarks.topic_heads import loto
    from scoring.extractors.learned import HEADS_DIR, Head, shipped_encoder, stance_features
    from scoring.training import train_rows
    from scoring.weak_labels import weak_label_rows

    enc = shipped_encoder(cache_size=0)
    _, loto_per = loto(adapter=True, per_target_preds=True)
    print("| target | weak labels on train: pro / anti / both (left out) / unclear of no-cue | "
          "weak-label precision vs gold | weak head F_avg | generic head, target left out | "
          "supervised topic head |\n|---|---|---:|---:|---:|---:|")
    pooled: dict[str, tuple[list[str], list[str]]] = {"weak": ([], []), "loto": ([], []),
                                                      "supervised": ([], [])}
    for target, (pro_terms, anti_terms) in CUES.items():
        pro, anti = STANCE_TARGETS[target]
        topic = Topic(id=target, name=STANCE_TARGET_NAMES[target], pro=pro, anti=anti,
                      pro_terms=pro_terms, anti_terms=anti_terms)
        texts, gold_train = tweeteval(f"stance/{target}", "train")
        weak = weak_label_rows(texts, topic)
        cued = [(r["label"], STANCE_NAMES[int(gold_train[r["index"]])]) for r in weak.rows
                if r["label"] != "unclear"]
        precision = np.mean([lab == g for lab, g in cued]) if cued else np.nan
        thin = min(weak.counts["pro"], weak.counts["anti"]) < MIN_PER_SIDE
        head = None
        if not thin:  # as `polarwatch train --weak-labels` refuses too few labels
            with tempfile.TemporaryDirectory() as tmp:
                head = Head.load(train_rows("stance", weak.rows, [topic], Path(tmp) / "h.npz",
                                            "weak", encoder=enc).output)
        v_texts, v_y = tweeteval(f"stance/{target}", "val")
        gold = [STANCE_NAMES[int(y)] for y in v_y]
        t_pro, t_anti = enc.encode([pro, anti])
        x = stance_features(enc.encode(v_texts), t_pro, t_anti)
        preds = {"weak": [head.classes[k] for k in head.predict_proba(x).argmax(1)]
                 if head is not None else loto_per[target], "loto": loto_per[target]}
        sup = Head.load(HEADS_DIR / f"stance_{target}.npz")
        preds["supervised"] = [sup.classes[k] for k in sup.predict_proba(x).argmax(1)]
        for k, p in preds.items():
            pooled[k][0].extend(gold)
            pooled[k][1].extend(p)
        c = weak.counts
        print(f"| {target} | {c['pro']} / {c['anti']} / {c['both']} / {c['unclear']} of "
              f"{c['none']} | {precision:.2f} | {f_avg(gold, preds['weak']):.3f}"
              f"{' (too few labels: generic)' if head is None else ''} | "
              f"{f_avg(gold, preds['loto']):.3f} | {f_avg(gold, preds['supervised']):.3f} |",
              flush=True)
    print(f"| pooled (n={len(pooled['weak'][0])}) | | | {f_avg(*pooled['weak']):.3f} | "
          f"{f_avg(*pooled['loto']):.3f} | {f_avg(*pooled['supervised']):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
