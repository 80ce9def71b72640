"""What ``polarwatch label`` and ``train`` run besides :mod:`scoring.io` and
:mod:`scoring.training`: their topics (the configured ones plus an extra file), the backends'
``[BACKEND.]KEY=VALUE`` options, and :func:`label_file` (read, label, write, one summary line)."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polarwatch.config import Config, Topic, load_topics
from polarwatch.errors import BackendError, ConfigError
from polarwatch.safe_write import STDOUT, check_new_output, writing
from scoring.extractors.base import no_text

LOG = logging.getLogger(__name__)


def resolve_topics(cfg: Config, topics_file: str | None) -> list[Topic]:
    """Configured topics plus those in ``topics_file`` (which win on a shared id)."""
    extra = load_topics(topics_file) if topics_file else []
    try:
        configured = cfg.load_topics()
    except ConfigError:
        if not extra:
            raise
        configured = []
    merged = {t.id: t for t in configured}
    merged.update({t.id: t for t in extra})
    return list(merged.values())


def _value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def parse_options(items: list[str], default_backend: str) -> dict[str, dict[str, Any]]:
    """``[BACKEND.]KEY=VALUE`` items → {backend: {key: value}}; no prefix = the main backend.
    An unknown backend is refused here; the backend checks its keys and their types when it is
    built (:func:`scoring.extractors.registry.get_extractor`: the valid keys are listed)."""
    from scoring.extractors.registry import BACKENDS

    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected [BACKEND.]KEY=VALUE, e.g. "
                              f"llm.base_url=http://127.0.0.1:8080/v1")
        backend, dot, name = key.rpartition(".")
        backend = backend if dot else default_backend
        if backend not in BACKENDS or not name:
            raise ConfigError(f"--option {item!r}: " + (
                f"no option name after {backend}." if backend in BACKENDS else
                f"unknown backend {backend!r}; expected one of {', '.join(sorted(BACKENDS))}"))
        out.setdefault(backend, {})[name] = _value(value)
    return out


def check_unused_options(options: dict[str, dict[str, Any]], in_use: list[str]) -> None:
    """Options of a backend that this run does not use: their keys and types are checked as
    if it were used (a typo is refused, with the backend's keys), then a warning says they are
    ignored. The backend's module is imported; no model is loaded, no server called."""
    from scoring.extractors.registry import backend_class, checked_option, option_types

    for backend, opts in options.items():
        if backend in in_use:
            continue
        types = option_types(backend_class(backend))
        unknown = sorted(set(opts) - set(types))
        if unknown:
            raise BackendError(f"backend {backend!r} has no option {', '.join(unknown)}; its "
                              f"options are {', '.join(types) or 'none'} "
                              f"(-O {backend}.KEY=VALUE)")
        for key, value in opts.items():
            checked_option(backend, key, value, types[key])
        LOG.warning("-O %s: ignored, backend %r is not used by this run (it uses %s)",
                    ", ".join(f"{backend}.{k}" for k in opts), backend, ", ".join(in_use))


def one_topic(topics: list[Topic], topic_id: str | None) -> Topic:
    by_id = {t.id: t for t in topics}
    if topic_id is None and len(by_id) == 1:
        return next(iter(by_id.values()))
    if topic_id not in by_id:
        raise ConfigError(f"--weak-labels needs --topic, one of {', '.join(sorted(by_id))}"
                          + (f" (got {topic_id!r})" if topic_id else ""))
    return by_id[topic_id]


@dataclass
class LabelRun:
    """What :func:`label_file` did: rows written, rows skipped (line, reason), a one-line
    summary, the backends' last failures and how many rows every backend failed on."""

    written: int
    skipped: list[tuple[int, str]]
    summary: str
    errors: list[str] = field(default_factory=list)
    unlabelled: int = 0  # rows written as "unclear"/"none": every backend failed on them
    no_text: int = 0  # rows with no text: written with the "no text" labels, no backend's

    @property
    def all_failed(self) -> bool:
        """No row got a label: every written row with text failed on every backend (rows with
        no text neither count as labelled nor hide that; a file of them alone is no failure)."""
        texts = self.written - self.no_text
        return texts > 0 and self.unlabelled == texts

    def all_failed_error(self) -> str:
        return (f"error: every backend failed on all {self.written - self.no_text:,} rows with "
                f"text: no row got a label "
                f"(the output holds them as unclear, backend \"none\"); fix the backend (see "
                f"the failures above) or add a fallback (--fallback lexicon)")


def _rate(n: int, seconds: float) -> str:
    rate = n / max(seconds, 1e-9)
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"


def label_file(cfg: Config, src: Path, output: str | None, *, topics_file: str | None = None,
               backend: str | None = None, fallback: list[str] | None = None,
               options: list[str] | None = None, cascade_to: str | None = None,
               cascade_threshold: float | None = None, llm_budget: int | None = None,
               batch_size: int = 256, progress: bool = False) -> LabelRun:
    """Label every usable row of `src` into `output` (JSONL; ``None`` or ``-``: stdout) with
    `backend` (default ``[extractor] backend``) and its fallbacks; `progress`: a bar on
    stderr. An `output` that is `src`, or in a directory that does not exist, is refused
    before anything is read (:func:`polarwatch.safe_write.check_new_output`)."""
    from tqdm import tqdm

    from scoring import io
    from scoring.fallback import build_from_config

    if output not in (None, "-"):
        check_new_output(src, Path(str(output)), "the labels would overwrite the posts")
    topics = resolve_topics(cfg, topics_file)
    backend = backend or cfg.extractor.backend
    ext = cfg.extractor_settings
    parsed = parse_options(options or [], backend)
    cascade = (cascade_to if cascade_to is not None else ext.cascade_to) or None
    check_unused_options(parsed, list(dict.fromkeys(
        [backend, *(ext.fallback if fallback is None else fallback),
         *([cascade] if cascade else [])])))
    posts, skipped = io.read_posts(src, [t.id for t in topics])
    t_load = time.monotonic()
    extractor = build_from_config(ext, topics, backend, fallback, parsed, cascade_to=cascade_to,
                                  cascade_threshold=cascade_threshold,
                                  max_calls_per_minute=llm_budget)
    load_s, t0 = time.monotonic() - t_load, time.monotonic()
    with tqdm(total=len(posts), desc="label", unit="rows", file=sys.stderr,
              disable=not progress) as bar:
        labels = io.label_posts(posts, extractor, batch_size, on_batch=bar.update)
    label_s = time.monotonic() - t0
    records = io.output_records(posts, labels)
    if output in (None, "-"):
        with writing(STDOUT):  # a full disk is one error line naming what was written
            written = io.write_jsonl(records, sys.stdout)
            sys.stdout.flush()
    else:
        with writing(str(output)), Path(str(output)).open("w", encoding="utf-8") as fh:
            written = io.write_jsonl(records, fh)
    chain = getattr(extractor, "primary", extractor)
    blank = [no_text(p.text) for p in posts]  # their "no text" labels are no backend's
    per_backend = dict(Counter(lab.backend for lab, b in zip(labels, blank, strict=True)
                               if not b))
    unlabelled, n_blank = per_backend.get("none", 0), sum(blank)
    failures = {k.removesuffix(" failed"): v for k, v in getattr(chain, "stats", {}).items()
                if k.endswith(" failed")}
    unpaired = io.unpaired_replies(posts)
    summary = (f"labeled {written - unlabelled - n_blank:,} of {written:,} rows with "
               f"{extractor.name} in "
               f"{label_s:.2f} s ({_rate(written, label_s)} rows/s; backend load "
               f"{load_s:.2f} s); {len(skipped):,} rows skipped; labels by backend: "
               f"{per_backend}"
               + (f"; failures by backend: {failures}" if failures else "")
               + (f"; {unlabelled:,} rows failed on every backend (written as unclear, "
                  f"backend \"none\")" if unlabelled else "")
               + (f"; {n_blank:,} rows had no text (written as unclear: nothing to label)"
                  if n_blank else "")
               + (f"; {unpaired:,} replies to a row of another topic left unpaired (no "
                  f"agreement, no interaction score)" if unpaired else "")
               + (f"; cascade: {dict(getattr(extractor, 'stats', {}))}"
                  if chain is not extractor else "")
               + (f" -> {output}" if output not in (None, "-") else ""))
    return LabelRun(written, skipped, summary, list(getattr(chain, "last_errors", [])),
                    unlabelled, n_blank)
