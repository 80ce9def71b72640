"""``polarwatch stream``: the Spark job, Kafka → labels → DuckDB (:mod:`stream.job`)."""

from __future__ import annotations

import argparse
from typing import Any

from polarwatch.config import Config
from scoring.extractors.registry import available_backends


def cmd_stream(cfg: Config, args: argparse.Namespace) -> int:
    from stream.job import run_stream
    from stream.summary import summarize_warehouse

    run_stream(cfg, available_now=not args.continuous, reset=args.reset, backend=args.backend)
    summarize_warehouse(cfg)
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
