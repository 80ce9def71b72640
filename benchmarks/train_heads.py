"""Train the `learned` backend's heads and report validation metrics.

    .venv/bin/python benchmarks/train_heads.py [--out scoring/heads] [--skip-loto]
        [--encoder int8mix-seq128] [--adapter /tmp/ft/encoder_adapter.npz]

Trains only on the *train* splits of ``../shared/data`` (DEBAGREEMENT has a single file: a fixed,
stratified 25 % of it is held out and never trained on). Hyper-parameters are chosen by
cross-validation on the training data; the validation splits are only scored. Writes
``scoring/heads/*.npz`` and ``scoring/heads/MODEL_CARD.md``. MiniLM embeddings are cached under
``/tmp/polarwatch-embcache`` (keyed by encoder variant) so re-runs take seconds. Every head records
the encoder variant it was trained on (``encoder_variant``), which the backend then uses.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    AGREEMENT_NAMES,
    CLAIM_TEMPLATES,
    EMOTION_NAMES,
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    EmbeddingCache,
    agreement_pairs,
    agreement_split,
    claim_sides,
    log,
    perspectrum,
    tweeteval,
)
from benchmarks.model_card import write_model_card  # noqa: E402
from scoring.extractors.features import mirror_stance_features  # noqa: E402
from scoring.extractors.learned import (  # noqa: E402
    HEADS_DIR,
    Head,
    pair_features,
    stance_features,
)

SEED = 0
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # inverse L2 strength; chosen per head by CV on train
EMOTION_NEUTRAL_BELOW = 0.40  # see scoring/extractors/learned.py DEFAULT_NEUTRAL_BELOW
DEFAULT_ENCODER = "int8mix-seq128"  # see scoring/extractors/learned.py CachedEncoder
# Candidates for the generic stance head, on standardized stance_features.
GENERIC_STANCE_MODELS: dict[str, Any] = {
    "logistic C=1": lambda: logreg(1.0),
    "mlp 256 alpha=0.01": lambda: mlp(0.01),
    "mlp 256 alpha=0.001": lambda: mlp(0.001),
}
_ENCODER = {"variant": DEFAULT_ENCODER, "adapter": ""}  # set by main(); written into every head


def f_avg(y: np.ndarray, pred: np.ndarray) -> float:
    """SemEval-2016 stance metric: mean of F1(favor) and F1(against) (labels 2 and 1)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=[1, 2], average=None).mean())


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro"))


