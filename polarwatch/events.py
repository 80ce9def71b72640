"""The event calendar: ``events.toml`` load / validate / save (pure: no Streamlit, no DuckDB).

Used by the forecaster (event classification), the reports, ``polarwatch events`` and the
dashboard (its Events page, ``dashboard/views/event_calendar.py``, imports this module).

Format (one ``[[event]]`` table per event)::

    [[event]]
    name = "Senate vote on the gun bill"   # required, unique per topic
    topic = "gun_control"                  # required, a topic id from topics.toml
    start = 2026-03-04T18:00:00Z           # required, TOML date-time with an offset (or a date)
    end = 2026-03-04T22:00:00Z             # optional; omitted = a point in time
    kind = "scheduled"                     # "scheduled" (known in advance) | "sudden"

The file is ``$POLARWATCH_EVENTS_FILE`` when set, else ``events.toml`` next to the config file.
Dates must lie in 2000-01-01 .. 2199-12-31 (:data:`EARLIEST_EVENT`, :data:`LATEST_EVENT`).
A missing file is an empty calendar. The file holds ``[[event]]`` tables only: another
top-level key or table (an ``[[events]]`` typo) is refused, as unknown keys of polarwatch.toml
are; ``name``, ``topic`` and ``kind`` must be strings (``name = 123`` is refused, not read as
"123"), and a name or topic may not hold control characters (a newline would break the
one-line listings). Names and topics are read in Unicode NFC (:func:`nfc`: "café" typed with
a composed or a decomposed accent is one event). A *new* name or topic (:func:`make_event`
without ``stored``: ``events add``, the dashboard's form) may not hold the bidi controls and
zero-width characters of :data:`INVISIBLE` (a U+202E after "evil" shows "evilgnp.exe" as
"evilexe.png"); one already in the file is read, and :func:`escape_invisible` escapes them
for a listing. Given the configured topic ids, :func:`load_events` refuses an event on
another topic (it would apply to nothing). :func:`save_events` rewrites the file atomically
with the format comment on top (hand-written comments are not preserved), through a symlink
to the file it points to (:mod:`polarwatch.safe_write`).
"""

from __future__ import annotations

import os
import shlex
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from polarwatch.errors import ConfigError, PolarwatchError
from polarwatch.records import MIN_CREATED_AT
from polarwatch.safe_write import LINK_LOOP, broken_link, file_kind, write_text
from polarwatch.topics import parse_toml, toml_text

__all__ = ["EARLIEST_EVENT", "EVENTS_ENV", "EVENTS_FILE", "HEADER", "KINDS", "LATEST_EVENT",
           "INVISIBLE", "MAX_EVENT_NAME_CHARS", "POINT_EVENT_DURATION", "Event",
           "EventError", "dumps", "events_path", "load_events", "make_event", "nfc", "remove", "update_events",
           "escape_invisible", "save_events", "upsert", "validate"]

EVENTS_ENV = "POLARWATCH_EVENTS_FILE"
EVENTS_FILE = "events.toml"
KINDS = ("scheduled", "sudden")
# An event without an end is drawn and analysed as lasting this long ("during" phase).
POINT_EVENT_DURATION = timedelta(hours=1)
# Dates the calendar accepts: no post older than records.MIN_CREATED_AT is ingested, so an
# earlier event has nothing to compare against; scheduled events may lie far ahead, but the
# event-study windows and charts need room inside what pandas can hold (up to 2262).
EARLIEST_EVENT = MIN_CREATED_AT
LATEST_EVENT = datetime(2200, 1, 1, tzinfo=UTC)
MAX_EVENT_NAME_CHARS = 200  # one line of a chart label, a report table or an alert
# Characters that print as nothing yet change what a line shows: Unicode's Bidi_Control set
# (they reorder text) and the zero-width ones (two names that look alike). Refused in a new
# name or topic; escaped as \uXXXX by escape_invisible() in a listing of one already stored.
# Not ZWNJ / ZWJ (U+200C, U+200D): Persian spelling and emoji sequences (🏳️‍🌈) need them.
INVISIBLE = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068"
                      "\u2069\u200b\u2060\ufeff")

HEADER = """\
# polarwatch event calendar: scheduled events (votes, summits, debates) and sudden ones
# (shootings, disasters). The dashboard draws them as spans on each topic's series and compares
# polarization before / during / after each one. Edit here or on the dashboard's Events page.
#
# [[event]]
# name = "Senate vote on the gun bill"   # required, unique per topic
# topic = "gun_control"                  # required, a topic id from topics.toml
# start = 2026-03-04T18:00:00Z           # required, date-time with offset (UTC advised)
# end = 2026-03-04T22:00:00Z             # optional; omitted = a point in time
# kind = "scheduled"                     # "scheduled" | "sudden"
"""


