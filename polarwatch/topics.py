"""``topics.toml``: one ``[[topic]]`` table per topic (id, name, what *pro* and *anti* mean,
routing keywords and stance cue phrases). Errors name the file, the topic and the key."""

from __future__ import annotations

import codecs
import dataclasses
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polarwatch.errors import ConfigError
from polarwatch.safe_write import broken_link, file_kind


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    pro: str
    anti: str
    keywords: tuple[str, ...] = ()
    pro_terms: tuple[str, ...] = ()
    anti_terms: tuple[str, ...] = ()


_ID_RE = re.compile(r"^[a-z0-9_]+$")


def toml_text(path: Path) -> str:
    """A TOML file's text: UTF-8 (TOML's encoding), a leading byte-order mark dropped (editors
    on Windows write one). Bytes that are not UTF-8 are a ConfigError naming the first one,
    its offset and its line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ConfigError(f"{path}: the file is UTF-16 (it starts with that byte-order "
                              f"mark); save it as UTF-8") from None
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise ConfigError(f"{path}: byte 0x{data[exc.start]:02x} at offset {exc.start} (line "
                          f"{line}, column {column}) is not UTF-8; save the file as UTF-8"
                          ) from None


def read_toml(path: Path, missing: str, name_it: str) -> dict[str, Any]:
    """A TOML file's tables (:func:`toml_text`); ConfigError ``missing`` when it does not
    exist, one saying what it is and ``name_it`` when it is no regular file (a FIFO would block
    the read for good, ``/dev/zero`` fill the memory), or naming the file and the parser's
    complaint when it is not valid TOML."""
    if not path.exists():
        link = broken_link(path)
        raise ConfigError(f"{path} is {link}; {name_it}" if link else missing)
    kind = file_kind(path.stat().st_mode)
    if kind is not None:
        raise ConfigError(f"{path} is {kind}, not a regular file; {name_it}")
    return parse_toml(path, toml_text(path))


# tomllib reads nested arrays and inline tables by recursion: some 400 levels exhaust Python's
# stack, which no real file comes near
TOO_DEEP = ("arrays or inline tables nested too deeply to read (hundreds of levels: a real "
            "file needs a few); remove the nesting")


def parse_toml(path: Path, text: str) -> dict[str, Any]:
    """`text` (of `path`) parsed; ConfigError naming the file and the parser's complaint, or
    :data:`TOO_DEEP`, when it is not TOML that can be read."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: {TOO_DEEP}") from None


def _words(text: str) -> str:
    """`text` compared the way a reader would: case and spacing ignored."""
    return " ".join(text.casefold().split())


def _check_sides(path: Path, entry: dict[str, Any]) -> None:
    """A topic's stance is read against its pro and anti descriptions: each must say something,
    and the two must differ (two identical sides made every stance "anti" at 0.5)."""
    tid = entry["id"]
    blank = [k for k in ("pro", "anti") if not _words(entry[k])]
    if blank:
        raise ConfigError(f"{path}: topic {tid!r}: {' and '.join(blank)} "
                          f"{'is' if len(blank) == 1 else 'are'} blank; write what taking "
                          f"that side means, e.g. pro = \"Supports stricter gun laws.\"")
    if _words(entry["pro"]) == _words(entry["anti"]):
        raise ConfigError(f"{path}: topic {tid!r}: pro and anti say the same "
                          f"({entry['pro'].strip()!r}); a post's stance is read against the "
                          f"two, so write the opposing side as anti, e.g. "
                          f"anti = \"Opposes stricter gun laws.\"")


def load_topics(path: str | Path) -> list[Topic]:
    """Read a topics file (``[[topic]]`` tables); every topic needs id, name, pro and anti, the
    two sides described and different (case and spacing aside)."""
    path = Path(path)
    raw = read_toml(path, f"topics file {path} does not exist; copy topics.toml from the "
                          f"repository or set [extractor] topics_file",
                    "set [extractor] topics_file (POLARWATCH_EXTRACTOR_TOPICS_FILE) to the "
                    "topics file")
    entries = raw.get("topic")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[topic]] tables found")
    topics, seen = [], set()
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: topic #{i} must be a [[topic]] table, got {entry!r}")
        missing = [k for k in ("id", "name", "pro", "anti") if not entry.get(k)]
        if missing:
            raise ConfigError(f"{path}: topic #{i} is missing {', '.join(missing)}")
        not_str = [k for k in ("id", "name", "pro", "anti") if not isinstance(entry[k], str)]
        if not_str:
            raise ConfigError(f"{path}: topic #{i}: {', '.join(not_str)} must be a string")
        if not _ID_RE.fullmatch(entry["id"]):  # match() would accept a trailing "\n"
            raise ConfigError(f"{path}: topic id {entry['id']!r} must be lowercase letters, "
                              f"digits and underscores")
        if entry["id"] in seen:
            raise ConfigError(f"{path}: topic id {entry['id']!r} is defined twice")
        seen.add(entry["id"])
        unknown = set(entry) - {f.name for f in dataclasses.fields(Topic)}
        if unknown:
            raise ConfigError(f"{path}: topic {entry['id']!r} has unknown key(s) {sorted(unknown)}")
        _check_sides(path, entry)
        for key in ("keywords", "pro_terms", "anti_terms"):
            terms = entry.get(key, [])
            # a bare string would be iterated letter by letter by the extractors
            if not isinstance(terms, list) or not all(isinstance(t, str) for t in terms):
                raise ConfigError(f"{path}: topic {entry['id']!r}: {key} must be a list of "
                                  f"strings, got {terms!r}")
            blank = [i for i, t in enumerate(terms, 1) if not t.strip()]
            if blank:  # matched nothing, or was dropped unseen: one would think it routes
                raise ConfigError(f"{path}: topic {entry['id']!r}: {key} holds {len(blank)} "
                                  f"empty string(s) (item {', '.join(map(str, blank))} of "
                                  f"{len(terms)}); remove them or write the word meant")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in entry.items()}
        topics.append(Topic(**values))
    return topics