def served_predict(clf: Any, x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The generic head's labels as the backend serves them: the mean of its answers with the
    descriptions as given and swapped (``scoring.extractors.features.features_proba``), then
    the likelier class. Labels: 0 unclear, 1 anti, 2 pro."""
    p = clf.predict_proba((x - mean) / scale)
    q = clf.predict_proba((mirror_stance_features(x) - mean) / scale)
    mirror = [list(clf.classes_).index({1: 2, 2: 1}.get(int(c), int(c))) for c in clf.classes_]
    return np.asarray(clf.classes_)[((p + q[:, mirror]) / 2).argmax(1)]


def to_head(clf: Any, names: tuple[str, ...], meta: dict[str, Any] | None = None) -> Head:
    """Convert a fitted LogisticRegression / MLPClassifier into numpy arrays (softmax output)."""
    classes = np.array([names[int(c)] for c in clf.classes_])
    if hasattr(clf, "coefs_"):
        ws, bs = list(clf.coefs_), list(clf.intercepts_)
    else:
        ws, bs = [clf.coef_.T], [clf.intercept_]
    if ws[-1].shape[1] == 1:  # binary: sigmoid(z) == softmax([0, z])
        ws[-1] = np.hstack([np.zeros_like(ws[-1]), ws[-1]])
        bs[-1] = np.concatenate([[0.0], bs[-1]])
    arrays: dict[str, np.ndarray] = {"classes": classes}
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        arrays[f"W{i}"], arrays[f"b{i}"] = w.astype(np.float32), b.astype(np.float32)
    encoder = {"encoder_variant": _ENCODER["variant"], "encoder_adapter": _ENCODER["adapter"]}
    for k, v in {**encoder, **(meta or {})}.items():
        arrays[k] = np.array(v)
    return Head(arrays)


def mlp(alpha: float) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(256,), alpha=alpha, early_stopping=True,
                         max_iter=60, random_state=SEED)


def logreg(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=3000, class_weight="balanced")


def choose_c(x: np.ndarray, y: np.ndarray, score: Any, groups: np.ndarray | None = None,
             grid: tuple[float, ...] = C_GRID, folds: int = 5) -> tuple[float, dict[float, float]]:
    """Pick C by (grouped) cross-validation on the training data only."""
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict

    cv: Any = (GroupKFold(n_splits=len(set(groups))) if groups is not None
               else StratifiedKFold(folds, shuffle=True, random_state=SEED))
    scores = {c: score(y, cross_val_predict(logreg(c), x, y, cv=cv, groups=groups)) for c in grid}
    best = max(scores, key=lambda c: scores[c])
    return best, scores


# --------------------------------------------------------------------------------------------


def perspectrum_stance(enc: EmbeddingCache, split: str, templates: range,
                       swap: bool) -> tuple[np.ndarray, np.ndarray]:
    """PERSPECTRUM claims of `split` as topics: every perspective sentence read against its
    claim's pro/anti descriptions in each phrasing of `templates` (``CLAIM_TEMPLATES``), and with
    `swap` once more with pro and anti swapped and the label flipped."""
    claims = perspectrum(split)
    emb = enc([s for c in claims for s, _ in c.perspectives], f"perspectrum-{split}")
    xs, ys = [], []
    start = 0
    for c in claims:
        e = emb[start:start + len(c.perspectives)]
        y = np.array([label for _, label in c.perspectives])
        start += len(c.perspectives)
        for t in templates:
            t_pro, t_anti = enc(list(claim_sides(c.text, t)), f"perspectrum-claim-{c.id}-{t}")
            xs.append(stance_features(e, t_pro, t_anti))
            ys.append(y)
            if swap:
                xs.append(stance_features(e, t_anti, t_pro))
                ys.append(3 - y)
    return np.vstack(xs), np.concatenate(ys)


def semeval_stance(enc: EmbeddingCache, targets: list[str], split: str,
                   swap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SemEval tweets of `targets` read against their shipped descriptions: features, labels and
    each row's target index; with `swap` once more with pro and anti swapped and the label
    flipped (forces the head to read the descriptions, not each target's majority side)."""
    xs, ys, gs = [], [], []
    for i, t in enumerate(targets):
        texts, y = tweeteval(f"stance/{t}", split)
        e = enc(texts, f"stance-{t}-{split}")
        t_pro, t_anti = enc(list(STANCE_TARGETS[t]), f"stance-desc-{t}")
        xs.append(stance_features(e, t_pro, t_anti))
        ys.append(y)
        gs.append(np.full(len(y), i))
        if swap:
            xs.append(stance_features(e, t_anti, t_pro))
            ys.append(np.choose(y, [0, 2, 1]))
            gs.append(np.full(len(y), i))
    return np.vstack(xs), np.concatenate(ys), np.concatenate(gs)


def train_stance(enc: EmbeddingCache, out: Path, skip_loto: bool) -> dict[str, Any]:
    targets = list(STANCE_TARGETS)
    build = partial(semeval_stance, enc)

    res: dict[str, Any] = {"per_target": {}}
    # 1. Topic-specific heads (used for a topic configured with exactly these descriptions).
    preds, gold = [], []
    for t in targets:
        x, y, _ = build([t], "train", swap=False)
        c, _ = choose_c(x, y, f_avg)
        clf = logreg(c).fit(x, y)
        xv, yv, _ = build([t], "val", swap=False)
        pv = clf.predict(xv)
        preds.append(pv)
        gold.append(yv)
        res["per_target"][t] = {"C": c, "f_avg": f_avg(yv, pv), "n_val": len(yv)}
        pro, anti = STANCE_TARGETS[t]
        to_head(clf, STANCE_NAMES, {"pro": pro, "anti": anti, "name": STANCE_TARGET_NAMES[t],
                                    "trained_on": f"stance/{t}"}
                ).save(out / f"stance_{t}.npz")
        log(f"stance head {t}: C={c}, val F_avg={res['per_target'][t]['f_avg']:.3f}")
    res["topic_heads_f_avg"] = f_avg(np.concatenate(gold), np.concatenate(preds))
    log(f"stance topic-specific heads: pooled val F_avg = {res['topic_heads_f_avg']:.3f}")

    # 2. The generic, description-conditioned head: SemEval's five targets and PERSPECTRUM's
    # 541 train claims (many targets, each claim in five phrasings), both also with pro and
    # anti swapped. The model (logistic, or one hidden layer of 256 ReLUs, which can weigh the
    # post against the difference of the two descriptions) is chosen on PERSPECTRUM's dev
    # claims, topics it never saw.
    xp, yp = perspectrum_stance(enc, "train", range(len(CLAIM_TEMPLATES)), swap=True)
    xd, yd = perspectrum_stance(enc, "dev", range(1), swap=False)
    x, y, _ = build(targets, "train", swap=True)
    x, y = np.vstack([x, xp]), np.concatenate([y, yp])
    mean, scale = x.mean(0), x.std(0) + 1e-6
    dev_scores: dict[str, float] = {}
    fitted: dict[str, Any] = {}
    for name, make in GENERIC_STANCE_MODELS.items():
        fitted[name] = make().fit((x - mean) / scale, y)
        dev_scores[name] = f_avg(yd, served_predict(fitted[name], xd, mean, scale))
        log(f"stance generic head {name}: PERSPECTRUM dev F_avg {dev_scores[name]:.3f}")
    model = max(dev_scores, key=lambda k: dev_scores[k])
    clf = fitted[model]
    res["perspectrum_dev_f_avg"] = dev_scores[model]
    res["perspectrum_dev"] = dev_scores
    to_head(clf, STANCE_NAMES, {"features": "stance_features", "model": model,
                                "trained_on": "stance/* + perspectrum train",
                                "mean": mean, "scale": scale}).save(out / "stance.npz")
    x_val, yv, _ = build(targets, "val", swap=False)
    res["generic_C"] = model
    res["generic_f_avg"] = f_avg(yv, served_predict(clf, x_val, mean, scale))
    log(f"stance generic head (all 5 targets): pooled val F_avg = {res['generic_f_avg']:.3f}")
    if not skip_loto:
        preds, gold = [], []
        res["loto"] = {}
        for h in targets:
            xh, yh, _ = build([t for t in targets if t != h], "train", swap=True)
            clf_h = GENERIC_STANCE_MODELS[model]().fit((np.vstack([xh, xp]) - mean) / scale,
                                                       np.concatenate([yh, yp]))
            xv, yv, _ = build([h], "val", swap=False)
            pv = served_predict(clf_h, xv, mean, scale)
            preds.append(pv)
            gold.append(yv)
            res["loto"][h] = f_avg(yv, pv)
        res["loto_f_avg"] = f_avg(np.concatenate(gold), np.concatenate(preds))
        log(f"stance leave-one-target-out: pooled val F_avg = {res['loto_f_avg']:.3f} "
            f"({ {k: round(v, 3) for k, v in res['loto'].items()} })")
    return res


def train_affect(enc: EmbeddingCache, out: Path) -> dict[str, Any]:
    texts, y = tweeteval("offensive", "train")
    x = enc(texts, "offensive-train")
    c, cv = choose_c(x, y, macro_f1, grid=(0.3, 1.0, 3.0))
    clf = logreg(c).fit(x, y)
    xv_texts, yv = tweeteval("offensive", "val")
    score = macro_f1(yv, clf.predict(enc(xv_texts, "offensive-val")))
    to_head(clf, ("no", "yes"), {"trained_on": "tweeteval/offensive"}).save(out / "affect.npz")
    log(f"affect head: C={c} (CV {cv}), OffensEval val macro-F1 = {score:.3f}")
    return {"C": c, "macro_f1": score}


def train_emotion(enc: EmbeddingCache, out: Path) -> dict[str, Any]:
    texts, y = tweeteval("emotion", "train")
    x = enc(texts, "emotion-train")
    c, cv = choose_c(x, y, macro_f1, grid=(0.3, 1.0, 3.0))
    clf = logreg(c).fit(x, y)
    v_texts, yv = tweeteval("emotion", "val")
    pv = clf.predict_proba(enc(v_texts, "emotion-val"))
    score = macro_f1(yv, clf.classes_[pv.argmax(1)])
    neutral_share = float((pv.max(1) < EMOTION_NEUTRAL_BELOW).mean())
    to_head(clf, EMOTION_NAMES, {"neutral_below": EMOTION_NEUTRAL_BELOW,
                                 "trained_on": "tweeteval/emotion"}).save(out / "emotion.npz")
    log(f"emotion head: C={c}, TweetEval emotion val macro-F1 = {score:.3f} "
        f"({neutral_share:.0%} of val would map to neutral)")
    return {"C": c, "macro_f1": score, "neutral_share": neutral_share,
            "neutral_below": EMOTION_NEUTRAL_BELOW}


def train_agreement(enc: EmbeddingCache, out: Path) -> dict[str, Any]:
    deb, other = agreement_pairs()
    xd = pair_features(enc(deb.parents, "agr-deb-parent"), enc(deb.children, "agr-deb-child"))
    xo = pair_features(enc(other.parents, "agr-sub-parent"), enc(other.children, "agr-sub-child"))
    tr, ho = agreement_split(deb)
    x = np.vstack([xd[tr], xo])
    y = np.concatenate([deb.labels[tr], other.labels])
    c, cv = choose_c(x, y, macro_f1, grid=(0.03, 0.1, 0.3, 1.0))
    clf = logreg(c).fit(x, y)
    score = macro_f1(deb.labels[ho], clf.predict(xd[ho]))
    to_head(clf, AGREEMENT_NAMES, {"features": "pair_features",
                                   "trained_on": "debagreement(75%)+subreddit"}
            ).save(out / "agreement.npz")
    log(f"agreement head: C={c} (CV {cv}), DEBAGREEMENT held-out macro-F1 = {score:.3f} "
        f"(n={len(ho):,})")
    return {"C": c, "macro_f1": score, "n_holdout": len(ho), "n_train": len(y)}


def embedding_cache(variant: str = DEFAULT_ENCODER, adapter: Path | None = None
                    ) -> EmbeddingCache:
    """The encoder `variant` (with the fine-tuned `adapter`, if any) behind an on-disk cache whose
    key names both; also records them for the heads this run writes."""
    from scoring.extractors.encoder import LEGACY_ENCODER, CachedEncoder, parse_variant

    precision, max_seq_length = parse_variant(variant)
    encoder = CachedEncoder(batch_size=64, cache_size=0, precision=precision,
                            max_seq_length=max_seq_length, adapter=adapter)
    _ENCODER["variant"], _ENCODER["adapter"] = encoder.variant, encoder.adapter
    log(f"encoder variant {encoder.variant}, adapter {encoder.adapter or 'none'}")
    # The fp32-seq256 cache predates variants and kept the plain "minilm" tag.
    tag = ("minilm" if encoder.variant == LEGACY_ENCODER and not encoder.adapter
           else f"minilm-{encoder.variant}" + (f"-{encoder.adapter}" if encoder.adapter else ""))
    return EmbeddingCache(encoder.encode, tag=tag)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HEADS_DIR, help="where to write the heads")
    ap.add_argument("--skip-loto", action="store_true", help="skip leave-one-target-out")
    ap.add_argument("--encoder", default=DEFAULT_ENCODER,
                    help="encoder variant: fp32|int8|int8mix and max word pieces, e.g. fp32-seq256")
    ap.add_argument("--adapter", type=Path, default=None,
                    help="fine-tuned encoder adapter (benchmarks/finetune_encoder.py); copied to "
                         "OUT/encoder_adapter.npz unless it is already there")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scoring.extractors.adapter import ADAPTER_FILE

    args.out.mkdir(parents=True, exist_ok=True)
    adapter = args.adapter
    if adapter is not None and adapter.resolve() != (args.out / ADAPTER_FILE).resolve():
        shutil.copyfile(adapter, args.out / ADAPTER_FILE)
        adapter = args.out / ADAPTER_FILE
    elif adapter is None:
        (args.out / ADAPTER_FILE).unlink(missing_ok=True)  # heads for the base encoder
    enc = embedding_cache(args.encoder, adapter)
    results: dict[str, Any] = {
        "encoder": _ENCODER["variant"],
        "adapter": _ENCODER["adapter"],
        "stance": train_stance(enc, args.out, args.skip_loto),
        "affect": train_affect(enc, args.out),
        "agreement": train_agreement(enc, args.out),
        "emotion": train_emotion(enc, args.out),
    }
    write_model_card(args.out / "MODEL_CARD.md", results)
    st = results["stance"]
    print(f"\nValidation metrics, encoder {_ENCODER['variant']} (train splits only were used for "
          f"fitting)")
    print(f"  stance F_avg, topic-specific heads, pooled over 5 targets: "
          f"{st['topic_heads_f_avg']:.3f}")
    print(f"  stance F_avg, generic description-conditioned head:        {st['generic_f_avg']:.3f}")
    if "loto_f_avg" in st:
        print(f"  stance F_avg, leave-one-target-out (head never saw it): {st['loto_f_avg']:.3f}")
    print(f"  agreement macro-F1, DEBAGREEMENT held-out 25%:             "
          f"{results['agreement']['macro_f1']:.3f}")
    print(f"  affect macro-F1, OffensEval val:                           "
          f"{results['affect']['macro_f1']:.3f}")
    print(f"  emotion macro-F1, TweetEval emotion val:                   "
          f"{results['emotion']['macro_f1']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
