"""The `transformers` backend: a local Hugging Face causal LM that *scores* each allowed label.

No free generation: for every question (stance, affect, agreement for replies, emotion) the
prompt is followed by each allowed label in turn and the label's log-likelihood under the model
is computed; the most likely label wins and the softmax over the labels' log-likelihoods is its
confidence. The output is therefore always a valid label. The model is loaded once per instance.

Options (``[extractor]`` keys in brackets): ``model_path`` [transformers_model] — a model
folder, a hub id already in the local cache, or a ``.gguf`` file; ``gguf_file``
[transformers_gguf_file] — the GGUF file name inside ``model_path`` (needs the ``gguf`` and
``accelerate`` packages; transformers dequantizes it to fp32, ~14 s for SmolLM2-135M);
``convert_cache`` — save that dequantized copy once under ``$POLARWATCH_CACHE_DIR`` (default
``$XDG_CACHE_HOME/polarwatch`` or ``~/.cache/polarwatch``, the learned backend's cache,
:func:`scoring.extractors.onnx_runtime.cache_dir`) so later loads take well under a second; a
cache directory that cannot be written is one error line before the model is loaded;
``threads`` — torch CPU threads (default 1: on a shared or Spark-loaded machine 2
threads ran 5x *slower* here, 11 s vs 2.1 s per post; 0 keeps torch's default); ``max_chars`` —
post/parent texts are cut to this many characters.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES, Labels
from scoring.extractors.base import Bounds, Extractor, PostPair, with_blank_posts
from scoring.extractors.llm_prompt import FENCE_NOTE, fence
from scoring.extractors.onnx_runtime import cache_dir, check_cache_dir

LOG = logging.getLogger(__name__)
INSTALL_HINT = 'pip install "torch==2.13.0" transformers gguf accelerate'
CACHE_SIZE = 10_000  # answers kept for repeated (topic, text, parent text)
SYSTEM = "You are a careful annotator of social-media posts. Answer with one word."
MODEL_KEYS = ("-O transformers.model_path=… or [extractor] transformers_model "
              "($POLARWATCH_EXTRACTOR_TRANSFORMERS_MODEL)")


def check_model_path(path: Path, gguf_file: str | None) -> None:
    """BackendError, in one line, for a model path that cannot be a model: a missing GGUF file,
    a plain file that is not a .gguf, a folder without config.json, or a path that does not
    exist and cannot be a cached hub id (ids are ``name`` or ``owner/name``)."""
    if gguf_file is None and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    if gguf_file is not None:
        if not (path / gguf_file).is_file():
            raise BackendError(f"transformers: GGUF file {path / gguf_file} does not exist; "
                               f"check {MODEL_KEYS}")
    elif path.is_file():
        raise BackendError(f"transformers: {path} is a file, not a model folder (a GGUF "
                           f"model's name ends in .gguf); check {MODEL_KEYS}")
    elif path.is_dir() and not (path / "config.json").exists():
        raise BackendError(f"transformers: {path} has no config.json, so it is not a model "
                           f"folder (for a GGUF model pass gguf_file= or the .gguf file itself)")
    elif not path.exists() and (path.is_absolute() or str(path).startswith(".")
                                or len(path.parts) > 2):
        raise BackendError(f"transformers: {path} does not exist (and is not a hub id, which "
                           f"reads name or owner/name); check {MODEL_KEYS}")


def load_causal_lm(model_path: str, gguf_file: str | None = None,
                   convert_cache: bool = True) -> tuple[Any, Any]:
    """(tokenizer, model) in eval mode; a GGUF model is dequantized once and cached as fp32."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise BackendError(f"the transformers backend needs torch and transformers: "
                           f"{INSTALL_HINT}") from exc
    path = Path(model_path).expanduser()
    check_model_path(path, gguf_file)
    if gguf_file is None and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    cached: Path | None = None
    if gguf_file is not None and convert_cache:
        st = (path / gguf_file).stat()
        digest = hashlib.sha256(f"{(path / gguf_file).resolve()}|{st.st_size}|"
                                f"{st.st_mtime_ns}".encode()).hexdigest()[:16]
        cached = cache_dir() / "gguf-fp32" / f"{Path(gguf_file).stem}-{digest}"
        if (cached / "config.json").exists():
            path, gguf_file = cached, None
            cached = None
        else:  # the copy is a speed-up only: a cache that cannot be written is one warning
            try:
                check_cache_dir(cached.parent, "the transformers backend",
                                "a GGUF model's dequantized copy is saved there once, so this "
                                "and every start dequantizes the model again (~14 s)",
                                ", or pass -O transformers.convert_cache=false")
            except BackendError as exc:
                LOG.warning(str(exc))
                cached = None
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(str(path), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
    except ImportError as exc:
        raise BackendError(f"transformers: loading {path} needs another package ({exc}); "
                           f"for GGUF files: pip install gguf accelerate") from exc
    except OSError as exc:
        raise BackendError(f"transformers: cannot load a model from {path}: {exc}") from exc
    except (struct.error, ValueError, KeyError, IndexError, TypeError, EOFError,
            RuntimeError) as exc:  # what the GGUF reader and the loaders raise on a bad file
        what = (f"GGUF file {path / gguf_file} is not a valid GGUF model" if gguf_file
                else f"{path} does not hold a model transformers can load")
        raise BackendError(f"transformers: {what} ({str(exc)[:160]}); "
                           f"download it again or point {MODEL_KEYS} at another "
                           f"model") from exc
    model.eval()
    if cached is not None:
        try:  # a dequantized copy reloads in ~0.3 s instead of ~14 s
            model.hf_quantizer = None  # type: ignore[assignment]
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            tmp.rename(cached)
        except OSError:
            pass  # the cache is an optimisation only
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok, model


class TransformersExtractor(Extractor):
    name = "transformers"
    option_bounds: ClassVar[dict[str, Bounds]] = {
        "threads": Bounds(0, 256, "torch threads; 0 = torch's default"),
        "max_chars": Bounds(1, 1_000_000, "characters read of a post and of its parent"),
    }

    def __init__(self, topics: Sequence[Topic], model_path: str | Path | None = None,
                 gguf_file: str | Path | None = None, convert_cache: bool = True,
                 threads: int | None = 1, max_chars: int = 600) -> None:
        super().__init__(topics)
        if not model_path:
            raise BackendError("transformers: no model given; pass model_path= (a folder or a "
                               ".gguf file) or set [extractor] transformers_model "
                               "($POLARWATCH_EXTRACTOR_TRANSFORMERS_MODEL)")
        gguf_file = str(gguf_file) if gguf_file else None
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.tok, self.model = load_causal_lm(str(model_path), gguf_file, convert_cache)
        self.max_chars = int(max_chars)
        self._label_ids: dict[str, list[int]] = {}
        self._template = self._chat_template()
        self._cache: dict[tuple[str, str, str | None], dict[str, tuple[str, float, Any]]] = {}

    # -- prompts ---------------------------------------------------------------------------

    def _chat_template(self) -> tuple[str, str]:
        """The chat template around the user message: (text before it, text after it)."""
        marker = "\x00QUESTION\x00"
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": marker}],
                tokenize=False, add_generation_prompt=True)
            before, _, after = str(text).partition(marker)
            return before, after
        return f"{SYSTEM}\n\n", "\nAnswer: "

    def _context(self, pair: PostPair) -> str:
        """What every question about this post shares (encoded once, then reused)."""
        text = pair.text[: self.max_chars]
        topic = self.topics.get(pair.topic)
        name = topic.name if topic else pair.topic
        pro = topic.pro if topic else f"in favour of {pair.topic}"
        anti = topic.anti if topic else f"against {pair.topic}"
        head = (f"Topic: {name}.\npro = {pro}\nanti = {anti}\nunclear = neither.\n"
                f"{FENCE_NOTE}\n\n")
        if pair.parent_text is None:
            return f"{head}Post: {fence(text)}\n\n"
        parent = pair.parent_text[: self.max_chars]
        parent = fence(parent) if parent else "(not available)"
        return f"{head}Parent post: {parent}\nReply: {fence(text)}\n\n"

    def _questions(self, pair: PostPair) -> dict[str, tuple[str, Sequence[str]]]:
        what = "post" if pair.parent_text is None else "reply"
        qs: dict[str, tuple[str, Sequence[str]]] = {
            "stance": (f"What is the {what}'s stance on the topic? Answer pro, anti or "
                       f"unclear.", STANCES),
            "affect": (f"Is the {what} hostile, insulting or contemptuous toward people who "
                       f"hold the opposing view? Answer yes, no or unclear.", AFFECTS),
            "emotion": (f"Which emotion does the {what} express? Answer "
                        f"{', '.join(EMOTIONS[:-1])} or {EMOTIONS[-1]}.", EMOTIONS),
        }
        if pair.parent_text is not None:
            qs["agreement"] = ("Does the reply agree with the parent post? Answer agree, "
                               "disagree or unclear.", AGREEMENTS)
        return qs

    def _ids(self, text: str) -> list[int]:
        ids: list[int] = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids

    def _label_tokens(self, label: str) -> list[int]:
        if label not in self._label_ids:
            self._label_ids[label] = self._ids(label)
        return self._label_ids[label]

    # -- scoring ---------------------------------------------------------------------------

    def _answer(self, pair: PostPair) -> dict[str, tuple[str, float, Any]]:
        """Per question: (best label, its probability, all label probabilities).

        The shared prefix (template + topic + post) runs once; each question continues from
        its KV cache, each multi-token label from the question's, and the cache is cropped
        back after each, so a post costs about one prompt plus four short questions."""
        torch = self._torch
        before, after = self._template
        answer: dict[str, tuple[str, float, Any]] = {}
        with torch.inference_mode():
            prefix = self._ids(before + self._context(pair))
            cache = self.model(input_ids=torch.tensor([prefix]), use_cache=True).past_key_values
            for dim, (question, labels) in self._questions(pair).items():
                q_ids = self._ids(question + after)
                out = self.model(input_ids=torch.tensor([q_ids]), past_key_values=cache,
                                 use_cache=True)
                first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                scores = []
                for label in labels:
                    opt = self._label_tokens(label)
                    total = float(first[opt[0]])
                    if len(opt) > 1:
                        cont = self.model(input_ids=torch.tensor([opt[:-1]]),
                                          past_key_values=cache, use_cache=True)
                        logp = torch.log_softmax(cont.logits[0].float(), dim=-1)
                        total += float(logp.gather(1, torch.tensor(opt[1:]).unsqueeze(1)).sum())
                        cache.crop(-(len(opt) - 1))  # drop the label, keep the question
                    scores.append(total)
                cache.crop(-len(q_ids))  # back to the shared prefix
                probs = torch.softmax(torch.tensor(scores), 0)
                best = int(probs.argmax())
                answer[dim] = (labels[best], round(float(probs[best]), 4), probs)
        return answer

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        return with_blank_posts(self.name, batch, self._label)

    def _label(self, batch: Sequence[PostPair]) -> list[Labels]:
        answers = []
        for pair in batch:
            key = (pair.topic, pair.text, pair.parent_text)
            if key not in self._cache:  # duplicates (retweets) cost nothing
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = self._answer(pair)
            answers.append(self._cache[key])
        out = []
        for pair, a in zip(batch, answers, strict=True):
            agreement = a.get("agreement")
            emotion_probs = a["emotion"][2]
            out.append(Labels(
                post_id=pair.post_id, stance=a["stance"][0],  # type: ignore[arg-type]
                affect=a["affect"][0],  # type: ignore[arg-type]
                agreement=agreement[0] if agreement else None,  # type: ignore[arg-type]
                emotion=a["emotion"][0],  # type: ignore[arg-type]
                # intensity: probability mass away from "neutral"
                intensity=round(1.0 - float(emotion_probs[EMOTIONS.index("neutral")]), 4),
                stance_conf=a["stance"][1], affect_conf=a["affect"][1],
                agreement_conf=agreement[1] if agreement else None,
                emotion_conf=a["emotion"][1], backend=self.name))
        return out
