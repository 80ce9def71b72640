"""Rows of other schemas as posts: the column mapping (``--map``, ``--preset``), timestamps in
the formats exports use, and Reddit's own names for comments and submissions (``--preset reddit``
only: ``--platform reddit`` names the platform and nothing else).

A row that cannot be mapped raises one of :data:`MAPPING_ERRORS` with a reason; the file source
dead-letters that row and goes on.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from ingest.sources.base import LruMap, SourceError, ThreadIndex
from polarwatch.records import parent_or_root
from polarwatch.validation import from_iso

FIELDS = ("id", "text", "created_at", "author_id", "conversation_id", "parent_id", "lang",
          "topic", "platform")
_REDDIT_PREFIX = re.compile(r"^t[1-6]_")  # t1_ comment, t3_ link (submission), ...
_REDDIT_GONE = ("[deleted]", "[removed]")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
# Post fields whose empty value ("" in JSON, an empty CSV cell) means "not given": the
# conversation of the thread, the topic of the router, a root, no language. Any other empty
# field (id, text, author_id, created_at, platform) stays "": the contract dead-letters it as
# "<field> is empty", as the stream does a direct producer's.
UNSET_WHEN_EMPTY = ("conversation_id", "topic", "parent_id", "lang")
# What mapping one hostile row may raise (huge numbers, odd types, deep values): never fatal.
MAPPING_ERRORS = (ValueError, TypeError, OverflowError, RecursionError, KeyError, AttributeError)

# A mapping key that is no post field: how a preset names posts. Only the reddit preset sets it
# ("reddit": Reddit's t1_/t3_ names), never --map or --platform, so a file of another schema
# stored as platform "reddit" keeps its ids, parents and conversations as they are.
NAMES = "names"
PRESETS: dict[str, dict[str, str]] = {
    "reddit": {"id": "id", "text": "body", "created_at": "created_utc", "author_id": "author",
               "parent_id": "parent_id", "conversation_id": "link_id", "platform": "=reddit",
               NAMES: "reddit"},
    # API v2 (a reply names its parent in referenced_tweets) and v1.1 (in_reply_to_status_id*,
    # user.id_str, full_text in extended mode; no conversation_id: the thread gives it)
    "twitter": {"id": "id_str|id", "text": "full_text|text", "created_at": "created_at",
                "author_id": "author_id|user.id_str",
                "parent_id": "referenced_tweets[type=replied_to].id|in_reply_to_status_id_str|"
                             "in_reply_to_status_id",
                "conversation_id": "conversation_id", "lang": "lang", "platform": "=twitter"},
}


def parse_mapping(spec: str | None, preset: str | None = None) -> dict[str, str]:
    """``"text=body,created_at=created_utc"`` (+ a preset underneath) → {post field: column}.
    A value starting with ``=`` is a constant (``platform==reddit`` sets the platform, and only
    the platform); the reddit preset adds ``NAMES: "reddit"``. A column may be a path into nested
    JSON and a list of alternatives (:func:`_lookup`)."""
    mapping = {f: f for f in FIELDS}
    if preset is not None:
        if preset not in PRESETS:
            raise SourceError(f"unknown preset {preset!r}; valid presets are {sorted(PRESETS)}")
        mapping.update(PRESETS[preset])
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        post_field, sep, column = item.partition("=")
        post_field, column = post_field.strip(), column.strip()
        if not sep or not column:
            raise SourceError(f"--map item {item!r} must look like field=column")
        if post_field not in FIELDS:
            raise SourceError(f"--map: {post_field!r} is not a post field; valid fields are "
                              f"{', '.join(FIELDS)}")
        mapping[post_field] = column
    return mapping


# Post fields a file must hold (or the mapping make constant, field==VALUE): each has no default
# (the platform has --platform, the conversation the thread, the topic the router).
FROM_FILE = ("id", "text", "created_at", "author_id")
# Words of column names that may hold each of those fields, for the suggestion of an error
_LOOKS_LIKE = {"id": {"id", "name", "uri"},
               "text": {"text", "body", "content", "message", "msg", "tweet", "comment", "title",
                        "selftext", "post"},
               "created_at": {"created", "time", "date", "datetime", "timestamp", "utc", "ts"},
               "author_id": {"author", "user", "username", "account", "screen", "did"}}
_WORD = re.compile(r"[a-z]+")
SHOWN_COLUMNS = 30  # columns an error lists by name at most


def required_columns(mapping: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """Post field → the columns any of which gives it, for each field of :data:`FROM_FILE` the
    mapping reads from a column (a Reddit submission's text is its title and selftext)."""
    reddit = mapping.get(NAMES) == "reddit"
    extra = {"text": ("title", "selftext"), "id": ("name",)} if reddit else {}
    return {f: (*alternatives(mapping[f]), *extra.get(f, ())) for f in FROM_FILE
            if not mapping[f].startswith("=")}


def alternatives(column: str) -> list[str]:
    """The columns a mapping's `column` reads, first found first: ``id_str|id``."""
    return column.split("|")


def has_column(columns: Iterable[str], column: str) -> bool:
    """Whether a row with `columns` may hold `column` (a dotted path: its first part)."""
    names = set(columns)
    return column in names or _SELECT.sub("", column.split(".")[0]) in names


def missing_columns_error(mapping: dict[str, str], columns: list[str],
                          missing: list[str]) -> str:
    """One line for a file none of whose rows has the columns of the post fields `missing`:
    what each is read from, the columns found, and the --map/--preset that would read them."""
    shown = ", ".join(map(_shown_name, columns[:SHOWN_COLUMNS])) + (
        f" and {len(columns) - SHOWN_COLUMNS:,} more" if len(columns) > SHOWN_COLUMNS else "")
    needs = ", ".join(f if mapping[f] == f else
                      f"{f} (column {_either(alternatives(mapping[f]), repr)})" for f in missing)
    guesses = []
    for f in missing:
        alike = [c for c in columns if _LOOKS_LIKE[f] & set(words := _WORD.findall(c.lower()))
                 and (f == "id" or "id" not in words)]
        if alike:
            guesses.append(f"{f} from {_either([_shown_name(c) for c in alike[:4]])}")
    presets = [name for name in PRESETS if mapping != parse_mapping(None, name)
               and all(any(has_column(columns, c) for c in cols)
                       for cols in required_columns(parse_mapping(None, name)).values())]
    return (f"no row has a column for {needs}, which every post needs; column(s) found "
            f"({len(columns):,}): {shown}; "
            + (f"--preset {presets[0]} reads these columns, or pass " if presets else "pass ")
            + f"--map {','.join(f'{f}=COLUMN' for f in missing)} naming the column"
            + (f" (perhaps {'; '.join(guesses)})" if guesses else "")
            + " or FIELD==VALUE for a constant; nothing was sent")


def duplicated_columns(mapping: dict[str, str], columns: list[str]) -> str | None:
    """Why a CSV header or Parquet schema naming a column the mapping reads more than once
    cannot be read (a row keeps only one of them, silently); None when it names none twice."""
    read = {_SELECT.sub("", alt.split(".")[0]) for col in mapping.values()
            if not col.startswith("=") for alt in alternatives(col)}
    twice = {c: [i for i, name in enumerate(columns, 1) if name == c]
             for c in read if columns.count(c) > 1}
    if not twice:
        return None
    said = "; ".join(f"{_shown_name(c)!r} {len(at)} times (columns "
                     f"{', '.join(map(str, at))})" for c, at in sorted(twice.items()))
    return (f"the header names {said}: a row would keep only the last of them, whichever holds "
            f"the post's value; rename the others, then run the same command again; nothing was "
            f"sent")


def _shown_name(name: str) -> str:
    """A column name as an error line shows it: as it is when short and printable."""
    return name if name.isprintable() and len(name) <= 40 else repr(name[:40]) + "…"


def _either(names: list[str], shown: Callable[[str], str] = str) -> str:
    names = [shown(n) for n in names]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def parse_time(value: Any, assume_utc: bool = False) -> str:
    """An ISO-8601 string with offset from epoch seconds/ms/µs, ISO-8601, Twitter's v1 format,
    RFC 2822 or a datetime. Raises ValueError with a reason naming the value."""
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, int | float) and not isinstance(value, bool) or \
            isinstance(value, str) and _NUMBER.match(value.strip()):
        epoch = float(value)
        epoch /= 1e6 if abs(epoch) > 1e14 else 1e3 if abs(epoch) > 1e11 else 1
        try:
            return datetime.fromtimestamp(epoch, UTC).isoformat()
        except (OverflowError, OSError, ValueError):  # inf, nan, 1e300, year > 9999
            raise ValueError(f"created_at: epoch {value!r} is out of range") from None
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            ts = from_iso(text)
        except ValueError:
            ts = _parse_other(text)
    else:
        raise ValueError(f"created_at: {value!r} is not a timestamp")
    if ts.tzinfo is None:
        if not assume_utc:
            raise ValueError(f"created_at: {str(value)!r} has no timezone (pass --assume-utc to "
                             f"read it as UTC)")
        ts = ts.replace(tzinfo=UTC)
    return ts.isoformat()


