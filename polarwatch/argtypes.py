"""argparse ``type=`` callables: a wrong value becomes one line naming it and what is allowed
(argparse prints ``error: argument --x: …`` and exits with code 2), never a traceback."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def port(text: str) -> int:
    """A TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def unit_interval(text: str) -> float:
    """A probability-like threshold in (0, 1]."""
    value = _number(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]")
    return value


def at_least(low: float) -> Callable[[str], float]:
    """A finite number >= ``low``."""
    def parse(text: str) -> float:
        value = _number(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low:g}")
        return value

    parse.__name__ = f"number >= {low:g}"
    return parse


def season(text: str) -> int | str:
    """``auto``, ``none`` or a whole number of points per cycle >= 2."""
    if text in ("auto", "none"):
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, none or a whole number of "
                                         f"points >= 2")
    return value
