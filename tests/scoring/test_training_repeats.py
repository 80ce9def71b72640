"""`train`'s holdout keeps rows with the same input on one side: a file with every row given
three times (`cat labels.jsonl labels.jsonl labels.jsonl`, a dataset with retweets) must not
score the head on copies of its training rows (scoring/training.py), and the summary says how
many rows repeat a text."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="training needs the learned extra: "
                                      "pip install 'polarwatch[learned]'")

from scoring.training import holdout_split, train_rows  # noqa: E402

DIM = 256  # room to memorize a few hundred texts: what a 384-d sentence encoder has


class WideHashEncoder:
    """A fixed random unit vector per text: nothing in it says the label."""

    variant = "test-hash"
    adapter = ""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(int.from_bytes(hashlib.sha1(t.encode()).digest()[:4],
                                                     "little")).normal(size=DIM)
                for t in texts]
        return np.asarray([r / np.linalg.norm(r) for r in rows], dtype=np.float32)


def noise_rows(distinct: int, copies: int) -> list[dict[str, str]]:
    """`distinct` texts with a label drawn at random each, every text given `copies` times."""
    rng = random.Random(7)
    base = [{"id": f"p{i}", "text": f"post number {i}", "label": rng.choice(["yes", "no"])}
            for i in range(distinct)]
    return [dict(r) for _ in range(copies) for r in base]


def test_rows_given_three_times_do_not_score_the_head_on_its_memory(tmp_path: Path) -> None:
    report = train_rows("affect", noise_rows(150, 3), [], tmp_path / "affect.npz", "test",
                        encoder=WideHashEncoder())
    # with copies on both sides of the holdout the head recalled them: macro-F1 above 0.9
    assert report.holdout_macro_f1 is not None and report.holdout_macro_f1 < 0.7, report
    assert report.n_rows == 450 and report.n_inputs == 150
    line = report.holdout()
    assert "300 rows repeat another row's text, kept on its side of the holdout" in line, line


def test_a_group_falls_on_one_side_and_unique_rows_split_as_before() -> None:
    groups = np.repeat(np.arange(40), 3)  # 40 inputs, three rows each
    y = np.array([0, 1] * 20)[groups]
    split = holdout_split(y, seed=0, groups=groups)
    assert split is not None
    train, hold = split
    assert not set(groups[train]) & set(groups[hold]) and len(hold) == 8 * 3
    plain, grouped = holdout_split(y, seed=3), holdout_split(y, seed=3, groups=np.arange(120))
    assert plain is not None and grouped is not None and np.array_equal(plain[1], grouped[1])
