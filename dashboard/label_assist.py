"""The LLM as a labelling assistant on the Label page: when ``[extractor]`` configures the
``llm`` backend, the analyst may ask it what it would label the post shown
(:func:`ask`, the same prompt and client as ``polarwatch label --backend llm``).

What it suggests is stored apart from the analysts' labels (``label_suggestions``, written by
``dashboard/label_store.py``), so its agreement with the analysts can be measured; it is never
an analyst's label: accuracy and retraining read ``labels`` only. One request per click, no
retries, bounded by ``[dashboard] llm_assist_seconds`` (connect, headers and answer in all): a
server that does not answer in time, or is not running, is a message on the page, not a hung
page. No Streamlit here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.analysis import is_missing
from polarwatch.config import Config, ExtractorConfig
from polarwatch.errors import BackendError, PolarwatchError
from scoring.extractors.base import Extractor, PostPair
from scoring.extractors.registry import get_extractor

# One request at a time, never retried: the analyst waits for it. A short explanation bounds
# the tokens generated, hence the wait.
ASSIST_OPTIONS: dict[str, Any] = {"retries": 0, "concurrency": 1, "max_tokens": 250,
                                  "explanation_chars": 80}


class AssistError(PolarwatchError):
    """The LLM gave no usable suggestion (unreachable, too slow, an unusable answer)."""


@dataclass(frozen=True)
class Suggestion:
    model: str  # the model name sent to the server
    values: dict[str, str]  # task -> the LLM's label, for the tasks the analyst is asked
    explanation: str | None  # the LLM's reasons, as it wrote them (data: show it as text)


def llm_configured(extractor: ExtractorConfig) -> bool:
    """Whether ``[extractor]`` names the llm backend (as the backend, a fallback or the cascade
    target) or points at an llm server."""
    return ("llm" in (extractor.backend, extractor.cascade_to, *extractor.fallback)
            or bool(extractor.llm_base_url))


def assistant(cfg: Config, seconds: float, **options: Any) -> Extractor:
    """The llm backend of `cfg`, answering within `seconds` (``[dashboard]
    llm_assist_seconds``); `options` override :data:`ASSIST_OPTIONS`."""
    llm = cfg.extractor.backend_options().get("llm", {})
    return get_extractor("llm", cfg.load_topics(), **{
        **llm, **ASSIST_OPTIONS, "timeout": seconds, "batch_timeout": seconds, **options})


def ask(extractor: Extractor, post: Mapping[str, Any], tasks: list[str]) -> Suggestion:
    """The LLM's labels of `tasks` for `post` (a row of ``label_store.queue``; its parent text,
    when present, makes it a reply); AssistError naming why there is none."""
    parent = post.get("parent_text")
    pair = PostPair(str(post["id"]), str(post["text"]), str(post["topic"]),
                    None if is_missing(parent) else str(parent))
    try:
        result = extractor.extract([pair])[0]
    except BackendError as exc:
        raise AssistError(str(exc)) from exc
    values = {task: getattr(result, task) for task in tasks}
    missing = [task for task, value in values.items() if value is None]
    if missing:
        raise AssistError(f"the LLM gave no {', '.join(missing)} label")
    return Suggestion(str(getattr(extractor, "model", extractor.name)), values,
                      result.explanation)
