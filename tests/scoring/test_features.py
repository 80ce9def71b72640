"""Stance features and the swap-averaged generic head (scoring/extractors/features.py)."""

from __future__ import annotations

import numpy as np

from scoring.extractors.features import (
    features_proba,
    mirror_stance_features,
    prior_logits,
    stance_features,
)
from scoring.extractors.learned import Head

D = 8


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.linalg.norm(rows, axis=-1, keepdims=True))


def _mlp_head(seed: int = 0) -> Head:
    """A random one-hidden-layer head over stance features: not symmetric in pro and anti."""
    rng = np.random.default_rng(seed)
    n_in = 3 * D + 2
    return Head({"classes": np.array(["unclear", "anti", "pro"]),
                 "W0": rng.normal(size=(n_in, 16)), "b0": rng.normal(size=16),
                 "W1": rng.normal(size=(16, 3)) * 3, "b1": rng.normal(size=3)}, name="stance")


def test_mirrored_features_are_the_features_of_the_swapped_descriptions() -> None:
    rng = np.random.default_rng(1)
    e, t_pro, t_anti = _unit(rng.normal(size=(5, D))), _unit(rng.normal(size=D)), \
        _unit(rng.normal(size=D))
    np.testing.assert_array_equal(mirror_stance_features(stance_features(e, t_pro, t_anti)),
                                  stance_features(e, t_anti, t_pro))


def test_swapping_the_descriptions_swaps_every_label_of_the_swap_averaged_head() -> None:
    rng = np.random.default_rng(2)
    head = _mlp_head()
    e = _unit(rng.normal(size=(400, D)))
    t_pro, t_anti = _unit(rng.normal(size=D)), _unit(rng.normal(size=D))
    x, x_swapped = stance_features(e, t_pro, t_anti), stance_features(e, t_anti, t_pro)
    given = features_proba(head, x, swap_mean=True)
    swapped = features_proba(head, x_swapped, swap_mean=True)
    # columns: unclear, anti, pro
    np.testing.assert_allclose(given[:, [0, 2, 1]], swapped, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(given.sum(1), 1.0, rtol=1e-5)
    # the head read once is not symmetric: without the mean, labels do not all flip
    once = features_proba(head, x, swap_mean=False).argmax(1)
    once_swapped = features_proba(head, x_swapped, swap_mean=False).argmax(1)
    flips = np.isin(once, [1, 2]) & (once_swapped == np.array([0, 2, 1])[once])
    assert flips.sum() < np.isin(once, [1, 2]).sum()


def test_prior_logits_are_the_log_of_the_served_probabilities() -> None:
    rng = np.random.default_rng(3)
    head = _mlp_head(1)
    e = _unit(rng.normal(size=(20, D)))
    t_pro, t_anti = _unit(rng.normal(size=D)), _unit(rng.normal(size=D))
    x = stance_features(e, t_pro, t_anti)
    g = prior_logits(head, x)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(np.exp(g), features_proba(head, x, True),
                               rtol=1e-4, atol=1e-6)
