"""`polarwatch label` and `polarwatch train`: thin drivers over ``scoring.io``,
``scoring.fallback`` and ``scoring.training``."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config, Topic, load_topics
from polarwatch.errors import ConfigError, PolarwatchError
from scoring.extractors.registry import available_backends

MAX_REPORTED_ROWS = 20  # bad rows listed one by one; beyond this only the count


def _err(msg: str) -> None:
    print(f"polarwatch: {msg}", file=sys.stderr, flush=True)


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
    """``[BACKEND.]KEY=VALUE`` items → {backend: {key: value}}; no prefix = the main backend."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected [BACKEND.]KEY=VALUE, e.g. "
                              f"llm.base_url=http://127.0.0.1:8080/v1")
        backend, dot, name = key.rpartition(".")
        out.setdefault(backend if dot else default_backend, {})[name] = _value(value)
    return out


def _report_skipped(skipped: list[tuple[int, str]], path: Path) -> None:
    for line, reason in skipped[:MAX_REPORTED_ROWS]:
        _err(f"{path}:{line}: skipped: {reason}")
    if len(skipped) > MAX_REPORTED_ROWS:
        _err(f"... and {len(skipped) - MAX_REPORTED_ROWS:,} more skipped rows")


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar on stderr: with ``--progress`` or when stderr is a terminal; never under
    ``-q`` (the command's or the global one). Stdout (the labels) is never touched."""
    quiet = getattr(args, "quiet", False) or getattr(args, "log_level", 0) < 0
    return not quiet and (getattr(args, "progress", False) or sys.stderr.isatty())


def _rate(n: int, seconds: float) -> str:
    rate = n / max(seconds, 1e-9)
    return f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"


def cmd_label(cfg: Config, args: argparse.Namespace) -> int:
    from scoring import io
    from scoring.fallback import build_from_config

    topics = resolve_topics(cfg, args.topics)
    backend = args.backend or cfg.extractor.backend
    fallback = (None if args.fallback is None
                else [b for b in args.fallback.split(",") if b.strip()])
    src = Path(args.input)
    posts, skipped = io.read_posts(src, [t.id for t in topics])
    _report_skipped(skipped, src)
    t_load = time.monotonic()
    extractor = build_from_config(cfg.extractor, topics, backend, fallback,
                                  parse_options(args.option or [], backend),
                                  cascade_to=args.cascade_to,
                                  cascade_threshold=args.cascade_threshold,
                                  max_calls_per_minute=args.llm_budget)
    load_s = time.monotonic() - t_load
    from tqdm import tqdm

    t0 = time.monotonic()
    with tqdm(total=len(posts), desc="label", unit="rows", file=sys.stderr,
              disable=not show_progress(args)) as bar:
        labels = io.label_posts(posts, extractor, args.batch_size, on_batch=bar.update)
    label_s = time.monotonic() - t0
    records = io.output_records(posts, labels)
    if args.output in (None, "-"):
        written = io.write_jsonl(records, sys.stdout)
        sys.stdout.flush()
    else:
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            written = io.write_jsonl(records, fh)
    stats = getattr(extractor, "stats", {})
    chain = getattr(extractor, "primary", extractor)
    per_backend = dict(Counter(lab.backend for lab in labels))
    _err(f"labeled {written:,} rows with {extractor.name} in {label_s:.2f} s "
         f"({_rate(written, label_s)} rows/s; backend load {load_s:.2f} s); "
         f"{len(skipped):,} rows skipped; labels by backend: {per_backend}"
         + (f"; cascade: {dict(stats)}" if chain is not extractor else "")
         + (f" -> {args.output}" if args.output not in (None, "-") else ""))
    for msg in getattr(chain, "last_errors", []):
        _err(f"backend failure: {msg}")
    return 0 if written or not skipped else 1


def cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    from scoring.training import train_head, train_weak_stance

    topics = resolve_topics(cfg, args.topics) if args.task == "stance" else []
    output = Path(args.output)
    if output.suffix != ".npz":
        raise PolarwatchError(f"-o {output}: a head file must end in .npz")
    data = Path(args.data)
    weak = ""
    if args.weak_labels:
        if args.task != "stance":
            raise PolarwatchError("--weak-labels labels stance only; use --task stance")
        topic = _one_topic(topics, args.topic)
        report, counts = train_weak_stance(data, topic, output, seed=args.seed,
                                           progress=show_progress(args))
        weak = (f" (weak labels from {topic.id!r} cue terms: {counts['pro']:,} pro, "
                f"{counts['anti']:,} anti, {counts['both']:,} with both sides left out, "
                f"{counts['unclear']:,} of {counts['none']:,} without cues as unclear)")
    else:
        report = train_head(args.task, data, topics, output, seed=args.seed,
                            progress=show_progress(args))
    _report_skipped(report.skipped, data)
    holdout = ("n/a (fewer than 50 rows: no holdout)" if report.holdout_macro_f1 is None
               else f"{report.holdout_macro_f1:.3f} (20% stratified holdout, also used to pick C)")
    _err(f"trained a {report.task} head on {report.n_rows:,} rows {report.class_counts} in "
         f"{report.seconds:.1f} s; C={report.c:g}; holdout macro-F1 {holdout}; "
         f"{len(report.skipped):,} rows skipped -> {report.output}{weak}")
    return 0


def _one_topic(topics: list[Topic], topic_id: str | None) -> Topic:
    by_id = {t.id: t for t in topics}
    if topic_id is None and len(by_id) == 1:
        return next(iter(by_id.values()))
    if topic_id not in by_id:
        raise ConfigError(f"--weak-labels needs --topic, one of {', '.join(sorted(by_id))}"
                          + (f" (got {topic_id!r})" if topic_id else ""))
    return by_id[topic_id]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "label", help="annotate a JSONL/CSV file of posts (stance, affect, agreement, ...)",
        description="Label every row of INPUT (JSONL or CSV with columns id, text, topic and "
                    "optional parent_id, parent_text, created_at, author_id). Writes one JSON "
                    "line per good row; unusable rows are reported with their line number.")
    p.add_argument("input", help="JSONL or CSV file")
    p.add_argument("-o", "--output", help="output JSONL (default: stdout)")
    p.add_argument("--backend", choices=available_backends(),
                   help="extractor backend (default: [extractor] backend)")
    p.add_argument("--fallback", help="comma-separated backends tried when the main one fails "
                                      "on a post (default: [extractor] fallback)")
    p.add_argument("--topics", help="extra topics file (used even if not configured)")
    p.add_argument("--option", "-O", action="append", metavar="[BACKEND.]KEY=VALUE",
                   help="backend option, e.g. llm.base_url=http://127.0.0.1:8080/v1 or "
                        "transformers.model_path=model.gguf (repeatable)")
    p.add_argument("--cascade-to", metavar="BACKEND",
                   help="send posts the main backend is unsure of to this one, e.g. llm "
                        "(default: [extractor] cascade_to; '' turns it off)")
    p.add_argument("--cascade-threshold", type=argtypes.at_least(0.0), default=None,
                   help="escalate when the lowest stance/affect/agreement confidence is below "
                        "this (default: [extractor] cascade_threshold, 0.6)")
    p.add_argument("--llm-budget", type=argtypes.count(1), default=None, metavar="CALLS_PER_MINUTE",
                   help="at most this many cascade calls per minute (default: [extractor] "
                        "llm_calls_per_minute, 60)")
    p.add_argument("--batch-size", type=argtypes.count(1), default=256)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true",
                   help="a progress bar on stderr even when it is not a terminal")
    p.set_defaults(func=cmd_label)

    p = subparsers.add_parser(
        "train", help="train a `learned` head from a labeled JSONL/CSV file",
        description="Columns: text, label (+ topic for stance, parent_text for agreement); with "
                    "--weak-labels only text. Writes a .npz head that the learned backend loads "
                    "(stance_<topic>.npz next to the shipped heads serves that topic).")
    p.add_argument("--task", required=True, choices=["stance", "affect", "agreement", "emotion"])
    p.add_argument("data", help="labeled JSONL or CSV")
    p.add_argument("--topics", help="topics file for the stance task's topic ids")
    p.add_argument("-o", "--output", required=True, help="head file to write (.npz)")
    p.add_argument("--seed", type=argtypes.count(0), default=0, help="holdout split seed")
    p.add_argument("--weak-labels", action="store_true",
                   help="stance only: DATA is unlabeled posts (column text, optional topic); "
                        "label them with the topic's pro_terms / anti_terms, remove those terms "
                        "from the text and train on that (no LLM needed)")
    p.add_argument("--topic", help="with --weak-labels: the topic id to label and train for")
    p.add_argument("--progress", action="store_true",
                   help="a progress bar of the encoding on stderr even when it is not a "
                        "terminal (default: only on a terminal; never with -q)")
    p.set_defaults(func=cmd_train)
