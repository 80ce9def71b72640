"""Retrain a topic's stance head from analysts' labels (``polarwatch train --from-warehouse``).

Pure: the rows (text, label) come in as lists (``stream/retrain.py`` reads them from the
warehouse), the `learned` extractor that serves the topic now comes in as an object.

The new head **starts from the general model**: its features are the `learned` backend's stance
features of the post *and* the generic stance head's log-probabilities as served (swap-averaged,
``scoring.extractors.features.prior_logits``; the head file says so: meta ``features`` =
``ON_GENERIC``, ``prior`` = the generic head's ``name@digest``, and the backend sets such a head
aside when another generic head is installed). Two kinds of candidate are fitted
(class-balanced logistic regression, :func:`scoring.training.fit_head`): ``recalibrate`` (only
the prior's log-probabilities: a 3×3 re-weighting of the general model, what 30 labels can
support) and ``prior+features`` at each C of ``C_GRID`` (the prior plus every feature: the
labels may also move it). A retrain always starts from the generic head, never from an earlier
retrained head: every label so far is in the warehouse, so it is learned again.

Validation is honest k-fold cross-validation: for each of FOLDS outer folds the candidate is
picked by an inner cross-validation on the training part only, fitted there and scored on the
held-out part; F_avg (mean F1 of pro and anti, SemEval's measure) is computed on the pooled
held-out predictions. Posts with the same text (a retweet, a copied reply, a templated post) stay
in one fold (:func:`folds_of`): a head that has seen a text in training would otherwise be
scored on it, and memorized labels would read as a perfect F_avg. The current head is scored on the same labels with the backend itself
(``extract``: its own decision rule). If the current head was itself trained on some of these
labels, its figure is optimistic and the comparison is conservative.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from polarwatch.config import Topic
from polarwatch.errors import SchemaError
from polarwatch.records import STANCES
from scoring.extractors.base import PostPair
from scoring.extractors.features import ON_GENERIC
from scoring.label_accuracy import macro_f1
from scoring.training import C_GRID, fit_head

MIN_LABELS = 30  # stance labels a topic needs before a retrain (the Label page's "validated")
FOLDS = 5  # outer cross-validation folds; a class needs this many labels to be learned
INNER_FOLDS = 3  # folds that pick the candidate inside each outer training part
RECALIBRATE_C = 1.0  # the 3-feature re-weighting needs little shrinkage
CANDIDATES: tuple[tuple[str, float], ...] = (("recalibrate", RECALIBRATE_C),
                                             *(("prior+features", c) for c in C_GRID))


@dataclass
class RetrainResult:
    """What a retrain measured. ``fitted`` is the new head fitted on every label, whether or
    not it won (benchmarks score it on posts nobody labelled); ``arrays`` is the head to ship:
    ``fitted`` when it beat the current head on the labels, else ``None``."""

    topic: str
    n_labels: int
    counts: dict[str, int]
    left_out: dict[str, int]  # labels of a class too rare to learn (fewer than FOLDS)
    new_f_avg: float
    current_f_avg: float
    current_head: str  # which head serves the topic now, and why
    prior: str  # the head the new one starts from
    candidate: str  # e.g. "prior+features C=0.1"
    seconds: float
    fitted: dict[str, Any] | None = field(default=None, repr=False)
    invalid: dict[str, int] = field(default_factory=dict)  # values that are not a stance
    n_texts: int = 0  # distinct texts among the labelled posts (0: not counted)

    @property
    def improved(self) -> bool:
        return self.new_f_avg > self.current_f_avg

    @property
    def arrays(self) -> dict[str, Any] | None:
        return self.fitted if self.improved else None


def f_avg(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean F1 of pro and anti (SemEval 2016's F_avg; "unclear" counts only as a miss)."""
    return macro_f1(truth, predicted, ("pro", "anti"))


