"""`scoring.training` fits with scikit-learn and saves the head format the learned backend reads."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="training needs the learned extra: "
                                      "pip install 'polarwatch[learned]'")

from polarwatch.config import Topic  # noqa: E402
from scoring.extractors.learned import Head, stance_features  # noqa: E402
from scoring.training import fit_head, holdout_split, pick_c, train_rows  # noqa: E402

DIM = 16


class HashEncoder:
    """Deterministic unit vectors per text, with a direction that carries the label words."""

    variant = "test-hash"
    adapter = ""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            seed = int.from_bytes(hashlib.sha1(t.encode()).digest()[:4], "little")
            v = np.random.default_rng(seed).normal(size=DIM)
            v[0] += 3.0 * ("good" in t) - 3.0 * ("bad" in t)
            out.append(v / np.linalg.norm(v))
        return np.asarray(out, dtype=np.float32)


def objective_gradient(x: np.ndarray, y: np.ndarray, w: np.ndarray, b: np.ndarray,
                       c: float) -> np.ndarray:
    """Gradient of C · Σ balanced_i · CE_i + ½‖W‖² (the objective fit_head documents)."""
    k = w.shape[1]
    z = x @ w + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    weights = (len(y) / (k * np.bincount(y, minlength=k)))[y]
    g = (p - np.eye(k)[y]) * (weights * c)[:, None]
    return np.concatenate([(x.T @ g + w).ravel(), g.sum(axis=0)])


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_fit_head_minimizes_the_documented_objective(n_classes: int) -> None:
    """Also for two classes, where scikit-learn fits one vector and C is doubled: the softmax
    layer returned is the multinomial optimum at C."""
    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(300, 5))
    y = np.argmax(x[:, :n_classes] + rng.normal(scale=0.8, size=(300, n_classes)), axis=1)
    y[:5] = 0  # unbalanced classes: the class weights matter
    w, b = fit_head(x, y, n_classes, c=0.5, max_iter=2000)
    assert w.shape == (5, n_classes) and b.shape == (n_classes,)
    grad = np.abs(objective_gradient(x, y, w, b, 0.5)).max()
    at_zero = np.abs(objective_gradient(x, y, np.zeros_like(w), np.zeros_like(b), 0.5)).max()
    assert grad < 1e-3 * at_zero  # scikit-learn's default tolerance, relative to the start


def test_holdout_is_stratified_and_seeded() -> None:
    y = np.array([0] * 50 + [1] * 30 + [2] * 20)
    split, again = holdout_split(y, seed=3), holdout_split(y, seed=3)
    assert split is not None and again is not None  # None only when a class has one input
    tr, ho = split
    assert len(ho) == 20 and sorted(np.bincount(y[ho])) == [4, 6, 10]
    assert set(tr) | set(ho) == set(range(100)) and not set(tr) & set(ho)
    assert np.array_equal(ho, again[1])


def test_pick_c_skips_the_holdout_below_its_minimum() -> None:
    x, y = np.eye(12)[:, :4], np.array([0, 1] * 6)
    assert pick_c(x, y, 2, seed=0) == (0.1, None)


def test_train_rows_saves_the_head_the_learned_backend_loads(tmp_path: Path) -> None:
    topic = Topic(id="t", name="T", pro="good things", anti="bad things")
    rows = [{"text": f"{word} post {i}", "label": label, "topic": "t"}
            for i in range(30) for word, label in (("good", "pro"), ("bad", "anti"),
                                                   ("plain", "unclear"))]
    enc = HashEncoder()
    report = train_rows("stance", rows, [topic], tmp_path / "stance_t.npz", "test", encoder=enc)
    assert report.n_rows == 90 and report.holdout_macro_f1 is not None
    assert report.c in (0.01, 0.1, 1.0)
    with np.load(report.output, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    assert arrays["classes"].tolist() == ["pro", "anti", "unclear"]
    assert arrays["W0"].shape == (3 * DIM + 2, 3) and arrays["W0"].dtype == np.float32
    assert arrays["b0"].shape == (3,) and arrays["mean"].shape == arrays["scale"].shape == (50,)
    assert str(arrays["encoder_variant"]) == "test-hash" and str(arrays["topic"]) == "t"
    assert {"task", "features", "n_rows", "c", "source", "holdout_macro_f1",
            "trained_at"} <= set(arrays)
    head = Head.load(report.output)
    texts = ["good news", "bad news"]
    t_pro, t_anti = enc.encode([topic.pro, topic.anti])
    pred = head.predict_proba(stance_features(enc.encode(texts), t_pro, t_anti)).argmax(1)
    assert [head.classes[k] for k in pred] == ["pro", "anti"]