def _parse_other(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %z %Y")  # Twitter v1
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        raise ValueError(f"created_at: cannot parse {text!r} as a timestamp") from None


_ABSENT = object()  # what _lookup gives for a column no part of the row holds
_SELECT = re.compile(r"\[([^\[\]=]+)=([^\[\]]*)\]$")  # list[key=value]: its first such item
_INDEX = re.compile(r"[0-9]+")


def _lookup(row: dict[str, Any], column: str) -> Any:
    """The value `column` names in `row`: ``=VALUE`` a constant; a column; a dotted path into
    nested JSON, where a number indexes a list (``referenced_tweets.0.id``) and ``name[k=v]``
    takes the first object of the list ``name`` whose ``k`` is ``v``
    (``referenced_tweets[type=replied_to].id``); ``a|b``: the first of those that is not null.
    None when the row holds it as null (or NaN), :data:`_ABSENT` when it holds none of them."""
    if column.startswith("="):
        return column[1:]
    found = _ABSENT
    for alternative in [column] if column in row else alternatives(column):
        value = row[alternative] if alternative in row else _path(row, alternative)
        if value is None or (isinstance(value, float) and value != value):  # NaN
            found = None
        elif value is not _ABSENT:
            return value
    return found


def _path(value: Any, path: str) -> Any:
    """The value at the dotted `path` in `value` (see :func:`_lookup`), or :data:`_ABSENT`."""
    for part in path.split("."):
        select = _SELECT.search(part)
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, dict) and select:
            items = value.get(part[:select.start()])
            key, wanted = select.groups()
            value = next((item for item in items if isinstance(item, dict)
                          and str(item.get(key)) == wanted), _ABSENT) \
                if isinstance(items, list) else _ABSENT
        elif isinstance(value, list) and _INDEX.fullmatch(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return _ABSENT
    return value


def _as_id(value: Any, name: str = "id") -> str | None:
    """An id as text: a string as it is, a whole number (an int, or a float as CSV readers and
    Parquet give them) in digits. Anything else raises ValueError naming the field."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{name}: expected a string or a whole number, got {_shown(value)}")
    if isinstance(value, int | float):
        return str(int(value))
    return _as_text(value, name, "a string or a whole number")


def _as_text(value: Any, name: str, expected: str = "a string") -> str | None:
    """A string field as it is (None when absent); UTF-8 bytes decoded. Anything else (a number,
    a list, an object, true/false) raises ValueError naming the field: a post's fields are never
    made up from another type's repr."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{name}: bytes that are not UTF-8 (byte {exc.start:,} is "
                             f"0x{value[exc.start]:02x})") from None
    raise ValueError(f"{name}: expected {expected}, got {_shown(value)}")


