"""The lexicon backend, built through the registry with the shipped topics."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES, Labels
from scoring.extractors import Extractor, PostPair, available_backends, get_extractor

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "We need stricter gun laws and background checks now.",
    "Shall not be infringed, defend the second amendment",
    "You people are pathetic idiots",
    "Exactly, well said.",
    "That's nonsense, you're wrong.",
    "The climate crisis demands climate action, cut emissions!",
    "Climate hoax pushed by alarmists. Junk science.",
    "",
    "I love sunny days 😀 #2a",
    "x" * 5000,
]



@pytest.fixture(scope="module")
def lexicon(topics: list[Topic]) -> Extractor:
    return get_extractor("lexicon", topics)


def one(extractor: Extractor, text: str, topic: str = "gun_control",
        parent: str | None = None) -> Labels:
    (labels,) = extractor.extract([PostPair("p", text, topic, parent)])
    return labels


def test_registry_builds_the_lexicon_backend(lexicon: Extractor) -> None:
    assert "lexicon" in available_backends()
    assert lexicon.name == "lexicon"
    assert set(lexicon.topics) == {"gun_control", "climate_change"}


def test_unknown_backend_lists_the_valid_ones(topics: list[Topic]) -> None:
    with pytest.raises(BackendError) as info:
        get_extractor("gpt-17", topics)
    msg = str(info.value)
    assert "'gpt-17'" in msg
    for name in available_backends():
        assert name in msg


def test_labels_are_valid_and_in_order(lexicon: Extractor) -> None:
    batch = [PostPair(f"p{i}", text, topic, parent)
             for i, text in enumerate(TEXTS)
             for topic in ("gun_control", "climate_change", "not_a_topic")
             for parent in (None, "the parent says something")]
    labels = lexicon.extract(batch)
    assert [lab.post_id for lab in labels] == [pair.post_id for pair in batch]
    for pair, lab in zip(batch, labels, strict=True):
        assert isinstance(lab, Labels)
        assert lab.stance in STANCES and lab.affect in AFFECTS and lab.emotion in EMOTIONS
        assert lab.backend == "lexicon"
        for conf in (lab.stance_conf, lab.affect_conf, lab.emotion_conf, lab.intensity):
            assert 0.0 <= conf <= 1.0
        if pair.parent_text is None:  # a root has no agreement
            assert lab.agreement is None and lab.agreement_conf is None
        else:
            assert lab.agreement in AGREEMENTS
            assert lab.agreement_conf is not None and 0.0 <= lab.agreement_conf <= 1.0


def test_empty_batch(lexicon: Extractor) -> None:
    assert lexicon.extract([]) == []


def test_pro_gun_control(lexicon: Extractor) -> None:
    lab = one(lexicon, "We need stricter gun laws and background checks now.")
    assert lab.stance == "pro" and lab.stance_conf > 0.5
    assert lab.affect == "no"


def test_anti_gun_control(lexicon: Extractor) -> None:
    lab = one(lexicon, "Shall not be infringed, defend the second amendment")
    assert lab.stance == "anti" and lab.stance_conf > 0.5


def test_stance_terms_only_count_for_their_own_topic(lexicon: Extractor) -> None:
    text = "We need stricter gun laws and background checks now."
    assert one(lexicon, text, topic="climate_change").stance == "unclear"
    assert one(lexicon, text, topic="not_a_topic").stance == "unclear"
    assert one(lexicon, "Renewable energy and climate action now",
               topic="climate_change").stance == "pro"
    assert one(lexicon, "This climate hoax is junk science",
               topic="climate_change").stance == "anti"


def test_stance_terms_of_unspaced_scripts_match_inside_the_text() -> None:
    """Chinese and Japanese write no spaces between words: a term there had to stand between
    spaces to count (the audit: "我支持枪支管制" unclear, "枪支管制 现在" pro)."""
    topic = Topic("guns_zh", "枪支管制", "支持", "反对", pro_terms=("枪支管制", "禁枪"),
                  anti_terms=("持枪权",))
    ext = get_extractor("lexicon", [topic])
    got = [lab.stance for lab in ext.extract([
        PostPair(f"z{i}", text, "guns_zh") for i, text in
        enumerate(["我支持枪支管制", "我们必须禁枪！", "捍卫持枪权", "今天天气很好"])])]
    assert got == ["pro", "pro", "anti", "unclear"]


def test_hostile_text_has_affect(lexicon: Extractor) -> None:
    lab = one(lexicon, "You people are pathetic idiots")
    assert lab.affect == "yes" and lab.affect_conf > 0.7
    assert lab.emotion == "anger"


def test_agreeing_reply(lexicon: Extractor) -> None:
    lab = one(lexicon, "Exactly, well said.", parent="We need background checks.")
    assert lab.agreement == "agree"


def test_disagreeing_reply(lexicon: Extractor) -> None:
    lab = one(lexicon, "That's nonsense, you're wrong.", parent="We need background checks.")
    assert lab.agreement == "disagree"


def test_disagree_is_not_read_as_agree(lexicon: Extractor) -> None:
    # "agree" inside "disagree" must not count as an agreement cue
    assert one(lexicon, "I disagree.", parent="x").agreement == "disagree"


def test_the_same_text_as_a_root_has_no_agreement(lexicon: Extractor) -> None:
    lab = one(lexicon, "Exactly, well said.")
    assert lab.agreement is None and lab.agreement_conf is None


def test_neutral_text(lexicon: Extractor) -> None:
    lab = one(lexicon, "What do people here think about firearms?", parent="x")
    assert (lab.stance, lab.affect, lab.agreement, lab.emotion) == \
        ("unclear", "no", "unclear", "neutral")


def test_extraction_is_deterministic(lexicon: Extractor, topics: list[Topic]) -> None:
    batch = [PostPair(f"p{i}", t, "gun_control", "parent") for i, t in enumerate(TEXTS)]
    assert lexicon.extract(batch) == get_extractor("lexicon", topics).extract(batch)
