"""Console output and process lifecycle shared by every stage's commands.

Messages go through the ``logging`` module: the commands log to ``polarwatch``, library code to
its module's logger (``logging.getLogger(__name__)``, e.g. ``stream.sink``). :func:`setup_logging`
prints both to **stderr** as ``[polarwatch HH:MM:SS] message``; ``-v`` adds debug messages and
``-q`` keeps only warnings and errors. Standard output carries only a command's data (``label``'s
JSONL, ``detect``'s CSV, ``schema``'s JSON Schema, ...), so no log line can corrupt it. Progress bars (tqdm, on stderr) follow the global
``--progress`` / ``--no-progress`` through :func:`show_progress`. :data:`STOP` and
:data:`SERVING` let SIGTERM end a long-running command (the dashboard, the demo) so its cleanup
runs in order.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

LOGGER = logging.getLogger("polarwatch")
STOP = threading.Event()  # set by SIGTERM: long-running commands return and clean up
SERVING = threading.Event()  # set while a command waits on STOP (SIGTERM then only sets STOP)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test harnesses swap it per test). Never
    stdout: commands such as ``label`` and ``detect`` write their data there."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbosity: int = 0, packages: Sequence[str] = ()) -> None:
    """Route the records of ``polarwatch`` and of each package in `packages` (the stages whose
    commands are registered: their modules log to ``<package>.<module>``) to stderr;
    ``verbosity`` 1 = debug, -1 = warnings only. Other libraries' loggers are left alone, and
    records still propagate (to pytest's caplog, or to a root handler an embedding app set)."""
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("[polarwatch %(asctime)s] %(message)s", "%H:%M:%S"))
    for name in dict.fromkeys(["polarwatch", *packages]):
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.setLevel(level)


def log(msg: str) -> None:
    """One progress line of a command (INFO)."""
    LOGGER.info(msg)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether a command draws its progress bar on stderr: never under ``-q``; else as the
    global ``--progress`` / ``--no-progress`` says; with neither, when stderr is a terminal.
    Standard output (labels, CSV) is never touched."""
    if getattr(args, "log_level", 0) < 0:
        return False
    chosen = getattr(args, "progress", None)
    return sys.stderr.isatty() if chosen is None else bool(chosen)
