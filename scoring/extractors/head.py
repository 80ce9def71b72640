"""A `learned` head: an affine layer stack (ReLU between layers) and a softmax over its classes,
stored as plain numpy arrays in an ``.npz`` file (no pickle, no scikit-learn at inference)."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from polarwatch.errors import BackendError

_LAYER_KEY = re.compile(r"^[Wb]\d+$")
DIGEST_CHARS = 12  # hex digits of a head file's sha256 that name it (48 bits)


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
            self.layers.append((_flushed(arrays[f"W{i}"]), _flushed(arrays[f"b{i}"])))
            i += 1
        if not self.layers:
            raise BackendError(f"head {name!r} has no layers (expected arrays W0, b0, ...)")
        self.mean = _flushed(arrays["mean"]) if "mean" in arrays else None
        self.scale = arrays["scale"].astype(np.float32) if "scale" in arrays else None
        self.meta = {k: v for k, v in arrays.items()
                     if k not in ("classes", "mean", "scale") and not _LAYER_KEY.match(k)}
        n_in, n_out = self.layers[0][0].shape[0], self.layers[-1][0].shape[1]
        if n_out != len(self.classes):
            raise BackendError(f"head {name!r}: {n_out} outputs but {len(self.classes)} classes")
        self.n_features = n_in
        self.digest = ""  # of the file it was loaded from: which head labelled a post

    @classmethod
    def load(cls, path: Path) -> Head:
        """The head in ``path``; an unreadable one (empty, cut short) is one BackendError."""
        try:
            raw = path.read_bytes()  # read once: the arrays and the digest that names them
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            head = cls(arrays, name=path.stem)
        except OSError as exc:
            raise BackendError(f"cannot read head file {path}: {exc}") from exc
        except (ValueError, EOFError, LookupError, TypeError, zipfile.BadZipFile, zlib.error,
                BackendError) as exc:
            why = f"no array {exc}" if isinstance(exc, KeyError) else str(exc) or "empty"
            raise BackendError(f"cannot read head file {path} ({len(raw):,} bytes): {why}; it is "
                               f"not a whole head: train it again (`polarwatch train ... -o "
                               f"{path}`) or remove it") from exc
        head.digest = hashlib.sha256(raw).hexdigest()[:DIGEST_CHARS]
        return head

    @property
    def ident(self) -> str:
        """``name@digest``: the head file a label came from (what ``relabel`` records)."""
        return f"{self.name}@{self.digest}" if self.digest else self.name

    def save(self, path: Path | BinaryIO) -> None:  # atomic: scoring.training.write_head
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


def _flushed(a: np.ndarray) -> np.ndarray:
    """`a` as float32 with its subnormal values (|x| < 1.2e-38) set to 0. A trained MLP's
    weights decay towards 0 and some end subnormal (64,034 of the generic stance head's 295,424):
    the CPU computes with those at a fraction of its speed, and `x @ W0` took 208 ms for 256
    posts instead of 2.5 ms. Their contribution is below float32's resolution of any sum they
    enter, so no probability changes."""
    out = np.array(a, dtype=np.float32)  # a copy: the caller's arrays are left as they are
    out[np.abs(out) < np.finfo(np.float32).tiny] = 0.0
    return out
