"""Which life of a topic the stream is reading: the dead-letter topic's drain, and the posts
topic against the stream's checkpoint.

A memory broker loses its topics when it restarts, and the topics it makes again count their
offsets from 0. ``dead_letters`` is keyed by (topic, generation, partition, offset), and the
drain (stream/dead_letters.py) resumes after the highest offset stored for the topic's newest
generation. Without a new generation, a new life's records at offsets already stored were
skipped: the drain resumed past them, and their keys were taken.

Before it resumes, the drain compares the last row it stored per partition with what the broker
now holds at that offset. The topic has begun again (the next generation, from offset 0) when the
partition now ends at or before that offset, or when the record there is another one (its broker
time, bytes or ingest key differ). A record that cannot be fetched in time or unpacked says
nothing: the drain resumes as stored.

The posts topic has no generations: its checkpoint holds offsets, and posts are keyed by
(platform, id). A posts topic begun again with *more* records than the checkpoint had read was
resumed past its first ones, which were lost without a word (one that came back shorter is
refused by the offset check, stream/preflight.py). The sink records, beside the checkpoint's
offsets, the last record it read per partition (:func:`save_last_read`: a post by its
(platform, id), a dead letter by its broker time and size), and
:func:`posts_begun_again` compares it with the record the broker now holds at that offset;
`stream` refuses a different one, as it refuses offsets that went backwards, and `--reset` reads
the topic from its first offset (posts stored before are kept; one sent again counts as a
duplicate) with a new checkpoint, so the old life's posts are compared no more.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from stream.record_batches import UnreadableBatch, broker_time_us

LOG = logging.getLogger(__name__)
FETCH_WAIT_S = 5.0  # how long to wait for the stored last record when comparing


@dataclass(frozen=True)
class LastStored:
    """The highest-offset row stored for one partition of a topic's newest generation."""

    offset: int
    raw: str | None
    rejected_at: datetime | None
    key: str | None


def stored_lives(con: Any, topic: str) -> tuple[int, dict[int, LastStored]]:
    """(the newest generation stored for `topic`, its last row per partition)."""
    row = con.execute("SELECT max(topic_generation) FROM dead_letters WHERE source_topic = ?",
                      [topic]).fetchone()
    generation = int(row[0]) if row and row[0] is not None else 0
    rows = con.execute(
        "SELECT d.kafka_partition, d.kafka_offset, d.raw, d.rejected_at, d.dead_letter_key "
        "FROM dead_letters d JOIN (SELECT kafka_partition, max(kafka_offset) AS o "
        "  FROM dead_letters WHERE source_topic = ? AND topic_generation = ? GROUP BY 1) m "
        "ON d.kafka_partition = m.kafka_partition AND d.kafka_offset = m.o "
        "WHERE d.source_topic = ? AND d.topic_generation = ?",
        [topic, generation, topic, generation]).fetchall()
    return generation, {int(p): LastStored(int(o), raw, at, key) for p, o, raw, at, key in rows}


def begun_again(consumer: Any, topic: str, last: dict[int, LastStored],
                ends: dict[int, int], row_of: Any) -> str | None:
    """Why the broker's `topic` is a new life of the one `last` was stored from, or None.
    `ends`: the next offset per partition on the broker; `row_of(partition, record)`: the
    ``dead_letters`` row the drain makes of a record (compared on raw, time and key)."""
    for p, stored in sorted(last.items()):
        if ends.get(p, 0) <= stored.offset:
            return (f"partition {p} ends at offset {ends.get(p, 0)}, but offset {stored.offset} "
                    f"was stored from it")

    def identity(p: int, rec: Any) -> tuple[Any, ...]:
        row = row_of(p, rec)
        return row["raw"], row["rejected_at"], row["dead_letter_key"]

    other = _first_other(consumer, topic, identity, {
        p: (s.offset, (s.raw, s.rejected_at, s.key)) for p, s in last.items()})
    return None if other is None else (f"partition {other[0]} offset {other[1]} holds another "
                                       f"record than was stored")


def _first_other(consumer: Any, topic: str, identity: Callable[[int, Any], Any],
                 expected: dict[int, tuple[int, Any]]) -> tuple[int, int, Any] | None:
    """The first partition whose record at its `expected` offset has another `identity` than
    expected: (partition, offset, that identity). A record that cannot be had, or whose
    identity is None (cannot be read), says nothing."""
    for p, (offset, want) in sorted(expected.items()):
        rec = _record_at(consumer, topic, p, offset)
        got = identity(p, rec) if rec is not None else None
        if got is not None and got != want:
            return p, offset, got
    return None