def _or(value: str | None, default: str) -> str:
    return default if value is None else value


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"


@dataclass
class RowMapper:
    """Turns one row (a dict) into a post-shaped dict, or raises ValueError with a reason.
    Returns None for rows that are not posts (Reddit's removed and deleted texts)."""

    mapping: dict[str, str] = field(default_factory=lambda: parse_mapping(None))
    assume_utc: bool = False
    default_platform: str = "file"
    threads: ThreadIndex = field(default_factory=ThreadIndex)
    # Reddit names given to posts so far (bounded): what a bare parent or link id names
    named: LruMap = field(default_factory=LruMap, repr=False)
    rows: int = 0  # rows mapped, and how many of them hold the column parent_id is read from
    rows_with_parent_column: int = 0

    @property
    def reddit(self) -> bool:
        return self.mapping.get(NAMES) == "reddit"

    def __call__(self, row: dict[str, Any]) -> dict[str, Any] | None:
        get = {f: _lookup(row, self.mapping[f]) for f in FIELDS}
        self.rows += 1
        self.rows_with_parent_column += get["parent_id"] is not _ABSENT
        get = {f: None if v is _ABSENT else v for f, v in get.items()}
        for name in UNSET_WHEN_EMPTY:  # an empty cell: the default, the thread, the router
            if get[name] == "":
                get[name] = None
        post_id, parent, conv = (_as_id(get["id"]), _as_id(get["parent_id"], "parent_id"),
                                 _as_id(get["conversation_id"], "conversation_id"))
        text = _as_text(get["text"], "text")
        if self.reddit:
            submission = not text and ("title" in row or "selftext" in row)
            if submission:
                text = "\n\n".join(str(_as_text(row[k], k)) for k in ("title", "selftext")
                                   if row.get(k))
            if text in _REDDIT_GONE:
                return None
            post_id, parent, conv = self._reddit_names(row, post_id, parent, conv, submission)
        parent = parent_or_root(post_id, parent)
        if post_id is not None:  # the thread's, or the one the row names (kept for its replies)
            conv = self.threads.conversation(post_id, parent, conv)
        post: dict[str, Any] = {
            "id": post_id,
            "platform": _or(_as_text(get["platform"], "platform"), self.default_platform),
            "author_id": _as_id(get["author_id"], "author_id"),
            "text": text, "conversation_id": conv, "parent_id": parent,
            "lang": _as_text(get["lang"], "lang"),
        }
        if get["topic"] is not None:
            post["topic"] = _as_text(get["topic"], "topic")
        if get["created_at"] is not None:  # "" stays "": a dead letter saying it is empty
            post["created_at"] = ("" if get["created_at"] == "" else
                                  parse_time(get["created_at"], self.assume_utc))
        return {k: v for k, v in post.items() if v is not None or k in ("parent_id", "lang")}

    def unread_parents(self) -> str | None:
        """A warning when parent_id is read from a column named for it (by --map or a preset)
        that none of the rows mapped so far holds: their posts were all stored as roots."""
        column = self.mapping["parent_id"]
        if self.rows_with_parent_column or not self.rows or column == "parent_id" \
                or column.startswith("="):
            return None
        return (f"none of its {self.rows:,} rows has the column parent_id is read from "
                f"({_either(alternatives(column), repr)}), so all their posts were stored as "
                f"roots, no reply paired with its parent; if the file names parents in another "
                f"column, pass --map parent_id=COLUMN (a dotted path reads nested JSON and a "
                f"number indexes a list: referenced_tweets.0.id) and run again with --restart")

    def _reddit_names(self, row: dict[str, Any], post_id: str | None, parent: str | None,
                      conv: str | None, submission: bool
                      ) -> tuple[str | None, str | None, str | None]:
        """(id, parent id, conversation id) in Reddit's own names: ``t1_<id>`` for a comment,
        ``t3_<id>`` for a submission (its ``name`` when the row has one), so a comment and a
        submission that share the bare id stay two posts. Exports give ``parent_id`` and
        ``link_id`` with the prefix or without: a bare one gets the prefix of the post it names
        (a link, and a parent equal to the link, is a submission; another parent a comment),
        or of the one post of that bare id named so far. A submission is its own conversation."""
        kind = "t3_" if submission else "t1_"
        name = _as_id(row.get("name")) if isinstance(row.get("name"), str | int) else None
        if name and _REDDIT_PREFIX.match(name):
            post_id = name
        elif post_id and not _REDDIT_PREFIX.match(post_id):
            post_id = kind + post_id
        if submission:
            conv = post_id
        elif conv and not _REDDIT_PREFIX.match(conv):
            conv = self._name_of(conv, "t3_")
        if parent and not _REDDIT_PREFIX.match(parent):
            parent = "t3_" + parent if "t3_" + parent == conv else self._name_of(parent, "t1_")
        if post_id:
            self.named.put(post_id, "")
        return post_id, parent, conv

    def _name_of(self, bare: str, usual: str) -> str:
        """`bare` with the `usual` prefix, or with the other one (t1_/t3_) when only a post of
        that name was seen."""
        other = "t1_" if usual == "t3_" else "t3_"
        return other + bare if other + bare in self.named and usual + bare not in self.named \
            else usual + bare
