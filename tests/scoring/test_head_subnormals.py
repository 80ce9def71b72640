"""A head's subnormal weights are set to 0 at load: the generic stance head had 64,034 of them,
and the CPU multiplied with those ~80x slower (208 ms instead of 2.5 ms for 256 posts; figures in
benchmarks/README.md). Nothing a head answers may change."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoring.extractors.head import Head

HEADS = Path(__file__).resolve().parents[2] / "scoring" / "heads"
TINY = np.finfo(np.float32).tiny


def _subnormal(a: np.ndarray) -> int:
    return int(np.count_nonzero((a != 0) & (np.abs(a) < TINY)))


def test_the_shipped_heads_hold_no_subnormal_value_once_loaded() -> None:
    stance = np.load(HEADS / "stance.npz")
    assert _subnormal(stance["W0"].astype(np.float32)) > 0  # the file has them
    for path in sorted(HEADS.glob("*.npz")):
        if path.name == "encoder_adapter.npz":  # not a Head
            continue
        head = Head.load(path)
        arrays = [a for layer in head.layers for a in layer]
        assert all(_subnormal(a) == 0 for a in arrays), path.name


def test_flushing_changes_no_probability_and_leaves_the_arrays_given_alone() -> None:
    rng = np.random.default_rng(0)
    w0 = rng.normal(0, 0.1, (40, 16)).astype(np.float32)
    w0[rng.random(w0.shape) < 0.3] = np.float32(3e-40)  # subnormal, as a decayed weight
    w0[0, :4] = -np.float32(1e-44)
    arrays = {"classes": np.array(["anti", "pro", "unclear"]), "W0": w0,
              "b0": np.zeros(16, np.float32), "W1": rng.normal(0, 1, (16, 3)).astype(np.float32),
              "b1": np.array([0.1, -0.2, 1e-41], np.float32)}
    before = w0.copy()
    head = Head(arrays)
    assert np.array_equal(w0, before)  # the caller's array is not written
    assert _subnormal(head.layers[0][0]) == 0 and _subnormal(head.layers[1][1]) == 0
    x = rng.normal(0, 1, (50, 40)).astype(np.float32)
    hidden = np.maximum(x.astype(np.float64) @ w0.astype(np.float64), 0.0)  # exact reference
    logits = hidden @ arrays["W1"].astype(np.float64) + arrays["b1"].astype(np.float64)
    ref = np.exp(logits - logits.max(axis=1, keepdims=True))
    ref /= ref.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(head.predict_proba(x), ref, rtol=1e-5, atol=1e-6)
