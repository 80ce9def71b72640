"""argparse ``type=`` callables: a wrong value becomes one line naming it and what is allowed
(argparse prints ``error: argument --x: …`` and exits with code 2), never a traceback.

:class:`Parser` (the class of the ``polarwatch`` parser, so of every stage's sub-parser) and
:class:`HelpFormatter` make ``--help`` uniform: a typed option shows its type's metavar
(``DURATION``, ``N``, ``PORT``) and ends in one bracket with the type, the default and, for an
option that falls back to a config key (``add_argument(..., config="section.key")``), that key
and its environment variable: ``[a whole number >= 1; default: 14]``,
``[default: [extractor] backend; env: POLARWATCH_EXTRACTOR_BACKEND]``. Help texts therefore
never spell out defaults by hand.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T", bound=Callable[[str], object])


def shown_as(metavar: str, kind: str) -> Callable[[T], T]:
    """Mark a type for ``--help``: `metavar` stands for the value (``--every DURATION``) and
    `kind` opens the option's bracket (``[a duration: 30s, 10m, 1h, 7d; default: …]``), both
    read by the CLI's help formatter."""
    def mark(parse: T) -> T:
        setattr(parse, "metavar", metavar)  # noqa: B010 (a function's attribute)
        setattr(parse, "kind", kind)  # noqa: B010
        return parse

    return mark


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


@shown_as("PORT", "1-65535")
def port(text: str) -> int:
    """A TCP port, 1..65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


@shown_as("P", "a number in (0, 1), both ends excluded")
def unit_interval(text: str) -> float:
    """A probability-like threshold in (0, 1): 1 would be a tail probability of 0, which no
    score reaches (and no quantile exists for), 0 would alarm on everything."""
    value = _number(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1), both ends excluded; "
                                         f"e.g. 0.99999")
    return value


def at_least(low: float) -> Callable[[str], float]:
    """A finite number >= ``low``."""
    def parse(text: str) -> float:
        value = _number(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} is below {low:g}")
        return value

    parse.__name__ = f"number >= {low:g}"
    return shown_as("NUMBER", f"a number >= {low:g}")(parse)


@shown_as("auto|none|N", "auto, none or a whole number >= 2")
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
    return shown_as("N", f"a whole number >= {low}")(parse)


@shown_as("NUMBER", "a finite number")
def finite(text: str) -> float:
    """Any finite number."""
    return _number(text)


@shown_as("DURATION", "a duration: 30s, 10m, 1h, 7d")
def duration(text: str) -> float:
    """A positive duration in the one grammar (``30s``, ``10m``, ``1h``, ``7d``), as seconds."""
    from polarwatch.errors import ConfigError
    from polarwatch.fields import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@shown_as("FREQ", "a duration: 1s, 5min, 1h, 1d; at least 1 microsecond")
def interval(text: str) -> timedelta:
    """A grid's interval in the one duration grammar, as a timedelta (exact to the
    microsecond, its resolution: a shorter one would round to 0)."""
    from polarwatch.errors import ConfigError
    from polarwatch.fields import parse_duration, under_a_microsecond

    if under_a_microsecond(text):  # parse_duration refuses it as 0: say why here
        raise argparse.ArgumentTypeError(f"{text!r} is shorter than 1 microsecond, the finest "
                                         f"interval")
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@shown_as("DURATION", "a duration: 30s, 10m, 1h, 7d; 0 = off")
def duration_or_zero(text: str) -> float:
    """:func:`duration`, or ``0`` (off)."""
    return 0.0 if text.strip() in ("0", "0s") else duration(text)


EARLIEST = datetime.min.replace(tzinfo=UTC)  # 0001-01-01: Python's (and so the CLI's) first time
LATEST = datetime.max.replace(tzinfo=UTC)  # 9999-12-31 23:59:59.999999, its last
DURATION_SHAPE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")  # fields.parse_duration's grammar


def too_far_back(text: str, back: timedelta, reference: str) -> str:
    """The one line for a duration that counts back past :data:`EARLIEST` from `reference`."""
    return (f"{text} reaches back {back.days:,} days from {reference}, before "
            f"0001-01-01, the earliest time; give a shorter duration or a date, or "
            f"leave the option out for no bound")


def back_from(reference: datetime, back: timedelta, text: str) -> datetime:
    """``reference - back``, or the :func:`too_far_back` error (a ConfigError) past year 1."""
    from polarwatch.errors import ConfigError

    try:
        return reference - back
    except OverflowError:
        raise ConfigError(too_far_back(text, back, f"{reference:%Y-%m-%d}")) from None


@shown_as("TIME", "2026-03-01, an ISO time (UTC when naive), or a duration back: 7d, 48h")
def moment(text: str) -> datetime | timedelta:
    """A point in time: a date or ISO time as an aware datetime, or a duration (a timedelta
    the command counts back from its own reference, e.g. the newest stored post). A time that
    UTC cannot hold (0001-01-01T00:00+05:00) and a duration that reaches back before
    0001-01-01 from now are refused here; the command checks its own reference again."""
    from polarwatch.errors import ConfigError
    from polarwatch.fields import parse_duration

    try:
        back = parse_duration(text)
    except ConfigError:
        shape = DURATION_SHAPE.fullmatch(text.strip().lower())
        if shape is not None and _known_unit(shape.group(2)):  # the number is wrong
            if float(shape.group(1)) == 0:
                raise argparse.ArgumentTypeError(f"{text} is 0: a duration back must be above "
                                                 f"0; give e.g. 7d or a date") from None
            if float(shape.group(1)) < 1:  # (a number too large overflows instead)
                raise argparse.ArgumentTypeError(f"{text} is under a microsecond: a duration "
                                                 f"back must be above 0; give e.g. 7d or a "
                                                 f"date") from None
            raise argparse.ArgumentTypeError(f"{text} reaches back before 0001-01-01, the "
                                             f"earliest time; give a shorter duration or a "
                                             f"date, or leave the option out for no bound"
                                             ) from None
    else:
        try:
            datetime.now(UTC) - back
        except OverflowError:
            raise argparse.ArgumentTypeError(too_far_back(text, back, "now")) from None
        return back
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 2026-03-01, an ISO time or a duration "
                                         f"such as 7d, got {text!r}") from None
    try:
        return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside the times UTC can hold (0001-01-01 to "
            f"{LATEST:%Y-%m-%d %H:%M:%S}); give a time within them, or leave the option "
            f"out for no bound") from None


def _known_unit(unit: str) -> bool:
    from polarwatch.errors import ConfigError
    from polarwatch.fields import parse_duration

    try:
        parse_duration(f"1{unit}")
    except ConfigError:
        return False
    return True


def utf8_text(text: str) -> str:
    """A command-line text (a name, an id) as typed: under an ASCII locale (``LC_ALL=POSIX``
    with ``PYTHONUTF8=0``) Python decodes ``argv`` as ASCII, so the UTF-8 bytes of "Zürich"
    arrive as lone surrogates; they are decoded as UTF-8 again. Not for paths, which the
    operating system must get back as the same surrogates."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    try:
        return os.fsencode(text).decode("utf-8")
    except (UnicodeError, ValueError):  # not UTF-8 bytes: left for the caller to refuse
        return text


