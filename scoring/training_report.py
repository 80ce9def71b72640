"""What ``polarwatch train`` says about the head it wrote: the skipped rows, where the labels
were read, and the warnings a head that cannot be trusted needs (``scoring.training``).

A head whose holdout macro-F1 is no better than guessing among its classes (1/k: e.g. the same
text labelled three ways, so nothing in the text decides the label) is written, with a warning
that gives the figure and the fix. A class a task cannot do without (:data:`REQUIRED`: stance
``pro`` and ``anti``, affect ``yes`` and ``no``, agreement ``agree`` and ``disagree``) missing
from the data is refused before training (:func:`missing_required`), since the head could never
answer it; another missing class (stance or agreement ``unclear``, an emotion) is a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LISTED_SKIPPED = 3  # rows named in each reason's line of the summary (-v lists all)
# The classes a head of the task must have: without one the polarization it feeds is one-sided.
REQUIRED: dict[str, tuple[str, ...]] = {"stance": ("pro", "anti"), "affect": ("yes", "no"),
                                        "agreement": ("agree", "disagree"), "emotion": ()}
# Classes a head may lack without a warning (the shipped affect and emotion heads do).
OPTIONAL: dict[str, tuple[str, ...]] = {"affect": ("unclear",), "emotion": ("neutral",)}


@dataclass
class TrainReport:
    task: str
    output: Path
    n_rows: int
    class_counts: dict[str, int]
    holdout_macro_f1: float | None
    c: float
    seconds: float
    skipped: list[tuple[int, str]] = field(default_factory=list)
    label_columns: dict[str, int] = field(default_factory=dict)  # where the labels were read
    skipped_ids: dict[int, str] = field(default_factory=dict)  # line -> post id, where known
    conflicting: int = 0  # distinct inputs (text, topic, parent text) given two labels or more
    all_classes: tuple[str, ...] = ()  # the task's classes (scoring.training.TASKS)
    n_inputs: int = 0  # distinct inputs (text, topic, parent text) among the rows; 0: unknown
    holdout_share: float = 0.2  # scoring.training.HOLDOUT
    min_holdout_rows: int = 50  # scoring.training.MIN_ROWS_FOR_HOLDOUT

    def holdout(self) -> str:
        """The holdout figure as the summary says it, with the rows that repeat an input."""
        repeats = self.n_rows - self.n_inputs if 0 < self.n_inputs < self.n_rows else 0
        repeat = f"{repeats:,} row{'s' * (repeats != 1)} repeat{'s' * (repeats == 1)} " \
                 f"another row's text"
        if self.holdout_macro_f1 is None and not repeats:
            return f"n/a (fewer than {self.min_holdout_rows} rows: no holdout)"
        if self.holdout_macro_f1 is None:
            why = (f"fewer than {self.min_holdout_rows}" if self.n_inputs < self.min_holdout_rows
                   else "a class has a single one")
            return f"n/a (no holdout: {self.n_inputs:,} distinct texts, {why}; {repeat})"
        kept = f"; {repeat}, kept on its side of the holdout" if repeats else ""
        return (f"{self.holdout_macro_f1:.3f} ({self.holdout_share:.0%} stratified holdout, "
                f"also used to pick C{kept})")

    def skipped_lines(self, path: Path, every: bool = False) -> list[str]:
        """The skipped rows for stderr: a line per reason, the most common first, with the
        count and the first rows (post id and line); `every` (-v) first lists each row."""
        def row(line: int) -> str:
            return f"{self.skipped_ids[line]} (line {line})" if line in self.skipped_ids \
                else f"line {line}"

        by_reason: dict[str, list[int]] = {}
        for line, reason in self.skipped:
            by_reason.setdefault(reason, []).append(line)
        out = [f"{path}:{line}: skipped: {reason}" + (f" (id {self.skipped_ids[line]})" if
                                                      line in self.skipped_ids else "")
               for line, reason in self.skipped] if every else []
        for reason, lines in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[1][0])):
            more = len(lines) - LISTED_SKIPPED
            out.append(f"{path}: {len(lines):,} row{'s' * (len(lines) != 1)} skipped: {reason}; "
                       + ", ".join(map(row, lines[:LISTED_SKIPPED]))
                       + (f" and {more:,} more" + ("" if every else " (-v lists them all)")
                          if more > 0 else ""))
        return out

    def label_source(self) -> str:
        """Where the labels were read, for the summary ("" for a ``label`` column)."""
        cols = self.label_columns
        if set(cols) <= {"label"}:
            return ""
        if len(cols) == 1:
            return (f" (labels read from the {self.task!r} column, as `polarwatch label` "
                    f"writes them)")
        return " (labels read from column " + ", ".join(
            f"{k!r} on {v:,} rows" for k, v in cols.items()) + ")"

    def warnings(self) -> list[str]:
        """A ``warning: …`` line each (for stderr) for a head that guesses (holdout macro-F1
        at or below 1/k), for inputs labelled two ways, and for an expected class no row
        has."""
        out = []
        k = len(self.class_counts)
        score = self.holdout_macro_f1
        conflicts = (f"; {self.conflicting:,} text(s) carry two labels or more"
                     if self.conflicting else "")
        if score is not None and k and score <= 1 / k:
            out.append(f"warning: {self.output}: the {self.task} head's holdout macro-F1 is "
                       f"{score:.3f}, no better than guessing among its {k} classes "
                       f"({1 / k:.3f}): its labels do not follow from the texts{conflicts}; do "
                       f"not use it as it is: give each text one label and add more (or "
                       f"other) labelled rows per class")
        elif self.conflicting:
            out.append(f"warning: {self.output}: {self.conflicting:,} of the {self.n_rows:,} "
                       f"rows' texts carry two labels or more, which no head can learn; give "
                       f"each text one label")
        absent = [c for c in self.all_classes if c not in self.class_counts
                  and c not in OPTIONAL.get(self.task, ())]
        if absent:
            listed = ", ".join(map(repr, absent))
            out.append(f"warning: {self.output}: the {self.task} head never answers {listed}: "
                       f"no row is labelled so; add rows labelled {listed} (at least a few "
                       f"each) if posts can be")
        return out


def missing_required(task: str, counts: Mapping[Any, int]) -> list[str]:
    """The classes of :data:`REQUIRED` no row has (the caller refuses to train)."""
    return [c for c in REQUIRED.get(task, ()) if not counts.get(c)]


def conflicting_inputs(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> int:
    """How many distinct inputs (the values of `keys`: text, topic, parent text) carry more
    than one label."""
    labels: dict[tuple[Any, ...], set[str]] = {}
    for r in rows:
        labels.setdefault(tuple(r.get(k) for k in keys), set()).add(r["label"])
    return sum(1 for v in labels.values() if len(v) > 1)
