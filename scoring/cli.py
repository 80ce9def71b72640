"""`polarwatch label` and `polarwatch train`: thin drivers over ``scoring.runs`` and
``scoring.training``. Their progress bars follow the global ``--progress`` / ``-q``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from polarwatch.console import show_progress
from polarwatch.errors import PolarwatchError
from scoring.extractors.registry import available_backends
from scoring.runs import one_topic, resolve_topics

MAX_REPORTED_ROWS = 20  # bad rows listed one by one; beyond this only the count


def _err(msg: str, *more: str) -> None:  # a line each
    print(*(f"polarwatch: {m}" for m in (msg, *more)), sep="\n", file=sys.stderr, flush=True)


def _report_skipped(skipped: list[tuple[int, str]], path: Path) -> None:
    for line, reason in skipped[:MAX_REPORTED_ROWS]:
        _err(f"{path}:{line}: skipped: {reason}")
    if len(skipped) > MAX_REPORTED_ROWS:
        _err(f"... and {len(skipped) - MAX_REPORTED_ROWS:,} more skipped rows")


def cmd_label(cfg: Config, args: argparse.Namespace) -> int:
    from scoring.runs import label_file

    src = Path(args.input)
    run = label_file(cfg, src, args.output, topics_file=args.topics, backend=args.backend,
                     fallback=(None if args.fallback is None
                               else [b for b in args.fallback.split(",") if b.strip()]),
                     options=args.option, cascade_to=args.cascade_to,
                     cascade_threshold=args.cascade_threshold, llm_budget=args.llm_budget,
                     batch_size=args.batch_size, progress=show_progress(args))
    _report_skipped(run.skipped, src)
    _err(run.summary)
    for msg in run.errors:
        _err(f"backend failure: {msg}")
    if run.all_failed:
        _err(run.all_failed_error())
    return 0 if (run.written or not run.skipped) and not run.all_failed else 1


def cmd_train(cfg: Config, args: argparse.Namespace) -> int:
    from scoring.training import article, head_output, train_head, train_weak_stance

    if args.from_warehouse:
        if args.data is not None or args.weak_labels:
            raise PolarwatchError("--from-warehouse reads the analysts' labels from the "
                                  "warehouse: give no DATA file and no --weak-labels")
        if args.task not in (None, "stance"):
            raise PolarwatchError("--from-warehouse trains a topic's stance head: --task stance")
        if not args.topic:
            raise PolarwatchError("--from-warehouse needs --topic ID")
        runner = getattr(args, "warehouse_trainer", None)
        if runner is None:  # set by the stream stage (stream/cli.py), which reads DuckDB
            raise PolarwatchError("train --from-warehouse needs the stream stage installed "
                                  "(pip install -e .)")
        return int(runner(cfg, args))
    missing = [name for name, value in (("--task", args.task), ("DATA", args.data),
                                        ("-o/--output", args.output)) if value is None]
    if missing:
        raise PolarwatchError(f"train needs {', '.join(missing)} (or --from-warehouse --topic ID)")
    topics = resolve_topics(cfg, args.topics) if args.task == "stance" else []
    output = head_output(args.output)  # a FIFO, directory or device: refused before training
    data, weak = Path(args.data), ""
    if args.weak_labels:
        if args.task != "stance":
            raise PolarwatchError("--weak-labels labels stance only; use --task stance")
        topic = one_topic(topics, args.topic)
        report, counts = train_weak_stance(data, topic, output, seed=args.seed,
                                           progress=show_progress(args))
        weak = (f" (weak labels from {topic.id!r} cue terms: {counts['pro']:,} pro, "
                f"{counts['anti']:,} anti, {counts['both']:,} with both sides left out, "
                f"{counts['unclear']:,} of {counts['none']:,} without cues as unclear)")
    else:
        report = train_head(args.task, data, topics, output, seed=args.seed,
                            progress=show_progress(args))
    for line in report.skipped_lines(data, every=args.log_level > 0):
        _err(line)
    holdout = report.holdout()
    _err(f"trained {article(report.task)} {report.task} head on {report.n_rows:,} rows {report.class_counts}"
         f"{report.label_source()} in {report.seconds:.1f} s; C={report.c:g}; holdout macro-F1 "
         f"{holdout}; {len(report.skipped):,} rows skipped -> {report.output}{weak}",
         *report.warnings())  # a head that guesses, or lacks a class: a line each, last
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "label", help="annotate a JSONL/CSV file of posts (stance, affect, agreement, ...)",
        description="Label every row of INPUT (JSONL or CSV with columns id, text, topic and "
                    "optional parent_id, parent_text, created_at, author_id). Writes one JSON "
                    "line per good row; unusable rows are reported with their line number.")
    p.add_argument("input", help="JSONL or CSV file")
    p.add_argument("-o", "--output", shown_default="stdout", help="output JSONL")
    p.add_argument("--backend", choices=available_backends(), config="extractor.backend",
                   help="extractor backend")
    p.add_argument("--fallback", type=argtypes.utf8_text, config="extractor.fallback",
                   help="comma-separated backends tried when the main one fails on a post")
    p.add_argument("--topics", help="extra topics file (used even if not configured)")
    p.add_argument("--option", "-O", action="append", metavar="[BACKEND.]KEY=VALUE",
                   help="backend option, e.g. llm.timeout=30 or transformers.model_path="
                        "model.gguf (repeatable; an unknown key is refused with the list)")
    p.add_argument("--cascade-to", type=argtypes.utf8_text, metavar="BACKEND",
                   config="extractor.cascade_to",
                   help="send posts the main backend is unsure of to this one, e.g. llm "
                        "('' turns it off)")
    p.add_argument("--cascade-threshold", type=argtypes.at_least(0.0),
                   config="extractor.cascade_threshold", help="escalate when the lowest "
                   "stance/affect/agreement confidence is below this")
    p.add_argument("--llm-budget", type=argtypes.count(1), metavar="CALLS_PER_MINUTE",
                   config="extractor.llm_calls_per_minute",
                   help="at most this many cascade calls per minute")
    p.add_argument("--batch-size", type=argtypes.count(1), default=256,
                   help="posts per backend call")
    p.set_defaults(func=cmd_label)

    p = subparsers.add_parser(
        "train", help="train a `learned` head from a labeled file, or a topic's stance head "
                      "from the analysts' labels (--from-warehouse)",
        description="Columns: text, label (+ topic for stance, parent_text for agreement), "
                    "or the output of `polarwatch label` as it is (the task's column is the "
                    "label; rows no backend labelled are skipped); with "
                    "--weak-labels only text. Writes a .npz head that the learned backend loads "
                    "(stance_<topic>.npz in [extractor] learned_topic_heads_dir serves that "
                    "topic). With --from-warehouse --topic ID: fits the topic's stance head "
                    "from the stance labels analysts gave on the dashboard's Label page, "
                    "starting from the general model, cross-validates it on those labels and "
                    "writes it only if it beats the head serving the topic now.")
    p.add_argument("--task", choices=["stance", "affect", "agreement", "emotion"],
                   help="which head to train (required with DATA)")
    p.add_argument("data", nargs="?", help="labeled JSONL or CSV")
    p.add_argument("--topics", help="topics file for the stance task's topic ids")
    p.add_argument("-o", "--output", shown_default="with --from-warehouse: [extractor] "
                   "learned_topic_heads_dir/stance_<topic>.npz",
                   help="head file to write (.npz; required with DATA)")
    p.add_argument("--seed", type=argtypes.count(0), default=0, help="seed of the holdout "
                   "split (DATA) or of the cross-validation folds (--from-warehouse)")
    p.add_argument("--weak-labels", action="store_true",
                   help="stance only: DATA is unlabeled posts (column text, optional topic); "
                        "label them with the topic's pro_terms / anti_terms, remove those terms "
                        "from the text and train on that (no LLM needed)")
    p.add_argument("--topic", type=argtypes.utf8_text, help="with --weak-labels or --from-warehouse: the topic id")
    p.add_argument("--from-warehouse", action="store_true",
                   help="train --topic's stance head from the analysts' stance labels in the "
                        "warehouse ([warehouse] path)")
    p.set_defaults(func=cmd_train)