def usable_labels(labels: Sequence[str], topic: str, texts: Sequence[str] | None = None
                  ) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """The classes to learn, the labels left out (a class with fewer than FOLDS labels, or
    with `texts`, fewer than FOLDS distinct texts: each fold needs one it has not seen) and the
    invalid ones (a value that is not a stance: never counted); raises SchemaError with the
    counts when there are too few usable labels or sides."""
    counts = Counter(lab for lab in labels if lab in STANCES)
    distinct = counts if texts is None else Counter(
        lab for lab, _ in {(lab, t) for lab, t in zip(labels, texts, strict=True)
                           if lab in STANCES})
    invalid = dict(Counter(lab for lab in labels if lab not in STANCES))
    usable = sum(counts.values())
    not_counted = (f"; not counted: {sum(invalid.values()):,} label(s) that are not a stance "
                   f"{invalid} (a stance is one of {', '.join(STANCES)})" if invalid else "")
    if usable < MIN_LABELS:
        raise SchemaError(f"topic {topic!r} has {usable} analyst stance label(s) "
                          f"({dict(counts)}){not_counted}; a retrain needs at least "
                          f"{MIN_LABELS}: label more on the dashboard's Label page")
    thin = {s: distinct.get(s, 0) for s in ("pro", "anti") if distinct.get(s, 0) < FOLDS}
    if thin:
        repeats = distinct != counts
        raise SchemaError(f"topic {topic!r}: too few labels for "
                          + ", ".join(f"{s} ({n}{' distinct texts' if repeats else ''})"
                                      for s, n in thin.items())
                          + f" among its {usable} usable{not_counted}; each side needs at "
                            f"least {FOLDS}" + (" posts with distinct texts (posts with the "
                                                "same text are one example)" if repeats
                                                else ""))
    classes = [s for s in STANCES if distinct.get(s, 0) >= FOLDS]
    return classes, {s: n for s, n in counts.items() if s not in classes}, invalid


