"""``polarwatch stream``: the Spark job, Kafka → labels → DuckDB."""

from __future__ import annotations

import argparse
from typing import Any

from polarwatch.config import Config
from polarwatch.console import log
from polarwatch.warehouse import connect, scalar
from scoring.extractors.registry import available_backends

SUMMARY_TABLES = ("posts", "interactions", "topic_windows", "dead_letters", "stream_batches")


def summarize_warehouse(cfg: Config) -> dict[str, int]:
    """Log and return the row count of each table the stream writes."""
    with connect(cfg.warehouse_path, read_only=True) as con:
        counts = {t: int(scalar(con, f"SELECT count(*) FROM {t}")) for t in SUMMARY_TABLES}
    log("rows in DuckDB " + str(cfg.warehouse_path) + ": "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return counts


def cmd_stream(cfg: Config, args: argparse.Namespace) -> int:
    from stream.job import run_stream

    run_stream(cfg, available_now=not args.continuous, reset=args.reset, backend=args.backend)
    summarize_warehouse(cfg)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("stream", help="run the Spark job: Kafka → labels → DuckDB")
    p.add_argument("--continuous", action="store_true",
                   help="keep running (default: drain what is in the topic and stop)")
    p.add_argument("--reset", action="store_true",
                   help="delete the checkpoint and start from the topic's first offset")
    p.add_argument("--backend", choices=available_backends(),
                   help="extractor backend (default: [extractor] backend)")
    p.set_defaults(func=cmd_stream)
