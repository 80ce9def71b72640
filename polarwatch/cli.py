"""The ``polarwatch`` command line: a thin shell that lists the stages' commands.

Each stage registers its own sub-commands through the ``polarwatch.commands`` entry points in
``pyproject.toml`` (``register(subparsers)``, each command a ``func(cfg, args) -> int`` driver
over that stage's library code), so this module imports no stage.

The options every command shares are global and go before the command: ``--config``, ``-v`` /
``-q`` and ``--progress`` / ``--no-progress``; a command takes only its own options. Every
parser is an :class:`polarwatch.argtypes.Parser`, so ``--help`` shows types, defaults and
environment variables the same way everywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shlex
import signal
import sys
import warnings
from importlib.metadata import entry_points
from typing import Any

from polarwatch.argtypes import Parser
from polarwatch.config import CONFIG_ENV, load_config
from polarwatch.console import SERVING, STOP, setup_logging, utf8_streams
from polarwatch.errors import PolarwatchError
from polarwatch.safe_write import STDOUT, writing

COMMANDS_GROUP = "polarwatch.commands"
# --help order, and the order stages register in: scoring (label, train) before stream, which
# gives `train` its --from-warehouse runner (scoring reads no DuckDB)
PIPELINE = ("demo", "ingest", "scoring", "stream", "forecast", "dashboard")
GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet", "--progress", "--no-progress")
GLOBAL_VALUED = {"--config": "FILE"}  # the global options that take a value (and its metavar)
# An OSError from a full disk carries no file name (polarwatch.safe_write.writing adds it where
# the output is written): one error line with what to do, never a traceback.
DISK_FULL = {errno.ENOSPC: "free some space on that disk, or write elsewhere",
             errno.EDQUOT: "free some space within your quota, or write elsewhere"}


def _is_valued(token: str) -> bool:
    """`--config` or a prefix of it that argparse takes for it at the top (`--conf`)."""
    return any(len(token) > 2 and "=" not in token and name.startswith(token)
               for name in GLOBAL_VALUED)


def _put_first(argv: list[str]) -> tuple[list[str], list[str], list[str]]:
    """The global options given after the command (`label x.jsonl --config F`): their names,
    their tokens, and `argv` with them moved before the command (`--config F label x.jsonl`)."""
    at = 0
    while at < len(argv) and argv[at].startswith("-"):  # the globals before the command
        at += 2 if _is_valued(argv[at]) else 1
    names: list[str] = []
    moved: list[str] = []
    kept: list[str] = []
    tail = argv[at + 1:]
    i = 0
    while i < len(tail):
        token, name = tail[i], tail[i].split("=", 1)[0]
        if token == "--":  # the rest is positional
            kept += tail[i:]
            break
        if name in GLOBAL_VALUED:
            names.append(name)
            take = 1 if "=" in token else 2
            moved += tail[i:i + take] if take == 1 or i + 1 < len(tail) else [
                token, GLOBAL_VALUED[name]]
            i += take
            continue
        if token in GLOBAL_FLAGS:
            names.append(token)
            moved.append(token)
        else:
            kept.append(token)
        i += 1
    return names, moved, [*argv[:at], *moved, *argv[at:at + 1], *kept]


class _Root(Parser):
    """Every parser of the command line (argparse makes sub-parsers of the parent's class)."""

    top: _Root | None = None  # the `polarwatch` parser, which keeps the command line given
    given: list[str] = []

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        if self.top is self:
            self.given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> Any:
        """A global option given after the command (a flag, or --config with its value, which
        a command's positional may have taken) says where it goes, with the corrected command
        line, in the one error line, whatever else went wrong."""
        names, moved, fixed = _put_first(self.top.given if self.top else [])
        if names:
            hint = (f"{', '.join(names)}: global, give before the command: "
                    f"`{shlex.join([self.top.prog if self.top else 'polarwatch', *fixed])}`")
            unknown = f" {message.partition('unrecognized arguments: ')[2]} "
            for token in moved:  # argparse lists the unknown tokens joined by spaces
                unknown = unknown.replace(f" {token} ", " ", 1)
            only = message.startswith("unrecognized arguments: ") and not unknown.strip()
            message = hint if only else f"{message}; {hint}"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Root(
        prog="polarwatch", description="Streaming social-media polarization monitor.",
        epilog="The options above are global: give them before the command. "
               "`polarwatch COMMAND --help` lists a command's own options.")
    parser.add_argument("--config", metavar="FILE", env=CONFIG_ENV, shown_default="./polarwatch.toml",
                        help="config file")
    loud = parser.add_mutually_exclusive_group()
    loud.add_argument("-v", "--verbose", dest="log_level", action="store_const", const=1,
                      default=0, help="also debug messages (e.g. every delivery confirmation "
                                      "of ingest)")
    loud.add_argument("-q", "--quiet", dest="log_level", action="store_const", const=-1,
                      help="only warnings and errors, and no progress bars")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        shown_default="bars only when stderr is a terminal",
                        help="progress bars on stderr (label, train, ingest file); -q turns "
                             "them off")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plugins = sorted(entry_points(group=COMMANDS_GROUP),
                     key=lambda ep: (PIPELINE.index(ep.name) if ep.name in PIPELINE else
                                     len(PIPELINE), ep.name))
    if not plugins:
        raise PolarwatchError(f"no commands are registered (entry points {COMMANDS_GROUP!r}): "
                              f"install polarwatch with `pip install -e .` (make venv does)")
    for ep in plugins:
        ep.load()(sub)
    parser.set_defaults(loggers=sorted({ep.value.split(".")[0] for ep in plugins}))
    for each in _parsers(parser):
        each.top = parser
    return parser