@dataclass
class _Fitted:
    w: np.ndarray  # on the standardized [features, prior logits]
    b: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def proba(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        z = ((np.hstack([x, g]) - self.mean) / self.scale) @ self.w + self.b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        return np.asarray(p / p.sum(axis=1, keepdims=True))


def fit_candidate(x: np.ndarray, g: np.ndarray, y: np.ndarray, n_classes: int, kind: str,
                  c: float) -> _Fitted:
    """Fit on the standardized [features, prior logits], or on the logits alone
    ("recalibrate": the features' weights stay zero)."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.hstack([x, g]))
    z = scaler.transform(np.hstack([x, g]))
    if kind == "recalibrate":
        w_g, bias = fit_head(z[:, x.shape[1]:], y, n_classes, c)
        w = np.vstack([np.zeros((x.shape[1], n_classes)), w_g])
    else:
        w, bias = fit_head(z, y, n_classes, c)
    return _Fitted(w, bias, scaler.mean_, scaler.scale_)


def _predict(model: _Fitted, x: np.ndarray, g: np.ndarray, classes: Sequence[str],
             unclear_above: float) -> list[str]:
    from scoring.extractors.decisions import abstain

    return [classes[abstain(row, classes, unclear_above)] for row in model.proba(x, g)]


def folds_of(y: np.ndarray, groups: np.ndarray | None, folds: int, seed: int
             ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (train, test) index pairs; rows of one group (the same text) in one fold."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if groups is None or len(np.unique(groups)) == len(groups):
        return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(y, y))
    return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(y, y, groups))


def _cv_score(x: np.ndarray, g: np.ndarray, y: np.ndarray, classes: Sequence[str], kind: str,
              c: float, folds: int, unclear_above: float, seed: int,
              groups: np.ndarray | None = None) -> float:
    predicted = np.empty(len(y), dtype=object)
    for tr, te in folds_of(y, groups, folds, seed):
        model = fit_candidate(x[tr], g[tr], y[tr], len(classes), kind, c)
        predicted[te] = _predict(model, x[te], g[te], classes, unclear_above)
    return f_avg([classes[i] for i in y], list(predicted))


def pick_candidate(x: np.ndarray, g: np.ndarray, y: np.ndarray, classes: Sequence[str],
                   unclear_above: float, seed: int, groups: np.ndarray | None = None
                   ) -> tuple[str, float]:
    """The candidate with the best inner cross-validated F_avg (the first on a tie); rows of
    one group (`groups`: the same text) stay in one inner fold."""
    per_class = np.bincount(y) if groups is None else np.array(
        [len(np.unique(groups[y == k])) for k in range(int(y.max()) + 1)])
    folds = max(2, min(INNER_FOLDS, int(per_class.min())))
    scores = {(kind, c): _cv_score(x, g, y, classes, kind, c, folds, unclear_above, seed, groups)
              for kind, c in CANDIDATES}
    return max(scores, key=lambda key: scores[key])


def cross_validate(x: np.ndarray, g: np.ndarray, y: np.ndarray, classes: Sequence[str],
                   unclear_above: float, seed: int = 0, progress: bool = False,
                   groups: np.ndarray | None = None) -> float:
    """Outer FOLDS-fold F_avg of the whole procedure (candidate picked inside each fold);
    rows of one group (`groups`: the same text) stay in one fold."""
    from tqdm import tqdm

    predicted = np.empty(len(y), dtype=object)
    for tr, te in tqdm(folds_of(y, groups, FOLDS, seed), total=FOLDS,
                       desc="retrain: cross-validate", unit="fold", file=sys.stderr,
                       disable=not progress):
        kind, c = pick_candidate(x[tr], g[tr], y[tr], classes, unclear_above, seed,
                                 None if groups is None else groups[tr])
        model = fit_candidate(x[tr], g[tr], y[tr], len(classes), kind, c)
        predicted[te] = _predict(model, x[te], g[te], classes, unclear_above)
    return f_avg([classes[i] for i in y], list(predicted))


def retrain_stance(texts: Sequence[str], labels: Sequence[str], topic: Topic, extractor: Any,
                   seed: int = 0, progress: bool = False) -> RetrainResult:
    """Fit, cross-validate and compare a stance head for `topic` from analysts' labels.

    `extractor` is the `learned` backend serving the topic now (``LearnedExtractor``: its
    ``encoder``, ``heads``, ``stance_heads``, ``unclear_above``, ``extract``)."""
    import time

    from scoring.extractors.features import prior_logits, stance_features

    t0 = time.monotonic()
    classes, left_out, invalid = usable_labels(labels, topic.id, texts)
    keep = [i for i, lab in enumerate(labels) if lab in classes]
    texts = [texts[i] for i in keep]
    truth = [labels[i] for i in keep]
    # the head serving the topic now, scored with the backend's own decision rule
    served = extractor.extract([PostPair(f"l{i}", t, topic.id) for i, t in enumerate(texts)])
    current = f_avg(truth, [lab.stance for lab in served])
    generic = extractor.heads["stance"]
    t_pro, t_anti = extractor.encoder.encode([topic.pro, topic.anti])
    e = extractor.encoder.encode(texts)
    x = np.asarray(stance_features(e, t_pro, t_anti), dtype=np.float64)
    g = np.asarray(prior_logits(generic, x), dtype=np.float64)
    y = np.array([classes.index(lab) for lab in truth])
    groups = np.unique(np.array(texts, dtype=object), return_inverse=True)[1]  # same text
    new = cross_validate(x, g, y, classes, extractor.unclear_above, seed, progress, groups)
    kind, c = pick_candidate(x, g, y, classes, extractor.unclear_above, seed, groups)
    result = RetrainResult(
        topic=topic.id, n_labels=len(truth), counts=dict(Counter(truth)), left_out=left_out,
        new_f_avg=round(new, 4), current_f_avg=round(current, 4),
        current_head=extractor.stance_heads.get(topic.id, "?"), prior=generic.ident,
        candidate=f"{kind} C={c:g}", seconds=0.0, invalid=invalid, n_texts=len(set(texts)))
    model = fit_candidate(x, g, y, len(classes), kind, c)
    result.fitted = _head_arrays(model, classes, topic, generic, result)
    result.seconds = time.monotonic() - t0
    return result


def _head_arrays(model: _Fitted, classes: Sequence[str], topic: Topic, prior: Any,
                 result: RetrainResult) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "task": "stance", "features": ON_GENERIC, "topic": topic.id, "name": topic.name,
        "pro": topic.pro, "anti": topic.anti,
        "encoder_variant": prior.meta_str("encoder_variant"),
        "encoder_adapter": prior.meta_str("encoder_adapter"),
        "source": f"analyst labels in the warehouse ({result.n_labels})",
        "n_rows": result.n_labels, "prior": result.prior, "candidate": result.candidate,
        "cv_f_avg": result.new_f_avg, "replaced_f_avg": result.current_f_avg,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    arrays: dict[str, Any] = {"classes": np.array(classes),
                              "W0": model.w.astype(np.float32), "b0": model.b.astype(np.float32),
                              "mean": model.mean.astype(np.float32),
                              "scale": model.scale.astype(np.float32)}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    return arrays


def write_head(arrays: dict[str, Any], path: Path) -> None:
    """Save a head so a backend starting meanwhile never reads half a file (written beside
    `path` under a name the backend does not load, then renamed over it)."""
    from scoring.extractors.learned import Head
    from scoring.training import write_head as save

    save(Head(arrays, name=path.stem), path)
