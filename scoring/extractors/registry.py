"""Lazy registry of extractor backends: names map to "module:Class" strings and are imported only
when asked for, so a lexicon-only executor never imports torch."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from scoring.extractors.base import Extractor

BACKENDS: dict[str, str] = {
    "lexicon": "scoring.extractors.lexicon:LexiconExtractor",
    "learned": "scoring.extractors.learned:LearnedExtractor",
    "llm": "scoring.extractors.llm_http:LLMExtractor",
    "transformers": "scoring.extractors.transformers_local:TransformersExtractor",
}


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def get_extractor(name: str, topics: Sequence[Topic], **options: Any) -> Extractor:
    """Build the backend called `name`; unknown names list the valid ones."""
    if name not in BACKENDS:
        raise BackendError(f"unknown extractor backend {name!r}; choose one of "
                           f"{', '.join(available_backends())}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, cls_name)
    extractor: Extractor = cls(topics, **options)
    return extractor