@shown_as("NUMBER", "a number > 0")
def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


@shown_as("DURATION", "a duration: 30s, 10m, 1h, 7d")
def duration_text(text: str) -> str:
    """:func:`duration` of at most ``MAX_DURATION`` (``report --every``: a longer sleep
    overflowed), checked at parsing but kept as the text the user wrote."""
    from polarwatch.fields import MAX_DURATION

    if duration(text) > MAX_DURATION.total_seconds():
        raise argparse.ArgumentTypeError(f"{text} is longer than {MAX_DURATION.days} days "
                                         f"(10 years), the longest interval; give a shorter one")
    return text


@shown_as("N|max", "a number > 0, or max")
def speed_or_max(text: str) -> float | None:
    """A speed-up factor > 0, or ``max`` (``None``: as fast as possible)."""
    return None if text == "max" else positive(text)


class HelpFormatter(argparse.HelpFormatter):
    """Appends ``[type; default: X; env: VAR]`` to each option's help (see the module doc); a
    help text that already says ``default`` keeps its own wording."""

    def _get_default_metavar_for_optional(self, action: argparse.Action) -> str:
        return str(getattr(action.type, "metavar", None) or action.dest.upper())

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or action.default == argparse.SUPPRESS:
            return text  # positionals, --help
        parts = [kind] if (kind := getattr(action.type, "kind", None)) else []
        config: str | None = getattr(action, "config_key", None)
        if "default" not in text.lower():
            shown = getattr(action, "shown_default", None)
            if shown is None and config:
                section, key = config.split(".", 1)
                shown = f"[{section}] {key}"
            if shown is None and action.default is not None and action.default is not False:
                shown = action.default
            if shown is not None:
                parts.append(f"default: {shown}")
        env = getattr(action, "env", None)
        if env is None and config:
            env = f"POLARWATCH_{config.replace('.', '_').upper()}"
        if env and "env:" not in text:
            parts.append(f"env: {env}")
        if not parts:
            return text
        bracket = "; ".join(str(part) for part in parts).replace("%", "%%")  # help is %-formatted
        return f"{text} [{bracket}]".strip()


class Parser(argparse.ArgumentParser):
    """``add_argument`` also takes, for --help: ``config="section.key"`` (the option falls back
    to that key), ``env="VAR"`` (a variable that is no config key, e.g. ``POLARWATCH_CONFIG``)
    and ``shown_default="text"`` (what an unset option means, e.g. ``once``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, config: str | None = None,
                     env: str | None = None, shown_default: str | None = None,
                     **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        for name, value in (("config_key", config), ("env", env),
                            ("shown_default", shown_default)):
            if value is not None:
                setattr(action, name, value)
        return action
