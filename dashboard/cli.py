"""``polarwatch dashboard``: serve the Streamlit app (:mod:`dashboard.serve`) on the configured
interface."""

from __future__ import annotations

import argparse
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config


def cmd_dashboard(cfg: Config, args: argparse.Namespace) -> int:
    from dashboard.serve import serve_dashboard

    return serve_dashboard(cfg, args.port)


def register(sub: Any) -> None:
    p = sub.add_parser("dashboard", help="serve the Streamlit dashboard")
    p.add_argument("--port", type=argtypes.port, default=8501, help="port to serve on")
    p.set_defaults(func=cmd_dashboard)
