"""``polarwatch stream`` (the Spark job, Kafka → labels → DuckDB: :mod:`stream.job`),
``polarwatch relabel`` (:mod:`stream.relabel`) and the warehouse side of ``polarwatch train
--from-warehouse`` (:mod:`stream.retrain`; scoring, which owns ``train``, reads no DuckDB)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from polarwatch.console import show_progress
from scoring.extractors.registry import available_backends


def _say(msg: str) -> None:
    print(f"polarwatch: {msg}", file=sys.stderr, flush=True)


def cmd_stream(cfg: Config, args: argparse.Namespace) -> int:
    from stream.job import run_stream
    from stream.summary import summarize_warehouse

    began = datetime.now(UTC)
    run_stream(cfg, available_now=not args.continuous, reset=args.reset, backend=args.backend)
    summarize_warehouse(cfg, since=began)
    return 0


def cmd_train_from_warehouse(cfg: Config, args: argparse.Namespace) -> int:
    from polarwatch.warehouse import lock_explained
    from stream.retrain import train_from_warehouse

    with lock_explained(cfg.warehouse_path, "polarwatch train --from-warehouse"):
        done = train_from_warehouse(cfg, args.topic, Path(args.output) if args.output else None,
                                    seed=args.seed, progress=show_progress(args), say=_say)
    for line in done.lines():
        _say(f"train: {line}")
    return 0


def cmd_relabel(cfg: Config, args: argparse.Namespace) -> int:
    from polarwatch.warehouse import lock_explained
    from stream.relabel import relabel

    with lock_explained(cfg.warehouse_path, "polarwatch relabel"):  # nothing written then
        run = relabel(cfg, since=args.since, until=args.until, topic=args.topic,
                      backend=args.backend, dry_run=args.dry_run, progress=show_progress(args))
    for line in run.lines():
        print(line, flush=True)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("stream", help="run the Spark job: Kafka → labels → DuckDB")
    p.add_argument("--continuous", action="store_true",
                   help="keep running (without it: drain what is in the topic and stop)")
    p.add_argument("--reset", action="store_true",
                   help="delete the checkpoint and start from the topic's first offset")
    p.add_argument("--backend", choices=available_backends(), config="extractor.backend",
                   help="extractor backend")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser(
        "relabel", help="label stored posts of a time range again with the current backend",
        description="Labels the stored posts with SINCE <= created_at < UNTIL (of --topic) "
                    "again, scores their interactions again and recomputes their windows. "
                    "Prints each label's counts before and after; each post records the "
                    "backend and head that labelled it (posts.labelled_by, relabelled_at).")
    p.add_argument("--since", type=argtypes.moment, shown_default="the first stored post",
                   help="start (a duration counts back from the newest stored post)")
    p.add_argument("--until", type=argtypes.moment, shown_default="after the last",
                   help="end, excluded (a duration counts back from the newest stored post)")
    p.add_argument("--topic", type=argtypes.utf8_text, help="only this topic's posts")
    p.add_argument("--backend", choices=available_backends(), config="extractor.backend",
                   help="extractor backend")
    p.add_argument("--dry-run", action="store_true",
                   help="label and report the changes, write nothing")
    p.set_defaults(func=cmd_relabel)

    train = sub.choices.get("train")  # scoring's, registered first (polarwatch.cli.PIPELINE)
    if train is not None:
        train.set_defaults(warehouse_trainer=cmd_train_from_warehouse)
