"""A long post: VADER (super-linear in words) reads only a bounded prefix of it, so the labels of
a long post are those of that prefix and a 1 MB post is labelled (it took over 10 minutes)."""

from __future__ import annotations

import pytest

from polarwatch.config import Topic
from scoring.extractors import Extractor, PostPair, get_extractor
from scoring.extractors.sentiment import VADER_MAX_CHARS, vader_text

# A neutral opening longer than the bound, then a strongly felt tail VADER must not read.
CALM = "The committee met on Tuesday and read the minutes of the last meeting. " * 20
LOUD = "I love this, wonderful, amazing, best day ever! " * 40
# The pattern that trips VADER's rescans of the whole word list: 1 MB of it.
HUGE = "no but " * 150_000


@pytest.fixture(scope="module", params=["lexicon", "learned"])
def extractor(request: pytest.FixtureRequest, topics: list[Topic]) -> Extractor:
    return get_extractor(request.param, topics)


def test_the_bound_is_a_prefix_ending_at_a_word_boundary() -> None:
    short = "Short posts are read whole. "
    assert vader_text(short) == short
    cut = vader_text(CALM + LOUD)
    assert len(CALM + LOUD) > VADER_MAX_CHARS >= len(cut) > VADER_MAX_CHARS - 20
    assert (CALM + LOUD).startswith(cut)
    assert (CALM + LOUD)[len(cut)].isspace() and not cut[-1].isspace()
    assert vader_text("x" * 5_000) == "x" * VADER_MAX_CHARS  # one word longer than the bound


@pytest.mark.parametrize("text", [CALM + LOUD, HUGE], ids=["calm-then-loud", "1MB-no-but"])
def test_a_long_post_gets_the_intensity_of_its_bounded_prefix(extractor: Extractor,
                                                              text: str) -> None:
    """VADER gives intensity (and the lexicon's emotion and affect); the tail past the bound
    does not move it, however strongly it is felt. The 1 MB post is labelled at all."""
    got, want = extractor.extract([PostPair("long", text, "gun_control"),
                                   PostPair("long", vader_text(text), "gun_control")])
    assert got.intensity == want.intensity
    assert extractor.extract([PostPair("a", LOUD, "gun_control")])[0].intensity > 0.9


@pytest.mark.parametrize("text", [CALM + LOUD, HUGE], ids=["calm-then-loud", "1MB-no-but"])
def test_lexicon_labels_of_a_long_post_are_those_of_its_bounded_prefix(
        topics: list[Topic], text: str) -> None:
    """With no stance, hostility or agreement term past the bound (the lexicon counts those in
    the whole text, in linear time), every lexicon label is the prefix's. (The `learned`
    encoder reads its own word-piece budget, the end of a long post included.)"""
    lexicon = get_extractor("lexicon", topics)
    got, want = lexicon.extract([PostPair("long", text, "gun_control", "Is that so?"),
                                 PostPair("long", vader_text(text), "gun_control",
                                          "Is that so?")])
    assert got == want
    if text is not HUGE:  # the calm opening is all VADER reads: no joy from the loud tail
        assert got.emotion == "neutral"
