"""Serving the Streamlit app (``polarwatch dashboard``, and the demo's live phase): its
process, its environment and its shutdown on Ctrl-C or SIGTERM."""

from __future__ import annotations

import errno
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from dashboard.label_assist import llm_configured
from dashboard.safety import TOKEN_ENV, allowed_hosts, new_token
from dashboard.snapshot import SNAPSHOT_ENV
from polarwatch.config import Config
from polarwatch.console import SERVING, STOP
from polarwatch.errors import PolarwatchError
from polarwatch.redact import scrubbed_env

LOG = logging.getLogger(__name__)
APP = Path(__file__).resolve().parent / "app.py"
LLM_KEY_ENV = "POLARWATCH_EXTRACTOR_LLM_API_KEY"  # the one credential the app may need


def app_env(cfg: Config, env: dict[str, str] | None = None,
            base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The app process's environment: ``base`` (this process's environment) with ``env`` on
    top, the config file, the warehouse path, and ``$POLARWATCH_DASHBOARD_SNAPSHOT_S`` from
    ``[dashboard] snapshot_seconds`` unless one of the two already sets it.

    Credentials are left out (:func:`polarwatch.redact.scrubbed_env`) but one: the LLM API
    key, as ``$POLARWATCH_EXTRACTOR_LLM_API_KEY``, when the Label page may ask the llm backend
    (``[dashboard] allow_labels`` and an llm backend configured)."""
    child = cfg.child_env(scrubbed_env(base) | (env or {}))
    key = cfg.extractor.llm_api_key.get_secret_value()
    if key and cfg.dashboard.allow_labels and llm_configured(cfg.extractor):
        child[LLM_KEY_ENV] = key  # "Ask the LLM" sends it; no other secret reaches the app
    child["POLARWATCH_WAREHOUSE_PATH"] = str(cfg.warehouse_path)
    child.setdefault(SNAPSHOT_ENV, str(cfg.dashboard.snapshot_seconds))
    return child


def require_free_port(address: str, port: int) -> None:
    """Refuse (PolarwatchError, one line) a port another program listens on, or one this
    machine cannot bind, before a link to it is printed: Streamlit would only say "Port N is
    not available" after the link, and the link would lead to that other program."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Streamlit binds
            probe.bind(where)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PolarwatchError(f"{address}:{port} is in use (another dashboard, or another "
                                  f"program, listens there): stop it, or pass --port with a "
                                  f"free port") from None
        raise PolarwatchError(f"cannot serve on {address}:{port}: {exc.strerror or exc}; pass "
                              f"another --port, or set [dashboard] address") from None


def serve_dashboard(cfg: Config, port: int, env: dict[str, str] | None = None) -> int:
    """Run the app until Ctrl-C or SIGTERM; ``env`` adds variables for the app's process.
    Returns 0 after Ctrl-C or SIGTERM, 1 when the server ended by itself."""
    require_free_port(cfg.dashboard.address, port)
    token = new_token()  # edits need the link carrying it: a page on another origin has not
    child_env = app_env(cfg, env) | {TOKEN_ENV: token}
    hosts = allowed_hosts(cfg.dashboard.address, cfg.dashboard.allowed_hosts)
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless",
           "true", "--server.address", cfg.dashboard.address, "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--server.enableCORS", "true",
           *[arg for host in hosts for arg in ("--server.allowedHosts", host)]]
    url = f"http://{cfg.dashboard.address}:{port}"
    LOG.info(f"dashboard at {url}  (press Ctrl-C to stop)")
    if cfg.dashboard.edit_events:
        LOG.info(f"to edit events open {url}/event_calendar?token={token} (this run's link; other "
            f"links show the calendar read-only)")
    if cfg.dashboard.allow_labels:
        LOG.info(f"to label posts open {url}/label?token={token} (this run's link; other "
                 f"links show the Label page without storing)")
    proc = subprocess.Popen(cmd, env=child_env)
    SERVING.set()  # SIGTERM now only asks this loop to end, so cleanup runs in order
    asked = False  # Ctrl-C or SIGTERM asked it to stop
    try:
        while proc.poll() is None and not STOP.is_set():
            time.sleep(0.2)
        asked = STOP.is_set()  # also when SIGTERM to the group ended the server too
    except KeyboardInterrupt:
        asked = True
    finally:
        SERVING.clear()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    if not asked:
        LOG.error(f"the dashboard server stopped by itself (exit {proc.returncode}); its "
                  f"messages are above")
        return 1
    return 0