def _record_at(consumer: Any, topic: str, partition: int, offset: int) -> Any | None:
    """The record at `offset`, or None when it cannot be had (gone, unreadable, too slow)."""
    from kafka import TopicPartition

    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + FETCH_WAIT_S
    while time.monotonic() < deadline:
        try:
            batch = consumer.poll(timeout_ms=200, max_records=1).get(tp, [])
        except UnreadableBatch:
            return None
        for rec in batch:
            return rec if rec.offset == offset else None
    return None


LAST_READ_FILE = "polarwatch-last-read.json"  # in the query's checkpoint directory


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEAD_MARK = "\x00record"  # a dead row's mark: (offset, DEAD_MARK, "<broker time ms>:<bytes>")


def row_marks(rows: pd.DataFrame) -> pd.DataFrame:
    """The batch's rows as marks (kafka_partition, kafka_offset, platform, id): a post by its
    (platform, id), a dead row (`dead_reason` set) by its broker time and size in bytes, so a
    partition whose records were all malformed is compared too (audit R F2: new records there
    after a restart were skipped). A dead row without a broker time or size is left out."""
    cols = ["kafka_partition", "kafka_offset", "platform", "id"]
    if "dead_reason" not in rows or not rows["dead_reason"].notna().any():
        return rows[cols]
    dead = rows[rows["dead_reason"].notna()]
    if "broker_ts" not in dead or "raw_size" not in dead:
        return rows.loc[rows["dead_reason"].isna(), cols]
    # in the source's unit (microseconds, exact for the broker's milliseconds); .value is in
    # nanoseconds and overflows past 2262, a time a producer may set
    at = pd.to_datetime(dead["broker_ts"], utc=True).astype("datetime64[us, UTC]")
    known = (at.notna() & dead["raw_size"].notna()).to_numpy()
    marked = pd.DataFrame({
        "kafka_partition": dead["kafka_partition"].to_numpy()[known],
        "kafka_offset": dead["kafka_offset"].to_numpy()[known], "platform": DEAD_MARK,
        "id": [f"{ms}:{int(size)}" for ms, size in
               zip(at.array.asi8[known] // 1000, dead["raw_size"].to_numpy()[known],
                   strict=True)]})
    return pd.concat([rows.loc[rows["dead_reason"].isna(), cols], marked], ignore_index=True)


def save_last_read(checkpoint: Path, topic: str, rows: pd.DataFrame,
                   marks: dict[int, tuple[int, str, str]]) -> None:
    """After a committed micro-batch: per partition, the highest offset it read and that row's
    mark, merged into `marks` (the sink's copy of what the checkpoint's file holds,
    :func:`load_last_read`) and written atomically (`stream --reset`, which removes the
    checkpoint, removes it too). `rows`: the batch's marks (:func:`row_marks`)."""
    if not len(rows):
        return
    last = rows.sort_values("kafka_offset").groupby("kafka_partition").tail(1)
    for p, o, platform, pid in last[["kafka_partition", "kafka_offset", "platform", "id"]
                                    ].itertuples(index=False):
        if int(o) >= marks.get(int(p), (-1, "", ""))[0]:
            marks[int(p)] = (int(o), str(platform), str(pid))
    body = {"topic": topic, "partitions": {str(p): list(m) for p, m in sorted(marks.items())}}
    tmp = checkpoint / f".{LAST_READ_FILE}.tmp"
    try:
        tmp.write_text(json.dumps(body))
        os.replace(tmp, checkpoint / LAST_READ_FILE)
    except OSError as exc:  # the batch is committed: only the start-up comparison is lost
        LOG.warning(f"{checkpoint / LAST_READ_FILE} not written ({exc}): the next `stream` "
                    f"cannot tell whether the broker's topic began again")


