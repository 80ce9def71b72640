"""The `transformers` backend: a local Hugging Face causal LM that *scores* each allowed label.

No free generation: for every question (stance, affect, agreement for replies, emotion) the
prompt is followed by each allowed label in turn and the label's log-likelihood under the model
is computed; the most likely label wins and the softmax over the labels' log-likelihoods is its
confidence. The output is therefore always a valid label. The model is loaded once per instance.

Options: ``model_path`` [env POLARWATCH_TRANSFORMERS_MODEL] — a model folder, a hub id already
in the local cache, or a ``.gguf`` file; ``gguf_file`` — the GGUF file name inside ``model_path``
(needs the ``gguf`` and ``accelerate`` packages; transformers dequantizes it to fp32, ~14 s for
SmolLM2-135M); ``convert_cache`` — save that dequantized copy once under
``$POLARWATCH_CACHE`` (default ``~/.cache/polarwatch``) so later loads take well under a second;
``threads`` — torch CPU threads; ``max_chars`` —
post/parent texts are cut to this many characters.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES, Labels
from scoring.extractors.base import Extractor, PostPair

INSTALL_HINT = 'pip install "torch==2.13.0" transformers gguf accelerate'
SYSTEM = "You are a careful annotator of social-media posts. Answer with one word."


def _cache_root() -> Path:
    return Path(os.environ.get("POLARWATCH_CACHE", Path.home() / ".cache" / "polarwatch"))


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
    if gguf_file is None and path.suffix == ".gguf":
        path, gguf_file = path.parent, path.name
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise BackendError(f"transformers: GGUF file {path / gguf_file} does not exist")
    if gguf_file is None and path.exists() and not (path / "config.json").exists():
        raise BackendError(f"transformers: {path} has no config.json (pass gguf_file= for a "
                           f"GGUF model)")
    cached: Path | None = None
    if gguf_file is not None and convert_cache:
        st = (path / gguf_file).stat()
        digest = hashlib.sha256(f"{(path / gguf_file).resolve()}|{st.st_size}|"
                                f"{st.st_mtime_ns}".encode()).hexdigest()[:16]
        cached = _cache_root() / "gguf-fp32" / f"{Path(gguf_file).stem}-{digest}"
        if (cached / "config.json").exists():
            path, gguf_file = cached, None
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

    def __init__(self, topics: Sequence[Topic], model_path: str | None = None,
                 gguf_file: str | None = None, convert_cache: bool = True,
                 threads: int | None = None, max_chars: int = 600) -> None:
        super().__init__(topics)
        model_path = model_path or os.environ.get("POLARWATCH_TRANSFORMERS_MODEL")
        if not model_path:
            raise BackendError("transformers: no model given; pass model_path= (a folder or a "
                               ".gguf file) or set POLARWATCH_TRANSFORMERS_MODEL")
        gguf_file = gguf_file or os.environ.get("POLARWATCH_TRANSFORMERS_GGUF_FILE") or None
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.tok, self.model = load_causal_lm(model_path, gguf_file, convert_cache)
        self.max_chars = int(max_chars)
        self._label_ids: dict[str, list[int]] = {}

    # -- prompts ---------------------------------------------------------------------------

    def _prompt(self, question: str) -> list[int]:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(messages, tokenize=False,
                                                add_generation_prompt=True)
        else:
            text = f"{SYSTEM}\n\n{question}\nAnswer: "
        ids: list[int] = self.tok(text, add_special_tokens=False)["input_ids"]
        return ids

    def _questions(self, pair: PostPair) -> dict[str, tuple[str, Sequence[str]]]:
        text = pair.text[: self.max_chars]
        topic = self.topics.get(pair.topic)
        name = topic.name if topic else pair.topic
        pro = topic.pro if topic else f"in favour of {pair.topic}"
        anti = topic.anti if topic else f"against {pair.topic}"
        qs: dict[str, tuple[str, Sequence[str]]] = {
            "stance": (f"Topic: {name}.\npro = {pro}\nanti = {anti}\nunclear = neither.\n\n"
                       f"Post: {text}\n\nWhat is the post's stance on the topic? Answer pro, "
                       f"anti or unclear.", STANCES),
            "affect": (f"Post: {text}\n\nIs the post hostile, insulting or contemptuous toward "
                       f"people who hold the opposing view? Answer yes, no or unclear.", AFFECTS),
            "emotion": (f"Post: {text}\n\nWhich emotion does the post express? Answer "
                        f"{', '.join(EMOTIONS[:-1])} or {EMOTIONS[-1]}.", EMOTIONS),
        }
        if pair.parent_text is not None:
            parent = pair.parent_text[: self.max_chars] or "(not available)"
            qs["agreement"] = (f"Parent post: {parent}\nReply: {text}\n\nDoes the reply agree "
                               f"with the parent post? Answer agree, disagree or unclear.",
                               AGREEMENTS)
        return qs

    def _label_tokens(self, label: str) -> list[int]:
        if label not in self._label_ids:
            self._label_ids[label] = self.tok(label, add_special_tokens=False)["input_ids"]
        return self._label_ids[label]

    # -- scoring ---------------------------------------------------------------------------

    def _score(self, prompt: list[int], options: Sequence[list[int]]) -> list[float]:
        """Sum of log-probabilities of each option's tokens after the prompt. The prompt runs
        once; each multi-token option continues from its KV cache, which is then cropped back."""
        torch = self._torch
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prompt]), use_cache=True)
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = out.past_key_values
            scores = []
            for opt in options:
                total = float(first[opt[0]])
                if len(opt) > 1:
                    cont = self.model(input_ids=torch.tensor([opt[:-1]]), past_key_values=cache,
                                      use_cache=True)
                    logp = torch.log_softmax(cont.logits[0].float(), dim=-1)
                    total += float(logp.gather(1, torch.tensor(opt[1:]).unsqueeze(1)).sum())
                    cache.crop(-(len(opt) - 1))  # drop the option, keep the prompt
                scores.append(total)
        return scores

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        if not batch:
            return []
        torch = self._torch
        answers: list[dict[str, tuple[str, float, Any]]] = []
        for pair in batch:
            answer: dict[str, tuple[str, float, Any]] = {}
            for dim, (question, labels) in self._questions(pair).items():
                scores = self._score(self._prompt(question),
                                     [self._label_tokens(lab) for lab in labels])
                probs = torch.softmax(torch.tensor(scores), 0)
                best = int(probs.argmax())
                answer[dim] = (labels[best], round(float(probs[best]), 4), probs)
            answers.append(answer)
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
