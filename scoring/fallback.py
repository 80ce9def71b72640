"""Composing backends: a fallback chain that never loses a post, and a budgeted confidence cascade.

``FallbackExtractor`` tries its backends in order *per post*: posts the first backend fails on
go to the second, and so on; every ``Labels`` keeps the name of the backend that produced it.
When every backend fails on a post it still gets a row — all "unclear", zero confidence,
``backend="none"`` and each backend's kind of error in ``explanation`` (the messages go to the
log) — so the post is counted, never dropped.

``CascadeExtractor`` sends the posts its primary is unsure of (lowest of the stance, affect and
agreement confidences below a threshold; never a post with no text) to an expert backend,
typically ``llm``, within ``max_calls_per_minute`` calls in any 60-second window; the rest keep
the primary's labels. A backend that makes HTTP calls (``counts_calls``: ``llm``) is charged per
call, each retry included, so a failing or rate-limiting server never gets more than the budget;
any other expert is charged one call per post.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from polarwatch.config import ExtractorConfig, Topic
from polarwatch.errors import BackendError
from polarwatch.records import Labels
from scoring.extractors.base import Extractor, OverBudget, PostPair, blank
from scoring.extractors.registry import get_extractor

Outcome = Labels | Exception
DEFAULT_CASCADE_THRESHOLD = 0.6  # below this the primary is "unsure": 0.6 is a conservative cut
# for 3-class heads (chance = 0.33), chosen so a clear majority class is not escalated.
DEFAULT_LLM_CALLS_PER_MINUTE = 60  # ~1 call/s: what one llama.cpp server on CPU sustains


LOG = logging.getLogger(__name__)

def extract_each(extractor: Extractor, batch: Sequence[PostPair]) -> list[Outcome]:
    """Labels or the exception, per post. Uses the backend's own ``extract_each`` when it has one;
    otherwise a failing batch is retried post by post so one bad post cannot sink the others."""
    own = getattr(extractor, "extract_each", None)
    if callable(own):
        result: list[Outcome] = own(batch)
        return result
    try:
        labels: list[Outcome] = list(extractor.extract(batch))
        if len(labels) != len(batch):
            raise BackendError(f"{extractor.name} returned {len(labels)} labels for "
                               f"{len(batch)} posts")
        return labels
    except Exception as exc:  # any backend failure: isolate the posts it failed on
        if len(batch) == 1:
            return [exc]
    out: list[Outcome] = []
    for pair in batch:
        try:
            one = extractor.extract([pair])
            out.append(one[0] if len(one) == 1 else BackendError(
                f"{extractor.name} returned {len(one)} labels for 1 post"))
        except Exception as exc:
            out.append(exc)
    return out


def unlabeled(pair: PostPair, errors: Sequence[str]) -> Labels:
    """The row a post gets when every backend failed on it."""
    reply = pair.parent_text is not None
    return Labels(post_id=pair.post_id, stance="unclear", affect="unclear",
                  agreement="unclear" if reply else None, emotion="neutral", intensity=0.0,
                  stance_conf=0.0, affect_conf=0.0, agreement_conf=0.0 if reply else None,
                  emotion_conf=0.0, backend="none",
                  explanation="every backend failed: " + "; ".join(errors)[:500])


def failure_note(backend: str, exc: BaseException) -> str:
    """What a post's stored explanation says of a backend's failure: the backend and the kind
    of error. The message itself (an LLM server's URL, part of its answer) goes to the log."""
    return f"{backend}: {type(exc).__name__}"


class FallbackExtractor(Extractor):
    """Backends tried in order per post; ``stats`` counts labels per backend."""

    def __init__(self, topics: Sequence[Topic], chain: Sequence[Extractor]) -> None:
        super().__init__(topics)
        if not chain:
            raise BackendError("a fallback chain needs at least one backend")
        self.chain = list(chain)
        self.name = ">".join(e.name for e in self.chain)
        self.stats: Counter[str] = Counter()
        self.last_errors: list[str] = []  # a few recent failure messages, for the CLI summary

    def extract_each(self, batch: Sequence[PostPair]) -> list[Outcome]:
        return list(self.extract(batch))

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        results: list[Labels | None] = [None] * len(batch)
        errors: dict[int, list[str]] = {}
        pending = list(range(len(batch)))
        for extractor in self.chain:
            if not pending:
                break
            outcomes = extract_each(extractor, [batch[i] for i in pending])
            still = []
            for i, res in zip(pending, outcomes, strict=True):
                if isinstance(res, Labels):
                    results[i] = res
                    self.stats[res.backend] += 1
                else:  # one "llm: " prefix, whether or not the backend's message has it
                    text = str(res)
                    msg = (text if text.startswith(f"{extractor.name}:")
                           else f"{extractor.name}: {text}")
                    errors.setdefault(i, []).append(failure_note(extractor.name, res))
                    still.append(i)
                    self.stats[f"{extractor.name} failed"] += 1
                    if len(self.last_errors) < 5 and msg not in self.last_errors:
                        self.last_errors.append(msg)
                        LOG.warning("backend failure (the post keeps going down the fallback "
                                    "chain): %s", msg[:1000])
            pending = still
        for i in pending:
            results[i] = unlabeled(batch[i], errors[i])
            self.stats["none"] += 1
        return [r for r in results if r is not None]


class CallBudget:
    """At most ``per_minute`` calls in any sliding 60-second window (non-blocking; safe to
    take from the llm backend's request threads)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute, self.clock = int(per_minute), clock
        self._calls: deque[float] = deque()
        self._lock = threading.Lock()

    def _expire(self) -> float:
        now = self.clock()
        while self._calls and now - self._calls[0] >= 60.0:
            self._calls.popleft()
        return now

    def available(self) -> int:
        """How many calls could be taken now."""
        with self._lock:
            self._expire()
            return max(0, self.per_minute - len(self._calls))

    def take(self, n: int) -> int:
        """Reserve up to ``n`` calls now; returns how many were granted."""
        with self._lock:
            now = self._expire()
            granted = max(0, min(n, self.per_minute - len(self._calls)))
            self._calls.extend([now] * granted)
            return granted


def min_confidence(labels: Labels) -> float:
    confs = [labels.stance_conf, labels.affect_conf]
    if labels.agreement_conf is not None:
        confs.append(labels.agreement_conf)
    return min(confs)


class CascadeExtractor(Extractor):
    """Primary labels everything; its unsure posts go to ``expert`` within a call budget."""

    def __init__(self, topics: Sequence[Topic], primary: Extractor, expert: Extractor,
                 threshold: float = DEFAULT_CASCADE_THRESHOLD,
                 max_calls_per_minute: int = DEFAULT_LLM_CALLS_PER_MINUTE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(topics)
        self.primary, self.expert, self.threshold = primary, expert, float(threshold)
        self.budget = CallBudget(max_calls_per_minute, clock)
        self.name = f"{primary.name}+{expert.name}"
        self.stats: Counter[str] = Counter()

    def extract_each(self, batch: Sequence[PostPair]) -> list[Outcome]:
        return list(self.extract(batch))

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        labels = self.primary.extract(batch)
        unsure = sorted((i for i, lab in enumerate(labels)
                         if lab.backend != self.expert.name and not blank(batch[i])
                         and min_confidence(lab) < self.threshold),
                        key=lambda i: min_confidence(labels[i]))  # least sure first
        per_call = self.expert.counts_calls  # charged per HTTP attempt by the expert itself
        granted = (min(len(unsure), self.budget.available()) if per_call
                   else self.budget.take(len(unsure)))
        self.stats["unsure"] += len(unsure)
        self.stats["over budget"] += len(unsure) - granted
        chosen = sorted(unsure[:granted])
        if chosen:
            if per_call:
                self.expert.call_gate = lambda: self.budget.take(1) == 1
            try:
                outcomes = extract_each(self.expert, [batch[i] for i in chosen])
            finally:  # the same backend may serve the fallback chain, unbudgeted
                self.expert.call_gate = None
            for i, res in zip(chosen, outcomes, strict=True):
                if isinstance(res, Labels):
                    labels[i] = res
                    self.stats["escalated"] += 1
                else:
                    self.stats["over budget" if isinstance(res, OverBudget)
                               else "expert failed"] += 1
        return labels


def build_extractor(backend: str, topics: Sequence[Topic], fallback: Sequence[str] = (),
                    options: Mapping[str, Mapping[str, Any]] | None = None,
                    cascade_to: str | None = None,
                    cascade_threshold: float = DEFAULT_CASCADE_THRESHOLD,
                    max_calls_per_minute: int = DEFAULT_LLM_CALLS_PER_MINUTE) -> Extractor:
    """``backend`` then each of ``fallback`` (duplicates dropped), optionally cascading unsure
    posts to ``cascade_to``. ``options`` maps a backend name to its keyword options; each
    backend is built once and shared between the chain and the cascade."""
    options = options or {}
    built: dict[str, Extractor] = {}

    def get(name: str) -> Extractor:
        if name not in built:
            built[name] = get_extractor(name, topics, **dict(options.get(name, {})))
        return built[name]

    names = list(dict.fromkeys([backend, *fallback]))
    chain = FallbackExtractor(topics, [get(n) for n in names])
    if cascade_to is None or cascade_to == backend:
        return chain
    return CascadeExtractor(topics, chain, get(cascade_to), cascade_threshold,
                            max_calls_per_minute)


def build_from_config(ext: ExtractorConfig, topics: Sequence[Topic], backend: str | None = None,
                      fallback: Sequence[str] | None = None,
                      options: Mapping[str, Mapping[str, Any]] | None = None,
                      cascade_to: str | None = None, cascade_threshold: float | None = None,
                      max_calls_per_minute: int | None = None) -> Extractor:
    """``build_extractor`` with the ``[extractor]`` section's settings; arguments that are not
    None (command-line flags) override them, ``options`` key by key."""
    merged: dict[str, dict[str, Any]] = {k: dict(v) for k, v in ext.backend_options().items()}
    for name, opts in (options or {}).items():
        merged.setdefault(name, {}).update(opts)
    return build_extractor(
        backend or ext.backend, topics, ext.fallback if fallback is None else fallback, merged,
        cascade_to=(cascade_to if cascade_to is not None else ext.cascade_to) or None,
        cascade_threshold=(ext.cascade_threshold if cascade_threshold is None
                           else cascade_threshold),
        max_calls_per_minute=(ext.llm_calls_per_minute if max_calls_per_minute is None
                              else max_calls_per_minute))
