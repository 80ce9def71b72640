"""Console output and process lifecycle shared by every stage's commands.

Messages go through the ``logging`` module: the commands log to ``polarwatch``, library code to
its module's logger (``logging.getLogger(__name__)``, e.g. ``stream.sink``). :func:`setup_logging`
prints both to **stderr** as ``[polarwatch HH:MM:SS] message``; ``-v`` adds debug messages and
``-q`` keeps only warnings and errors. Standard output carries only a command's data (``label``'s
JSONL, ``detect``'s CSV, ``schema``'s JSON Schema, ...), so no log line can corrupt it. Progress bars (tqdm, on stderr) follow the global
``--progress`` / ``--no-progress`` through :func:`show_progress`. :data:`STOP` and
:data:`SERVING` let SIGTERM end a long-running command (the dashboard, the demo) so its cleanup
runs in order; :class:`SignalHold` turns SIGTERM and the first Ctrl-C into events only, for a
command that must never be interrupted inside a call (the stream, inside py4j calls to Spark).
"""

from __future__ import annotations

import argparse
import atexit
import codecs
import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from types import FrameType, TracebackType
from typing import Any, TextIO

LOGGER = logging.getLogger("polarwatch")
STOP = threading.Event()  # set by SIGTERM: long-running commands return and clean up
SERVING = threading.Event()  # set while a command waits on STOP (SIGTERM then only sets STOP)
INTERRUPTED = threading.Event()  # set by the first Ctrl-C while a SignalHold is held
_DROP = logging.NullHandler()
# HTTP clients that log each request with its full URL (httpx at INFO: "HTTP Request: POST
# https://hooks.example/T0/B0/<token>"), where webhook and gateway secrets live. Held at WARNING
# at every verbosity; polarwatch's own lines name each delivery and failure by host only.
URL_LOGGERS = ("httpx", "httpcore")
CHILD_DELAY_S = 0.5  # how long quiet_children_after_stop holds a child's output back


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (test harnesses swap it per test). Never
    stdout: commands such as ``label`` and ``detect`` write their data there."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _is_utf8(stream: Any) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False


def utf8_streams() -> None:
    """Standard output in UTF-8 whatever the locale (``LC_ALL=C``, a Latin-9 one): it carries
    JSONL, CSV and listings with any character (``’``, ``→``), and JSONL is UTF-8 by
    definition, so a non-UTF-8 locale must not cut ``label``'s output short with an encoding
    error. Standard error keeps the locale's encoding (it is read by a person, on that
    terminal) and escapes what it cannot encode (``\\u2192``) instead of failing. Streams
    something else put in place without ``reconfigure`` (a test harness's) are left alone."""
    out, err = sys.stdout, sys.stderr
    if not _is_utf8(out) and hasattr(out, "reconfigure"):
        out.reconfigure(encoding="utf-8", errors=out.errors)
    if not _is_utf8(err) and hasattr(err, "reconfigure"):
        err.reconfigure(errors="backslashreplace")


def setup_logging(verbosity: int = 0, packages: Sequence[str] = ()) -> None:
    """Route the records of ``polarwatch`` and of each package in `packages` (the stages whose
    commands are registered: their modules log to ``<package>.<module>``) to stderr;
    ``verbosity`` 1 = debug, -1 = warnings only. Other libraries' loggers are left alone, and
    records still propagate (to pytest's caplog, or to a root handler an embedding app set),
    except the :data:`URL_LOGGERS`, held at WARNING: their request lines carry secrets."""
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
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


def _quiet_after_signal() -> None:
    """From now on drop Python warnings, and the root logger's records when it has no handler:
    py4j logs there each call to a JVM that the same signal ended (logging's automatic set-up,
    ``basicConfig`` on the first such record, would print each with its traceback and repeat
    every later polarwatch line), and pyspark warns with the JVM's stack trace. polarwatch's
    loggers have their own handler; a root handler someone set stays."""
    warnings.simplefilter("ignore")
    if not logging.root.handlers:
        logging.root.addHandler(_DROP)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    STOP.set()
    _quiet_after_signal()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _quiet_after_signal()
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt  # the second Ctrl-C: stop now
    INTERRUPTED.set()


