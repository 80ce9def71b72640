"""How far apart are r/democrats and r/Republican posts at all? A supervised ceiling.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/community_ceiling.py

The community check asks a stance head, reading "Sides with Democrats." / "Sides with
Republicans.", to give r/democrats' posts 25 points more "pro" than r/Republican's. This asks
an easier question with the answer in hand: trained *on the subreddit itself* (5-fold
cross-validation over the DEBAGREEMENT dev threads' distinct posts), how well does a linear model
tell the two subreddits' posts apart, from the encoder's vectors (shipped variant with and
without its adapter, and the fp32 base) and from the words (TF-IDF uni- and bigrams)? Balanced
accuracy; 0.5 is a coin flip. A model that labelled every post by its predicted subreddit at
balanced accuracy a would show a pro gap of 2a - 1 (e.g. 0.65 -> +30 points).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import log, subreddit_posts  # noqa: E402
from benchmarks.train_heads import embedding_cache  # noqa: E402
from scoring.extractors.learned import HEADS_DIR  # noqa: E402


def balanced_cv(model: object, x: object, y: np.ndarray) -> float:
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds, scoring="balanced_accuracy").mean())


def main() -> int:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = subreddit_posts()
    dem, rep = texts["democrats"], texts["Republican"]
    y = np.r_[np.ones(len(dem)), np.zeros(len(rep))]
    log(f"{len(dem):,} r/democrats and {len(rep):,} r/Republican posts")
    for variant, adapter in (("int8mix-seq128", HEADS_DIR / "encoder_adapter.npz"),
                             ("int8mix-seq128", None), ("fp32-seq256", None)):
        enc = embedding_cache(variant, adapter)
        x = np.vstack([enc(dem, "probe-community-democrats"),
                       enc(rep, "probe-community-Republican")])
        for c in (0.1, 1.0):
            model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            print(f"encoder {variant}, adapter {'shipped' if adapter else 'none'}, logistic "
                  f"C={c}: balanced accuracy {balanced_cv(model, x, y):.3f}", flush=True)
    for c in (1.0, 10.0):
        model = make_pipeline(TfidfVectorizer(min_df=2, ngram_range=(1, 2), sublinear_tf=True),
                              LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))
        print(f"TF-IDF words, logistic C={c}: balanced accuracy "
              f"{balanced_cv(model, dem + rep, y):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