def _parsers(parser: argparse.ArgumentParser) -> list[_Root]:
    """`parser` and every sub-parser below it (`broker prune`, `alerts test`, ...)."""
    found = [parser] if isinstance(parser, _Root) else []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _parsers(sub)
    return found


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM: while a command waits on STOP (the dashboard), end its wait (cleanup follows
    normally); otherwise exit through `finally` blocks (stop the broker, Spark, the feed)."""
    STOP.set()
    if not SERVING.is_set():
        raise SystemExit(128 + signum)


def quiet_kafka_deprecations() -> None:
    """Ignore the DeprecationWarnings kafka-python raises about itself, and only those.

    kafka-python 3.0 reads its protocol schemas with ``importlib.resources.read_text`` while
    it is imported: under ``PYTHONWARNINGS=error`` (or ``-W error``) ``import kafka`` raised,
    and every command that talks to a broker crashed with a traceback. ``-W`` filters are
    installed at start-up; these go in front of them. The second filter takes the warning
    ``read_text`` raises from inside ``importlib.resources`` (``open_text``), which a legacy
    call raises only after its caller's own warning was let through: another caller's
    ``read_text`` still warns (or raises) under its own name."""
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\.|$)")
    warnings.filterwarnings("ignore", category=DeprecationWarning,
                            module=r"importlib\.resources\._legacy$")


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    quiet_kafka_deprecations()  # before any stage imports kafka
    utf8_streams()  # before any command writes: stdout UTF-8 under any locale
    try:
        args = build_parser().parse_args(argv)
        setup_logging(args.log_level, args.loggers)
        cfg = load_config(args.config)
        rc = int(args.func(cfg, args) or 0)
        with writing(STDOUT):  # what is still buffered: a full disk fails here, not at exit
            sys.stdout.flush()
        return rc
    except PolarwatchError as exc:
        print(f"polarwatch: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `polarwatch schema | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit flush
        return 1
    except OSError as exc:
        full = DISK_FULL.get(exc.errno or 0)
        if exc.filename is None and full is None:  # sockets, processes: a bug or a broken machine
            raise  # keep the trace
        if exc.filename == STDOUT:  # what stays buffered is dropped, not retried at exit
            with contextlib.suppress(OSError, ValueError):  # no descriptor (a test's capture)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        paths = " -> ".join(f if f == STDOUT else repr(str(f))
                            for f in (exc.filename, exc.filename2) if f is not None)
        print(f"polarwatch: error: {exc.strerror or exc}: {paths or 'writing the output'}; "
              + (full or "check the path and its permissions"),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
