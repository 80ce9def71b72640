"""The event calendar: ``events.toml`` load / validate / save (pure: no Streamlit, no DuckDB).

Used by the forecaster (event classification), the reports, ``polarwatch events`` and the
dashboard (its Events page, ``dashboard/pages/event_calendar.py``, imports this module).

Format (one ``[[event]]`` table per event)::

    [[event]]
    name = "Senate vote on the gun bill"   # required, unique per topic
    topic = "gun_control"                  # required, a topic id from topics.toml
    start = 2026-03-04T18:00:00Z           # required, TOML date-time with an offset (or a date)
    end = 2026-03-04T22:00:00Z             # optional; omitted = a point in time
    kind = "scheduled"                     # "scheduled" (known in advance) | "sudden"

The file is ``$POLARWATCH_EVENTS_FILE`` when set, else ``events.toml`` next to the config file.
Dates must lie in 2000-01-01 .. 2199-12-31 (:data:`EARLIEST_EVENT`, :data:`LATEST_EVENT`).
A missing file is an empty calendar. :func:`save_events` rewrites the file atomically with the
format comment on top (hand-written comments are not preserved).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from polarwatch.errors import ConfigError, PolarwatchError
from polarwatch.records import MIN_CREATED_AT
from polarwatch.topics import toml_text

__all__ = ["EARLIEST_EVENT", "EVENTS_ENV", "EVENTS_FILE", "HEADER", "KINDS", "LATEST_EVENT",
           "MAX_EVENT_NAME_CHARS", "POINT_EVENT_DURATION", "Event",
           "EventError", "dumps", "events_path", "load_events", "make_event", "remove",
           "save_events", "upsert", "validate"]

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


def _in_range(when: datetime, where: str, raw: Any) -> datetime:
    if not EARLIEST_EVENT <= when < LATEST_EVENT:
        raise EventError(f"{where}: {raw!s} is outside the dates the calendar accepts, "
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
            when = EARLIEST_EVENT - timedelta(days=1)
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


def make_event(raw: dict[str, Any], where: str = "event",
               topics: Iterable[str] | None = None) -> Event:
    """Validate one raw event mapping (as read from TOML or a form)."""
    unknown = sorted(set(raw) - {"name", "topic", "start", "end", "kind"})
    if unknown:
        raise EventError(f"{where}: unknown key(s) {', '.join(unknown)} "
                         f"(allowed: name, topic, start, end, kind)")
    name = str(raw.get("name") or "").strip()
    if not name:
        raise EventError(f"{where}: 'name' is required")
    where = f"{where} {name if len(name) <= 60 else name[:60] + '…'!r}"
    topic = str(raw.get("topic") or "").strip()
    if not topic:
        raise EventError(f"{where}: 'topic' is required")
    for key, value in (("name", name), ("topic", topic)):
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            raise EventError(f"{where}: {key} contains a lone UTF-16 surrogate (not valid "
                             f"Unicode); retype it")
    if len(name) > MAX_EVENT_NAME_CHARS:
        raise EventError(f"{where}: the name has {len(name):,} characters, more than the "
                         f"{MAX_EVENT_NAME_CHARS} a calendar line, chart label or alert shows; "
                         f"shorten it")
    known = list(topics) if topics is not None else None
    if known is not None and topic not in known:
        raise EventError(f"{where}: unknown topic {topic!r} (known: {', '.join(known)})")
    kind = str(raw.get("kind") or "").strip()
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
        return []
    try:
        raw = tomllib.loads(toml_text(path))  # UTF-8, a byte-order mark dropped
    except ConfigError as exc:  # bytes that are not UTF-8: the file, the byte, where
        raise EventError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise EventError(f"{path}: invalid TOML: {exc}") from exc
    items = raw.get("event", [])
    if not isinstance(items, list):
        raise EventError(f"{path}: 'event' must be an array of tables ([[event]])")
    known = list(topics) if topics is not None else None
    events = [make_event(item, f"{path} event #{i + 1}", known) for i, item in enumerate(items)]
    validate(events)
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
    """Validate and write atomically (temp file + rename)."""
    validate(events)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(dumps(events), encoding="utf-8")
    tmp.replace(path)


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