class SignalHold:
    """While held (a ``with`` block, in the main thread; elsewhere it holds nothing), SIGTERM only
    sets :data:`STOP` and the first Ctrl-C only sets :data:`INTERRUPTED`; a second Ctrl-C raises
    KeyboardInterrupt. For a command that watches those events and stops itself in order: the
    stream, whose main thread waits inside py4j calls to Spark's JVM, where an exception raised
    by a signal handler leaves the call's connection unusable (the cleanup then hangs on it, or
    fails and replaces the exit). After either signal py4j's complaints and Python warnings go
    nowhere (:func:`_quiet_after_signal`). :meth:`claim` takes SIGINT back after something else
    installed its own handler (a new SparkContext does); leaving the block restores the
    handlers found on entry."""

    def __init__(self) -> None:
        self._saved: dict[int, Any] = {}
        self.held = False  # it held the signals (stays true after the block)

    def __enter__(self) -> SignalHold:
        if threading.current_thread() is threading.main_thread():
            INTERRUPTED.clear()
            self.held = True
            self._saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
            self.claim()
        return self

    def claim(self) -> None:
        if self._saved:
            signal.signal(signal.SIGTERM, _on_sigterm)
            signal.signal(signal.SIGINT, _on_sigint)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._saved.items():
            if handler is not None:  # None: installed outside Python, cannot be put back
                signal.signal(sig, handler)
        self._saved = {}


@contextlib.contextmanager
def quiet_children_after_stop(keep: bool = False) -> Iterator[None]:
    """Processes started inside the block (and their children) write their standard error to a
    pipe that a thread of this process copies to its own, each chunk CHILD_DELAY_S late, until
    :data:`STOP` is set (SIGTERM): from then on it is dropped, unless `keep`. For Spark's JVM:
    a SIGTERM to the whole process group reaches it and its Python workers with the driver, and
    what they print while they fall apart (Java stack traces of jobs cut short) is noise, not an
    error; the delay lets the driver's own handler see the signal first. The block's own
    messages pass through the same pipe; what is held back when this process exits is written
    first (atexit)."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    copy = _ChildCopy(read_fd, os.dup(2), keep)
    sys.stderr.flush()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        threading.Thread(target=copy.run, name="polarwatch-child-stderr", daemon=True).start()
        atexit.register(copy.flush)
        yield
    finally:
        sys.stderr.flush()
        copy.flush()  # what came so far before what this process writes next
        os.dup2(copy.out_fd, 2)


class _ChildCopy:
    def __init__(self, read_fd: int, out_fd: int, keep: bool) -> None:
        self.read_fd, self.out_fd, self.keep = read_fd, out_fd, keep
        self.pending: deque[tuple[float, bytes]] = deque()
        self.lock = threading.Lock()
        self.done = False

    def run(self) -> None:
        while not self.done:
            with self.lock:
                wait = (max(self.pending[0][0] - time.monotonic(), 0.0) if self.pending
                        else None)
            select.select([self.read_fd], [], [], wait)
            with self.lock:
                self._read()
                self._write(time.monotonic())
        self.flush()  # the writers are gone: nothing to wait for

    def _read(self) -> None:
        while not self.done:
            try:
                chunk = os.read(self.read_fd, 65536)
            except BlockingIOError:
                return
            if not chunk:  # every writer has exited
                self.done = True
            else:
                self.pending.append((time.monotonic() + CHILD_DELAY_S, chunk))

    def _write(self, until: float) -> None:
        while self.pending and self.pending[0][0] <= until:
            chunk = self.pending.popleft()[1]
            if STOP.is_set() and not self.keep:
                self.pending.clear()
                return
            with contextlib.suppress(OSError):
                while chunk:
                    chunk = chunk[os.write(self.out_fd, chunk):]

    def flush(self) -> None:
        """Write whatever came so far, now."""
        with self.lock:
            self._read()
            self._write(float("inf"))
