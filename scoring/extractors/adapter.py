"""Low-rank (LoRA) encoder adapters: the fine-tuned part of the `learned` encoder, shipped small.

Fine-tuning all-MiniLM-L6-v2 (``benchmarks/finetune_encoder.py``) trains, for every Linear layer
of the transformer, two small matrices ``A`` (r x in) and ``B`` (out x r); the adapted weight is
``W + scale * B @ A``. The file ``scoring/heads/encoder_adapter.npz`` stores them (float16, ~1 MB
instead of the encoder's 90 MB) under the layer's module name: ``<name>.A``, ``<name>.B``, plus
``scale`` and ``rank``. ``merge_adapter`` folds them into the fp32 weights once at load time, before
int8 quantization, so inference costs exactly what the base encoder costs.

Heads trained on an adapted encoder record the adapter's digest (``encoder_adapter``); the
backend refuses an adapter file whose digest differs from the one its heads were trained on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from polarwatch.errors import BackendError

ADAPTER_FILE = "encoder_adapter.npz"


def adapter_digest(path: Path) -> str:
    """First 12 hex digits of the file's SHA-256: what heads record to name their encoder."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def load_adapter(path: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """``{module name: (A, B)}`` and the scale, validated for shape consistency."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise BackendError(f"cannot read encoder adapter {path}: {exc}") from exc
    if "scale" not in arrays:
        raise BackendError(f"encoder adapter {path} has no 'scale' array; re-run "
                           f"`python benchmarks/finetune_encoder.py`")
    layers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for key in arrays:
        if key.endswith(".A"):
            name = key[:-2]
            a, b = arrays[key], arrays.get(f"{name}.B")
            if b is None or a.shape[0] != b.shape[1]:
                raise BackendError(f"encoder adapter {path}: layer {name!r} has no matching B "
                                   f"(rank mismatch or missing array)")
            layers[name] = (a.astype(np.float32), b.astype(np.float32))
    if not layers:
        raise BackendError(f"encoder adapter {path} holds no layers")
    return layers, float(arrays["scale"])


def merge_adapter(model: Any, path: Path) -> int:
    """Add ``scale * B @ A`` to each named Linear weight of ``model`` in place; returns the number
    of layers changed. Every adapter layer must exist in the model with a matching shape."""
    import torch

    layers, scale = load_adapter(path)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, (a, b) in layers.items():
            mod = modules.get(name)
            weight = getattr(mod, "weight", None)
            if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (b.shape[0],
                                                                                a.shape[1]):
                raise BackendError(f"encoder adapter {path}: layer {name!r} does not match the "
                                   f"encoder (missing or different shape); the adapter was "
                                   f"trained for another model")
            weight += scale * torch.from_numpy(b @ a).to(weight.dtype)
    return len(layers)
