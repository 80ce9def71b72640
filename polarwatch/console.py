"""Console output and process lifecycle shared by every stage's commands.

Messages go through the ``logging`` module (logger ``polarwatch``): :func:`setup_logging` prints
them to stdout as ``[polarwatch HH:MM:SS] message``; ``-v`` adds debug messages and ``-q`` keeps
only warnings and errors. :data:`STOP` and :data:`SERVING` let SIGTERM end a long-running command
(the dashboard, the demo) so its cleanup runs in order.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

LOGGER = logging.getLogger("polarwatch")
STOP = threading.Event()  # set by SIGTERM: long-running commands return and clean up
SERVING = threading.Event()  # set while a command waits on STOP (SIGTERM then only sets STOP)


class _CurrentStdout(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is now (test harnesses swap it per test)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(verbosity: int = 0) -> None:
    """Route ``polarwatch`` log records to stdout; ``verbosity`` 1 = debug, -1 = warnings only."""
    level = logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    for handler in [h for h in LOGGER.handlers if isinstance(h, _CurrentStdout)]:
        LOGGER.removeHandler(handler)
    handler = _CurrentStdout()
    handler.setFormatter(logging.Formatter("[polarwatch %(asctime)s] %(message)s", "%H:%M:%S"))
    LOGGER.addHandler(handler)
    LOGGER.setLevel(level)
    LOGGER.propagate = False


def log(msg: str) -> None:
    """One progress line of a command (INFO)."""
    LOGGER.info(msg)
