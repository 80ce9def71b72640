"""Edits of the event calendar behind ``polarwatch events``: list, add, remove.

The file format and validation are :mod:`polarwatch.events`'; this module only decides which
file, checks a new event's topic against ``topics.toml`` (an event on an unknown topic would
apply to nothing: the forecast and the report refuse such a calendar) and refuses an edit that
would silently overwrite or miss an event (the message says what to do instead). ``events
list`` and ``events remove`` read the calendar without that check, so an event whose topic was
removed from ``topics.toml`` is listed (marked, with a warning) and can be removed. A name or topic
given here is read in Unicode NFC, as the file's are, so "café" typed with a composed or a
decomposed accent finds the same event; ``events list`` escapes the bidi and zero-width
characters of a stored name (:func:`polarwatch.events.escape_invisible`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polarwatch.config import Config
from polarwatch.errors import PolarwatchError
from polarwatch.events import (
    Event,
    escape_invisible,
    events_path,
    load_events,
    make_event,
    nfc,
    remove_command,
    update_events,
    upsert,
)


def calendar_path(cfg: Config, file: str | None = None) -> Path:
    """``file``, else ``$POLARWATCH_EVENTS_FILE``, else ``events.toml`` next to the config."""
    return Path(file) if file else events_path(cfg.root)


def topic_ids(cfg: Config) -> list[str] | None:
    """The configured topic ids (None without a topics file: events are then not checked). A
    topics file that cannot be read is its ConfigError (naming the file and the fix), not a
    reason to stop checking events."""
    if not cfg.path(cfg.extractor.topics_file).exists():
        return None
    return [t.id for t in cfg.load_topics()]


def list_events(path: Path, topic: str | None = None,
                topics: list[str] | None = None) -> list[Event]:
    """The calendar's events (of ``topic`` only, when given), sorted by start; ``topics``: the
    known topic ids (an event on another one is refused; ``events list`` passes None and marks
    them with :func:`polarwatch.events.off_topic`)."""
    wanted = None if topic is None else nfc(topic.strip())
    return [e for e in load_events(path, topics) if wanted in (None, e.topic)]


def off_topic_warning(path: Path, stale: list[Event]) -> str:
    """One line for ``events list`` about events on topics not in ``topics.toml``."""
    first = stale[0]
    return (f"{len(stale)} event(s) in {path} on a topic not in topics.toml "
            f"({', '.join(sorted({escape_invisible(e.topic) for e in stale}))}): the forecast "
            f"and the report refuse the calendar until they are removed, e.g. "
            f"`{remove_command(first.name, first.topic, path)}`")


def describe(e: Event, unknown_topic: bool = False) -> str:
    """One line of ``events list``: start (→ end) in UTC, kind, topic, name (bidi and
    zero-width characters as ``\\uXXXX``: they would reorder or hide what the line shows);
    ``unknown_topic`` adds ``[unknown topic]`` after the name."""
    end = f" → {e.end:%Y-%m-%d %H:%M}" if e.end else ""
    mark = "  [unknown topic]" if unknown_topic else ""
    return (f"{e.start:%Y-%m-%d %H:%M}{end} UTC  {e.kind:9}  {escape_invisible(e.topic):16}  "
            f"{escape_invisible(e.name)}{mark}")


def add_event(path: Path, fields: dict[str, Any], topics: list[str] | None, *,
              replace: bool = False) -> Event:
    """Validate ``fields`` (name, topic, start, end, kind) into an event and save it; an event
    of that name on that topic is an error unless ``replace``."""
    event = make_event(fields, "new event", topics)
    key = (event.topic, event.name)

    def add(events: list[Event]) -> list[Event]:
        if not replace and any((e.topic, e.name) == key for e in events):
            raise PolarwatchError(f"{path} already has {event.name!r} on {event.topic!r}; "
                                  f"use --replace to overwrite it")
        return upsert(events, event, key if replace else None)

    update_events(path, add, topics)
    return event
