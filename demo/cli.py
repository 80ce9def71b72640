"""``polarwatch demo``: the whole chain on a synthetic corpus, then a live feed while the
dashboard is served (:mod:`demo.run`)."""

from __future__ import annotations

import argparse
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from scoring.extractors.registry import available_backends


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    from demo.run import run_demo

    return run_demo(cfg, days=args.days, seed=args.seed, port=args.port, backend=args.backend,
                    dashboard=not args.no_dashboard, forecast_every=args.forecast_every)


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run the whole chain on a synthetic corpus and serve the "
                                    "dashboard")
    p.add_argument("--days", type=argtypes.count(1), default=14, help="simulated days")
    p.add_argument("--seed", type=argtypes.count(0), default=7, help="random seed")
    p.add_argument("--port", type=argtypes.port, default=8501, help="dashboard port")
    p.add_argument("--backend", choices=available_backends(), config="extractor.backend",
                   help="extractor backend")
    p.add_argument("--no-dashboard", action="store_true", help="stop after the forecast")
    p.add_argument("--forecast-every", type=argtypes.duration, default="60s",
                   help="while live, re-run the forecast and alerts this often")
    p.set_defaults(func=cmd_demo)
