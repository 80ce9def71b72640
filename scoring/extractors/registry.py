"""Lazy registry of extractor backends: names map to "module:Class" strings and are imported only
when asked for, so a lexicon-only executor never imports torch."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from polarwatch.argtypes import utf8_text
from polarwatch.config import Topic
from polarwatch.errors import BackendError
from scoring.extractors.base import Bounds, Extractor, number

BACKENDS: dict[str, str] = {
    "lexicon": "scoring.extractors.lexicon:LexiconExtractor",
    "learned": "scoring.extractors.learned:LearnedExtractor",
    "llm": "scoring.extractors.llm_http:LLMExtractor",
    "transformers": "scoring.extractors.transformers_local:TransformersExtractor",
}


def available_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_class(name: str) -> type[Extractor]:
    """The class of the backend called `name`; unknown names list the valid ones."""
    if name not in BACKENDS:
        raise BackendError(f"unknown extractor backend {name!r}; choose one of "
                           f"{', '.join(available_backends())}")
    module_name, _, cls_name = BACKENDS[name].partition(":")
    cls: type[Extractor] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def option_types(cls: type[Extractor]) -> dict[str, str]:
    """The keyword options a backend takes, with their annotations as written (``float``,
    ``int | None``, ...): what ``-O BACKEND.KEY=VALUE`` and ``[extractor]`` may set."""
    params = list(inspect.signature(cls.__init__).parameters.values())[2:]  # self, topics
    return {p.name: str(p.annotation) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def backend_options(name: str) -> list[str]:
    """The option keys of the backend called `name` (for errors and ``label --help``)."""
    return list(option_types(backend_class(name)))


def _example(name: str, key: str, bounds: Bounds) -> str:
    """A value to show for an option: its default when that is a number in range."""
    default = inspect.signature(backend_class(name).__init__).parameters[key].default
    if isinstance(default, int | float) and not isinstance(default, bool) \
            and bounds.holds(default):
        return number(default).replace(",", "_")
    return number(bounds.high if bounds.above_low else bounds.low).replace(",", "_")


def checked_option(name: str, key: str, value: Any, annotation: str) -> Any:
    """`value` as the option's type allows, or a BackendError saying what was expected: for a
    numeric option, a finite number within the backend's ``option_bounds``."""
    kinds = {part.strip().strip("'\"") for part in annotation.split("|")}
    if value is None and "None" in kinds:
        return None
    numeric = {int: {"int", "float"}, float: {"float"}, bool: {"bool"}}.get(type(value), set())
    if kinds & numeric:
        bounds = backend_class(name).option_bounds.get(key)
        if bounds is not None and not isinstance(value, bool) and not bounds.holds(value):
            raise BackendError(f"option {name}.{key}={value!r}: expected a number {bounds} "
                               f"(e.g. -O {name}.{key}={_example(name, key, bounds)})")
        return value
    if kinds & {"str", "Path"}:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        # a text typed under an ASCII locale is read as UTF-8; a path keeps its bytes
        return text if "Path" in kinds else utf8_text(text)
    wanted = " or ".join(sorted(kinds - {"None"})) or annotation
    raise BackendError(f"option {name}.{key}={value!r}: expected {wanted} "
                       f"(e.g. -O {name}.{key}=…)")


def get_extractor(name: str, topics: Sequence[Topic], **options: Any) -> Extractor:
    """Build the backend called `name`; unknown names list the valid ones, and an unknown or
    mistyped option is one line naming it and the backend's valid keys."""
    cls = backend_class(name)
    types = option_types(cls)
    unknown = sorted(set(options) - set(types))
    if unknown:
        raise BackendError(f"backend {name!r} has no option {', '.join(unknown)}; its options "
                           f"are {', '.join(types) or 'none'} (-O {name}.KEY=VALUE)")
    checked = {k: checked_option(name, k, v, types[k]) for k, v in options.items()}
    extractor: Extractor = cls(topics, **checked)
    return extractor
