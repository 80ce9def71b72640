"""How good a topic's labels are, measured against its analysts, and which post to show them
next. Pure: lists and numbers in, dataclasses out (the dashboard's Label and Topic pages and
``benchmarks/label_simulation.py`` call these).

Accuracy is measured on the *random* share of the analysts' labels only: the other posts were
chosen because the model was unsure of them, so they understate it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import pandas as pd

from polarwatch.records import LABEL_TASKS

Sample = Literal["random", "informative"]
Status = Literal["not validated", "unreliable", "validated"]
K = TypeVar("K")

# z for a two-sided 95 % interval
Z_95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials (Wilson 1927; Brown, Cai & DasGupta
    2001 recommend it over the normal interval for small n and extreme proportions).
    (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def macro_f1(gold: Sequence[str], predicted: Sequence[str], classes: Sequence[str]) -> float:
    """Mean F1 over `classes` (a class absent from both gold and predicted counts 0, as
    scikit-learn's ``f1_score(average='macro', labels=classes, zero_division=0)``)."""
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, predicted, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, predicted, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, predicted, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


@dataclass(frozen=True)
class TaskAccuracy:
    """The model against the analysts on one task of one topic (random labels only)."""

    task: str
    n: int  # random labels behind the figures
    correct: int
    accuracy: float | None  # None without labels
    lower: float  # Wilson 95 % interval of the accuracy
    upper: float
    macro_f1: float | None  # over the task's classes (stance: pro / anti / unclear)


def task_accuracy(task: str, analyst: Sequence[str], model: Sequence[str | None],
                  classes: Sequence[str]) -> TaskAccuracy:
    """Accuracy (with its Wilson interval) and macro-F1 of `model` against `analyst`; a post
    the model left unlabelled (None) counts as wrong."""
    predicted = [m if m is not None else "" for m in model]
    n = len(analyst)
    correct = sum(a == m for a, m in zip(analyst, predicted, strict=True))
    lower, upper = wilson_interval(correct, n)
    return TaskAccuracy(task, n, correct, correct / n if n else None, lower, upper,
                        macro_f1(analyst, predicted, classes) if n else None)


def accuracy_by_task(rows: Iterable[tuple[str, str, str | None]]
                     ) -> dict[str, TaskAccuracy]:
    """Per task (in ``LABEL_TASKS`` order), :func:`task_accuracy` of the second label of each
    (task, reference, other) row against the first: the model against one topic's random
    analyst labels (the Topic page, the report), or the LLM's suggestions against the
    analyst's labels (the Label page's agreement). Tasks without rows are left out."""
    by_task: dict[str, tuple[list[str], list[str | None]]] = {}
    for task, reference, other in rows:
        ref, oth = by_task.setdefault(task, ([], []))
        ref.append(str(reference))
        oth.append(other)
    return {task: task_accuracy(task, *by_task[task], classes)
            for task, classes in LABEL_TASKS.items() if task in by_task}


def validation_status(stance: TaskAccuracy | None, min_labels: int,
                      min_accuracy: float) -> Status:
    """"not validated" below `min_labels` random stance labels; then "unreliable" when the
    stance accuracy is under `min_accuracy` (``[dashboard] min_stance_accuracy``), else
    "validated"."""
    if stance is None or stance.n < min_labels or stance.accuracy is None:
        return "not validated"
    return "unreliable" if stance.accuracy < min_accuracy else "validated"


def wants_random(n_random: int, n_labelled: int, random_share: float) -> bool:
    """Whether the next post shown should be a random one: keeps the random posts at
    `random_share` of the posts labelled so far (a quota, not a coin: 30 % of 10 posts is
    exactly 3)."""
    return n_random < random_share * (n_labelled + 1)


def pick_next(random_pool: Sequence[K], informative_pool: Sequence[K], n_random: int,
              n_labelled: int, random_share: float,
              skip: frozenset[K] | set[K] = frozenset()) -> tuple[K, Sample] | None:
    """The next post to label and why it was chosen.

    `random_pool`: unlabelled posts in a random order (a uniform random sample is its prefix);
    `informative_pool`: unlabelled posts, least confident first; `skip`: posts to leave out
    (labelled or passed over in this session). Takes from the pool :func:`wants_random` asks
    for, from the other when that one is exhausted; None when both are.
    """
    first: Sample = "random" if wants_random(n_random, n_labelled, random_share) \
        else "informative"
    pools: dict[Sample, Sequence[K]] = {"random": random_pool, "informative": informative_pool}
    for sample in (first, "informative" if first == "random" else "random"):
        for key in pools[sample]:
            if key not in skip:
                return key, sample
    return None


def under_sides(labels: pd.DataFrame, sides: tuple[str, str] | None) -> pd.DataFrame:
    """`labels` (rows of ``polarwatch.reads.RANDOM_SAMPLE_LABELS_SQL``: task, value,
    pro_description, anti_description, ...) with each stance label read under the topic's sides
    now, `sides` = (pro, anti) (None: as given): one given under them swapped is flipped (pro
    <-> anti), one given under other descriptions is left out (the analyst answered another
    question), one given before the sides were recorded is kept. The rule of
    ``polarwatch.reads.STANCE_LABELS_SQL``, which a retrain learns from; without it a pro/anti
    swap, a retrain and a relabel turned a validated topic's stance accuracy to about 0. A
    post no longer stored (``post_gone``) is compared with the model's label when it was shown,
    given under the same sides as the analyst's: a flipped label flips it too."""
    if sides is None or labels.empty or "pro_description" not in labels:
        return labels
    gone = labels["post_gone"] if "post_gone" in labels else pd.Series(False, labels.index)
    values: list[object] = []
    models: list[object] = []
    for task, value, model, pro, anti, was_shown in zip(
            labels["task"], labels["value"], labels["model_value"], labels["pro_description"],
            labels["anti_description"], gone, strict=True):
        recorded = isinstance(pro, str) or isinstance(anti, str)
        if task != "stance" or not recorded or (pro, anti) == sides:
            values.append(value)
            models.append(model)
        elif (pro, anti) == sides[::-1]:
            values.append(FLIPPED.get(value, value))
            models.append(FLIPPED.get(model, model) if bool(was_shown) else model)
        else:
            values.append(None)
            models.append(model)
    out = labels.assign(value=values, model_value=models)
    return out[out["value"].notna()].reset_index(drop=True)


FLIPPED = {"pro": "anti", "anti": "pro"}