def load_last_read(checkpoint: Path, topic: str) -> dict[int, tuple[int, str, str]]:
    """The checkpoint's last posts per partition of `topic` ({} when none is recorded: an older
    checkpoint, another topic, or a file that cannot be read)."""
    try:
        body = json.loads((checkpoint / LAST_READ_FILE).read_text())
        if body.get("topic") != topic:
            return {}
        return {int(p): (int(o), str(platform), str(pid))
                for p, (o, platform, pid) in body["partitions"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def posts_begun_again(consumer: Any, topic: str,
                      marks: dict[int, tuple[int, str, str]]) -> str | None:
    """Why the broker's posts `topic` is another life than the one this checkpoint read, by the
    last posts it stored per partition (:func:`load_last_read`); None when the broker holds the
    same posts there, or nothing can be compared (a record that cannot be fetched or read)."""
    def identity(p: int, rec: Any) -> tuple[str, str] | None:
        post = None if marks[p][1] == DEAD_MARK else _post_identity(rec.value)
        return post or _record_identity(rec)  # not a post where a post was read: another

    other = _first_other(consumer, topic, identity,
                         {p: (o, (platform, pid)) for p, (o, platform, pid) in marks.items()})
    if other is None:
        return None
    p, offset, now = other
    return (f"partition {p} offset {offset} holds {_shown(*now)}, but {_shown(*marks[p][1:])} "
            f"was read from there")


class PostsLife:
    """Before a micro-batch is committed: the broker's posts topic compared with the last posts
    read before the batch (the checkpoint's marks) and with the batch's own first and last post
    per partition. A batch is planned against the topic as it was; a broker restarted while
    the batch was read answered from its new topic at the same offsets, so the new topic's
    first records and the old one's unread tail were skipped (audit R: 395-494 of 800 posts
    stored, no message). Raises ``OffsetRegressionError`` (the supervisor's permanent cause)."""

    def __init__(self, bootstrap: str, topic: str, checkpoint: str | Path,
                 security: dict[str, Any] | None = None) -> None:
        self.bootstrap, self.topic, self.checkpoint = bootstrap, topic, checkpoint
        self.security = security or {}
        self._consumer: Any = None

    def check(self, rows: pd.DataFrame, marks: dict[int, tuple[int, str, str]]) -> None:
        """`rows`: the batch's marks (:func:`row_marks`)."""
        from stream.kafka_source import ONE_BATCH, OffsetRegressionError, consumer_for

        if self._consumer is None:
            self._consumer = consumer_for(self.bootstrap, self.security, fetch_bytes=ONE_BATCH)
        ordered = rows.sort_values("kafka_offset").groupby("kafka_partition")
        for at in (marks, _marks(ordered.head(1)), _marks(ordered.tail(1))):
            other = posts_begun_again(self._consumer, self.topic, at) if at else None
            if other:
                raise OffsetRegressionError(begun_again_message(self.topic, other,
                                                                self.checkpoint))

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __del__(self) -> None:  # a restarted query builds a new sink: free the old consumer
        if sys.is_finalizing():  # at exit the OS frees it (as DeadLetterDrain)
            return
        with contextlib.suppress(Exception):
            self.close()


def _marks(rows: pd.DataFrame) -> dict[int, tuple[int, str, str]]:
    return {int(p): (int(o), str(platform), str(pid)) for p, o, platform, pid in
            rows[["kafka_partition", "kafka_offset", "platform", "id"]].itertuples(index=False)}


def begun_again_message(topic: str, other: str, checkpoint: str | Path) -> str:
    """Why a stream is refused whose posts topic began again (`other`:
    :func:`posts_begun_again`)."""
    return (f"topic {topic!r} has begun again ({other}): the broker was reset (memory storage "
            f"loses its messages on a restart) or the topic recreated, and resuming at the "
            f"checkpoint's offsets would skip the new records before them. To read the topic "
            f"from its first offset, run `polarwatch stream --reset` (a new checkpoint, "
            f"{checkpoint}; posts stored before are kept).")


def _record_identity(rec: Any) -> tuple[str, str] | None:
    """A record's dead-row mark (:func:`row_marks`), or None without a broker time the
    source passes on (:func:`broker_time_us`)."""
    us = broker_time_us(rec.timestamp) if isinstance(rec.timestamp, int) else None
    return None if us is None else (DEAD_MARK, f"{rec.timestamp}:{len(rec.value or b'')}")


_INT = re.compile(r"-?[0-9]+")


def _shown(platform: str, pid: str) -> str:
    """A mark in words."""
    ms, _, size = pid.partition(":")
    if platform != DEAD_MARK or not (_INT.fullmatch(ms) and _INT.fullmatch(size)):
        return f"post {pid!r} ({platform!r})" if platform.startswith("\x00") else \
            f"post {pid!r} ({platform})"  # a post's own platform may be anything
    try:
        at = f"{EPOCH + timedelta(milliseconds=int(ms)):%Y-%m-%d %H:%M:%S.%f}"[:-3] + " UTC"
    except (OverflowError, ValueError, OSError):  # a producer's time out of datetime's range
        at = f"{ms} ms after the epoch"
    return f"a {int(size):,}-byte record that is not a post (broker time {at})"


def _post_identity(value: bytes | None) -> tuple[str, str] | None:
    """(platform, id) of a posts record, or None when it is not a JSON object holding both."""
    try:
        obj = json.loads(value or b"")
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("id") is None or obj.get("platform") is None:
        return None
    return str(obj["platform"]), str(obj["id"])
