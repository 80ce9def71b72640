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


def count(low: int = 1) -> Callable[[str], int]:
    """A whole number >= ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value

    parse.__name__ = f"whole number >= {low}"
    return parse


def finite(text: str) -> float:
    """Any finite number."""
    return _number(text)


def duration(text: str) -> float:
    """A positive duration in the one grammar (``30s``, ``10m``, ``1h``, ``7d``), as seconds."""
    from polarwatch.config import parse_duration
    from polarwatch.errors import ConfigError

    try:
        return parse_duration(text).total_seconds()
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration_or_zero(text: str) -> float:
    """:func:`duration`, or ``0`` (off)."""
    return 0.0 if text.strip() in ("0", "0s") else duration(text)


def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def duration_text(text: str) -> str:
    """:func:`duration`, checked at parsing but kept as the text the user wrote."""
    duration(text)
    return text
