"""Features of the `learned` heads: shared by training (``benchmarks/train_heads.py``,
``scoring/retrain.py``) and inference (``learned.py``), so they cannot drift."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from scoring.extractors.decisions import cross_sides

if TYPE_CHECKING:
    from scoring.extractors.learned import Head

# A topic head retrained from analysts' labels reads the stance features *and* the generic
# head's log-probabilities (its meta "features"; meta "prior" names the generic head it used).
ON_GENERIC = "stance_features+generic"


def stance_features(e: np.ndarray, t_pro: np.ndarray, t_anti: np.ndarray) -> np.ndarray:
    """[e, e*t_pro, e*t_anti, cos(e, t_pro), cos(e, t_anti)] for unit-norm embeddings.

    ``e`` is (n, d); the topic descriptions are (d,) or (n, d).
    """
    t_pro = np.broadcast_to(t_pro, e.shape)
    t_anti = np.broadcast_to(t_anti, e.shape)
    ep, ea = e * t_pro, e * t_anti
    return np.hstack([e, ep, ea, ep.sum(1, keepdims=True), ea.sum(1, keepdims=True)])


def mirror_stance_features(x: np.ndarray) -> np.ndarray:
    """`stance_features` rows with the pro and anti descriptions swapped (a column permutation:
    no re-encoding)."""
    d = (x.shape[1] - 2) // 3
    order = [*range(d), *range(2 * d, 3 * d), *range(d, 2 * d), 3 * d + 1, 3 * d]
    return x[:, order]


def pair_features(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[p, c, |p-c|, p*c] for parent and reply embeddings (n, d)."""
    return np.hstack([p, c, np.abs(p - c), p * c])


def features_proba(head: Head, x: np.ndarray, swap_mean: bool) -> np.ndarray:
    """Stance probabilities of `head` for `stance_features` rows `x`.

    With `swap_mean` the head also reads the post with pro and anti swapped and the two answers
    are averaged (pro of one with anti of the other): stance is defined by the descriptions, so
    swapping them must swap the label. The generic head learned that from swapped training
    copies, but only approximately (its MLP alone flipped 67 % of PERSPECTRUM labels); the mean
    flips every label by construction. Topic heads were fitted on fixed descriptions and are
    read as they are.
    """
    p = head.predict_proba(x)
    if not swap_mean:
        return p
    q = head.predict_proba(mirror_stance_features(x))
    swapped = [head.classes.index(c) for c in cross_sides(head.classes)]
    return np.asarray((p + q[:, swapped]) / 2)


def log_proba(p: np.ndarray) -> np.ndarray:
    """Clipped log-probabilities: the generic head's answers as a retrained head's features."""
    return np.asarray(np.log(np.clip(p, 1e-6, 1.0)))


def prior_logits(generic: Head, x: np.ndarray) -> np.ndarray:
    """The generic head's log-probabilities for `stance_features` rows `x` (as served:
    swap-averaged), a retrained head's extra features (``ON_GENERIC``)."""
    return log_proba(features_proba(generic, x, swap_mean=True))