class EventError(PolarwatchError):
    """An event or an events file that does not validate; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Event:
    name: str
    topic: str
    start: datetime  # timezone-aware
    kind: str
    end: datetime | None = None

    @property
    def effective_end(self) -> datetime:
        return self.end if self.end is not None else self.start + POINT_EVENT_DURATION


def events_path(root: Path | None = None) -> Path:
    """``$POLARWATCH_EVENTS_FILE``, else ``events.toml`` in ``root`` (the config's directory)."""
    env = os.environ.get(EVENTS_ENV)
    if env:
        return Path(env)
    return (root or Path.cwd()) / EVENTS_FILE


def _in_range(when: datetime, where: str, raw: Any, show_utc: bool = True) -> datetime:
    if not EARLIEST_EVENT <= when < LATEST_EVENT:
        # an offset other than UTC: say which instant it is (03:00+05:00 is 22:00 the day before)
        offset = show_utc and len(str(raw)) > 10 and not str(raw).endswith(("Z", "+00:00"))
        shown = f"{raw!s} (= {when:%Y-%m-%dT%H:%M:%S}Z)" if offset else f"{raw!s}"
        raise EventError(f"{where}: {shown} is outside the dates the calendar accepts, "
                         f"{EARLIEST_EVENT:%Y-%m-%d} to {LATEST_EVENT - timedelta(days=1):%Y-%m-%d}"
                         f" (no post before {EARLIEST_EVENT:%Y} is ingested, and later dates "
                         f"cannot be charted); fix the date")
    return when


def _as_datetime(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EventError(f"{where}: {value.isoformat()} has no UTC offset; write it as "
                             f"{value.isoformat()}Z")
        try:
            when = value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00
            return _in_range(EARLIEST_EVENT - timedelta(days=1), where, value.isoformat(),
                             show_utc=False)
        return _in_range(when, where, value.isoformat())
    if isinstance(value, date):
        return _in_range(datetime.combine(value, time(0), tzinfo=UTC), where, value.isoformat())
    if isinstance(value, str):
        try:
            if len(value.strip()) == len("2026-03-04"):  # a bare date = midnight UTC
                return _as_datetime(date.fromisoformat(value.strip()), where)
            return _as_datetime(datetime.fromisoformat(value.replace("Z", "+00:00")), where)
        except ValueError:
            pass
    raise EventError(f"{where}: expected a date-time like 2026-03-04T18:00:00Z, got {value!r}")


TOML_TYPES = {bool: "a boolean", int: "an integer", float: "a number", list: "an array",
              dict: "a table", datetime: "a date-time", date: "a date", time: "a time"}


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    """``raw[key]`` as stripped text ("" when absent); any other type than a string is refused
    (a TOML ``name = 123`` or ``topic = true`` is a mistake, not a name)."""
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        kind = next((n for t, n in TOML_TYPES.items() if isinstance(value, t)),
                    type(value).__name__)
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "…"
        raise EventError(f"{where}: '{key}' must be a string, got {kind} ({shown}); quote it")
    return value.strip()


def nfc(text: str) -> str:
    """``text`` in Unicode NFC: "café" with a composed é or with e + U+0301 is one name."""
    return unicodedata.normalize("NFC", text)


def escape_invisible(text: str) -> str:
    """``text`` for a one-line listing: each :data:`INVISIBLE` character as ``\\uXXXX``."""
    return "".join(f"\\u{ord(ch):04x}" if ch in INVISIBLE else ch for ch in text)


def _check_characters(key: str, value: str, where: str, new: bool) -> None:
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise EventError(f"{where}: {key} contains a lone UTF-16 surrogate (not valid "
                         f"Unicode); retype it")
    bad = [ch for ch in value if unicodedata.category(ch) in ("Cc", "Zl", "Zp")]
    if bad:
        raise EventError(f"{where}: {key} contains {len(bad)} control character(s) (first "
                         f"{bad[0]!r}; a name is one line of the calendar, a chart label and an "
                         f"alert); remove them")
    hidden = [i for i, ch in enumerate(value) if ch in INVISIBLE]
    if new and hidden:
        ch = value[hidden[0]]
        raise EventError(f"{where}: {key} contains {len(hidden)} invisible bidi or zero-width "
                         f"character(s) (first U+{ord(ch):04X} {unicodedata.name(ch)} at "
                         f"character {hidden[0] + 1} of {len(value)}; it reorders or hides what "
                         f"the calendar, a chart label and an alert show); remove them")


def make_event(raw: dict[str, Any], where: str = "event",
               topics: Iterable[str] | None = None, *, stored: bool = False,
               file: Path | None = None) -> Event:
    """Validate one raw event mapping (as read from TOML or a form); name and topic in NFC.
    A new event (not ``stored`` in the calendar yet) may not hold :data:`INVISIBLE`; `file`:
    the calendar it is stored in (what the remove command names)."""
    if not isinstance(raw, dict):
        raise EventError(f"{where} must be a table ([[event]] with name, topic, start, kind), "
                         f"got {raw!r:.60}")
    unknown = sorted(set(raw) - {"name", "topic", "start", "end", "kind"})
    if unknown:
        raise EventError(f"{where}: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: name, topic, start, end, kind)")
    name = nfc(_text(raw, "name", where))
    if not name:
        raise EventError(f"{where}: 'name' is required")
    where = f"{where} {name if len(name) <= 60 else name[:60] + '…'!r}"
    topic = nfc(_text(raw, "topic", where))
    if not topic:
        raise EventError(f"{where}: 'topic' is required")
    for key, value in (("name", name), ("topic", topic)):
        _check_characters(key, value, where, new=not stored)
    if len(name) > MAX_EVENT_NAME_CHARS:
        raise EventError(f"{where}: the name has {len(name):,} characters, more than the "
                         f"{MAX_EVENT_NAME_CHARS} a calendar line, chart label or alert shows; "
                         f"shorten it")
    known = list(topics) if topics is not None else None
    if known is not None and topic not in known:
        fix = (f"remove it with `{remove_command(name, topic, file)}` or put the topic back in "
               f"topics.toml" if stored else "fix its topic")
        raise EventError(f"{where}: unknown topic {topic!r} (known: {', '.join(known)}); "
                         f"an event on another topic applies to nothing, {fix}")
    kind = _text(raw, "kind", where)
    if kind not in KINDS:
        raise EventError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    if raw.get("start") in (None, ""):
        raise EventError(f"{where}: 'start' is required")
    start = _as_datetime(raw["start"], f"{where} start")
    end = None if raw.get("end") in (None, "") else _as_datetime(raw["end"], f"{where} end")
    if end is not None and end < start:
        raise EventError(f"{where}: end {end:%Y-%m-%d %H:%M} is before start "
                         f"{start:%Y-%m-%d %H:%M}")
    return Event(name=name, topic=topic, start=start, kind=kind, end=end)


def validate(events: Sequence[Event]) -> None:
    seen: set[tuple[str, str]] = set()
    for ev in events:
        if (ev.topic, ev.name) in seen:
            raise EventError(f"two events named {ev.name!r} on topic {ev.topic!r}")
        seen.add((ev.topic, ev.name))


def load_events(path: Path, topics: Iterable[str] | None = None) -> list[Event]:
    """Events sorted by start; [] when the file does not exist. Raises EventError on bad input."""
    if not path.exists():
        if broken_link(path) == LINK_LOOP:  # (a link to a file not made yet: `add` makes it)
            raise EventError(f"{path} is {LINK_LOOP}; name the calendar file")
        return []
    kind = file_kind(path.stat().st_mode)
    if kind is not None:
        raise EventError(f"{path} is {kind}, not a regular file; name the calendar file")
    try:  # UTF-8, a byte-order mark dropped; nesting too deep for the parser refused
        raw = parse_toml(path, toml_text(path))
    except ConfigError as exc:  # not UTF-8 (the file, the byte, where) or not TOML
        raise EventError(str(exc)) from exc.__cause__
    other = sorted(set(raw) - {"event"})
    if other:
        typo = next((k for k in other if isinstance(raw[k], (list, dict))), None)
        raise EventError(f"{path}: unknown top-level key(s) or table(s) {', '.join(other)}; the "
                         f"calendar holds [[event]] tables only"
                         + (f" (is [[{typo}]] a typo of [[event]]?)" if typo else ""))
    items = raw.get("event", [])
    if not isinstance(items, list):
        raise EventError(f"{path}: 'event' must be an array of tables ([[event]])")
    known = list(topics) if topics is not None else None
    events = [make_event(item, f"{path} event #{i + 1}", known, stored=True, file=path)
              for i, item in enumerate(items)]
    spelled: dict[tuple[str, str], tuple[str, str]] = {}  # (topic, name) as the file has them
    for item, ev in zip(items, events, strict=True):
        raw_key = (item["topic"].strip(), item["name"].strip())
        if spelled.setdefault((ev.topic, ev.name), raw_key) != raw_key:
            raise EventError(f"{path}: two events named {ev.name!r} on topic {ev.topic!r}, "
                             f"spelled in two Unicode forms (a composed and a decomposed "
                             f"accent) that look the same; delete or rename one in the file")
    try:
        validate(events)
    except EventError as exc:  # a hand edit: say where, and what to do
        raise EventError(f"{path}: {exc}; delete or rename one in the file") from None
    return sorted(events, key=lambda e: (e.start, e.topic, e.name))


def _toml_datetime(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(microsecond=0)


def dumps(events: Sequence[Event]) -> str:
    """TOML text for ``events``, written by a TOML library (tomli-w): any name, including one
    with control characters or quotes, is escaped so ``tomllib`` reads the file back."""
    import tomli_w

    tables = []
    for ev in sorted(events, key=lambda e: (e.start, e.topic, e.name)):
        table: dict[str, Any] = {"name": ev.name, "topic": ev.topic,
                                 "start": _toml_datetime(ev.start)}
        if ev.end is not None:
            table["end"] = _toml_datetime(ev.end)
        table["kind"] = ev.kind
        tables.append(table)
    body = tomli_w.dumps({"event": tables}) if tables else ""
    return f"{HEADER}\n{body}"


def save_events(path: Path, events: Sequence[Event]) -> None:
    """Validate and write atomically (temp file + rename) to ``path``, or to the file it links
    to; a path that is not a regular file (a directory, a device) is refused."""
    validate(events)
    write_text(path, dumps(events), option="events file")


def update_events(path: Path, change: Callable[[list[Event]], list[Event]],
                  topics: Iterable[str] | None = None) -> list[Event]:
    """Apply `change` to the calendar as it is now and save the result, holding an exclusive
    lock on the calendar's directory (of the file a symlink names) from the read to the
    replace: two edits at once (two ``events add``, the dashboard's form and the CLI) each keep
    the other's event. The directory, not a lock file: nothing is left beside the calendar.
    Returns what was saved."""
    import fcntl

    folder = Path(os.path.realpath(path)).parent
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise EventError(f"{path}: the calendar's directory {folder} cannot be opened for "
                         f"editing ({exc.strerror or exc})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        events = change(load_events(path, topics))
        save_events(path, events)
        return events
    finally:
        os.close(fd)  # and the lock with it


def upsert(events: Sequence[Event], event: Event, replacing: tuple[str, str] | None = None
           ) -> list[Event]:
    """A new list with ``event`` added, or replacing the event keyed ``(topic, name)``."""
    key = replacing or (event.topic, event.name)
    kept = [e for e in events if (e.topic, e.name) != key]
    out = [*kept, event]
    validate(out)
    return out


def remove(events: Sequence[Event], key: tuple[str, str]) -> list[Event]:
    return [e for e in events if (e.topic, e.name) != key]


def off_topic(events: list[Event], topics: list[str] | None) -> list[Event]:
    """The events whose topic is not one of ``topics`` (none when topics is None)."""
    return [] if topics is None else [e for e in events if e.topic not in topics]


def remove_event(path: Path, topic: str, name: str) -> None:
    """Remove the event ``name`` of ``topic`` (both stripped and in NFC, as :func:`add_event`
    stores them, ``forecast.event_calendar``); an error when there is none. The topics are not checked: this is how an
    event on a topic removed from ``topics.toml`` is removed."""
    topic, name = nfc(topic.strip()), nfc(name.strip())

    def drop(events: list[Event]) -> list[Event]:
        kept = remove(events, (topic, name))
        if len(kept) == len(events):
            raise PolarwatchError(f"no event {name!r} on topic {topic!r} in {path} "
                                  f"(`polarwatch events list` shows them)")
        return kept

    update_events(path, drop)


def remove_command(name: str, topic: str, file: Path | None = None) -> str:
    """The ``polarwatch events remove`` command line that removes event `name` of `topic` (of
    the calendar `file`, when given): quoted for a shell; the name after ``--`` and the values
    of ``--file=`` and ``--topic=`` joined to their options, so that none starting with '-' is
    read as an option."""
    where = f" --file={shlex.quote(str(file))}" if file is not None else ""
    return (f"polarwatch events{where} remove --topic={shlex.quote(topic)} -- "
            f"{shlex.quote(name)}")
