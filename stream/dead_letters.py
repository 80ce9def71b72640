"""One place for every rejected record: the ingest dead-letter topic drained into DuckDB.

The producer (``ingest/producer.py``) sends what the record contract rejects at ingest to the
dead-letter topic: the raw bytes (cut to ``MAX_DEAD_LETTER_BYTES``) with the reason and the
original size in headers. The stream's parser rejects what reaches the posts topic anyway. Both
end in the ``dead_letters`` table: the sink stores the stream's rejects, and in the same DuckDB
transaction a :class:`DeadLetterDrain` adds a chunk of the ingest rejects that arrived since the
last batch (at most ``DRAIN_MAX_RECORDS`` / ``DRAIN_MAX_BYTES``). The rest, and those that arrive
while no posts do, are stored between micro-batches (``DuckDBSink.store_ingest_dead_letters``):
chunk by chunk to the end of the topic when a ``stream`` run has drained the posts topic, and by
an :class:`IdleDrainer` every ``IDLE_DRAIN_EVERY_S`` under ``stream --continuous``.

The drain resumes after the highest offset per partition stored for the dead-letter topic (read
from the table at start and after a failed batch, then kept in memory), and rows are keyed by
(topic, generation, partition, offset), so a batch that is rolled back or replayed neither loses
nor duplicates a dead letter. A topic begun again (a memory broker restarted) is found before the
drain resumes and read from offset 0 as the next generation (stream/topic_generation.py). It
reads Kafka before the sink opens its DuckDB transaction.

Ingest sends a record again after ``--restart`` or a crash (at a new offset); such a dead letter
carries the same key header (``records.DEAD_LETTER_KEY_HEADER``: its source, position and bytes,
hashed). The drain stores one row per key: a keyed dead letter whose key is stored, or is
already in the batch, is skipped (counted in the log), and the key goes to ``dead_letter_key``
in the sink's transaction that stores the row. Dead letters without the header are stored as
they come.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from polarwatch.records import DEAD_LETTER_KEY_HEADER as KEY_HEADER
from polarwatch.records import DEAD_LETTER_REASON_HEADER as REASON_HEADER
from polarwatch.records import DEAD_LETTER_SIZE_HEADER as SIZE_HEADER
from polarwatch.records import MAX_DEAD_LETTER_BYTES
from polarwatch.validation import cut_reason
from polarwatch.warehouse import connect
from stream.group_offsets import STREAM_GROUP, GroupCommitter
from stream.record_batches import UnreadableBatch, broker_time_us, past_markers
from stream.topic_generation import LastStored, begun_again, stored_lives

LOG = logging.getLogger(__name__)

DRAIN_MAX_RECORDS = 20_000  # dead letters drained per chunk (a micro-batch stores one)
DRAIN_MAX_BYTES = 64 * 1024 * 1024  # ... and raw bytes kept per chunk (each <= 64 KiB)
IDLE_DRAIN_EVERY_S = 10.0  # `stream --continuous`: drain between micro-batches this often
DRAIN_STALL_S = 5.0  # stop draining a partition when no record arrives for this long

COLUMNS = ["source_topic", "kafka_partition", "kafka_offset", "reason", "raw", "seen_at",
           "source", "raw_size", "rejected_at"]
KEY_COLUMN = "dead_letter_key"  # in the drained frames too; stored by stream/sink.py
GENERATION_COLUMN = "topic_generation"  # ... and the topic's life the rows were read from
KEY_CHARS = frozenset("0123456789abcdef")  # a key is a sha256 in hex (ingest.producer)


MAX_SIZE = 2**63 - 1  # raw_size is a BIGINT


def _original_size(raw: bytes | None) -> int | None:
    """The original-size header as a byte count, or None when absent or not one (a negative,
    non-numeric or over-BIGINT value: the record is stored with its own length instead)."""
    if raw is None or len(raw) > 20:
        return None
    try:
        size = int(raw)
    except ValueError:
        return None
    return size if 0 <= size <= MAX_SIZE else None


def dead_letter_row(topic: str, partition: int, offset: int, timestamp_ms: int | None,
                    value: bytes | None, headers: list[tuple[str, bytes]] | None,
                    now: datetime) -> dict[str, Any]:
    """A ``dead_letters`` row for one record of the dead-letter topic."""
    meta = {k: v for k, v in headers or [] if isinstance(v, bytes)}
    value = value or b""
    reason = meta.get(REASON_HEADER, b"").decode("utf-8", "replace") or \
        "dead letter without a reason header"
    size = _original_size(meta.get(SIZE_HEADER))
    if size is None:
        size = len(value)
        if SIZE_HEADER in meta:  # anyone can write to the topic: a forged header is noted
            reason += f" (header {SIZE_HEADER} unreadable: {meta[SIZE_HEADER][:40]!r}; ignored)"
    key = meta.get(KEY_HEADER)
    if key is not None and (len(key) != 64 or not set(key.decode("latin-1")) <= KEY_CHARS):
        reason += f" (header {KEY_HEADER} unreadable: {key[:40]!r}; ignored)"
        key = None
    # a time pandas cannot hold (past 2262) is none: the drain's frame raised on it, at
    # every micro-batch (anyone can write to the topic and set any time)
    rejected = (datetime.fromtimestamp(timestamp_ms / 1000, UTC)
                if timestamp_ms is not None and broker_time_us(timestamp_ms) is not None
                else None)
    return {"source_topic": topic, "kafka_partition": partition, "kafka_offset": offset,
            "reason": cut_reason(reason),
            "raw": value[:MAX_DEAD_LETTER_BYTES].decode("utf-8", "replace"),
            "seen_at": now, "source": "ingest", "raw_size": size, "rejected_at": rejected,
            KEY_COLUMN: key.decode() if key is not None else None}


def unreadable_row(topic: str, partition: int, offset: int, bad: UnreadableBatch,
                   now: datetime) -> dict[str, Any]:
    """A ``dead_letters`` row for a record batch of the dead-letter topic that cannot be
    unpacked (stream.record_batches): its offsets and why, no content."""
    return {"source_topic": topic, "kafka_partition": partition, "kafka_offset": offset,
            "reason": cut_reason(bad.describe()),
            "raw": "", "seen_at": now, "source": "ingest", "raw_size": None,
            "rejected_at": None, KEY_COLUMN: None}


def frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a DataFrame with the ``dead_letters`` columns (and the key) and dtypes (also
    when empty)."""
    df = pd.DataFrame(rows, columns=[*COLUMNS, KEY_COLUMN, GENERATION_COLUMN])
    df[GENERATION_COLUMN] = df[GENERATION_COLUMN].fillna(0)
    for col in ("seen_at", "rejected_at"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df.astype({"kafka_partition": "int32", "kafka_offset": "int64",
                      "raw_size": "Int64", GENERATION_COLUMN: "int32"})


class DeadLetterDrain:
    """Reads the dead-letter topic after the offsets already stored in ``dead_letters``."""

    def __init__(self, bootstrap: str, topic: str, max_records: int | None = None,
                 security: dict[str, Any] | None = None,
                 max_bytes: int | None = None) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.max_records = max_records or DRAIN_MAX_RECORDS
        self.max_bytes = max_bytes or DRAIN_MAX_BYTES
        self.security = security or {}  # [broker] security settings, kafka-python keywords
        self.committer = GroupCommitter(bootstrap, STREAM_GROUP, topic, self.security)
        self._consumer: Any = None
        self._next: dict[int, int] | None = None  # next offset per partition to fetch
        self._generation = 0  # the topic's life being read (stream/topic_generation.py)
        self._last: dict[int, LastStored] = {}  # last rows read, compared before reading on
        self._read_end: dict[int, int] = {}  # ... after the last fetch (skipped resends too)
        self._read_last: dict[int, LastStored] = {}  # ... and the last row it read
        self._resumed = False  # `_last` was just read from the table: compare it in any case
        # one thread at a time on the consumer (kafka-python's is not thread-safe): the idle
        # drain asks for the ends while a micro-batch fetches (a review: "generator already
        # executing" stopped the stream)
        self._lock = threading.RLock()

    @property
    def position(self) -> dict[int, int] | None:
        """The next offset per partition to fetch (None: to be read from the table)."""
        return None if self._next is None else dict(self._next)

    def ends(self) -> dict[int, int] | None:
        """The topic's end per partition now (None: the broker or topic cannot be read)."""
        from kafka.errors import KafkaError

        from stream.kafka_source import latest_offsets

        with self._lock:
            try:
                consumer = self._topic_consumer()
                return {} if consumer is None else {
                    int(p): e for p, e in latest_offsets(consumer, self.topic).items()}
            except (KafkaError, RuntimeError, TimeoutError, OSError) as exc:
                LOG.debug(f"dead-letter topic {self.topic!r}: end not read ({exc})")
                return None

    def _topic_consumer(self) -> Any:
        """This drain's consumer (made once), or None while the topic does not exist."""
        from stream.kafka_source import consumer_for

        if self._consumer is None:
            self._consumer = consumer_for(self.bootstrap, self.security)
        return self._consumer if self._consumer.partitions_for_topic(self.topic) else None

    def _resume_from_table(self, path: str | Path) -> None:
        """Resume after the rows stored for the topic's newest generation; the broker is
        compared with them (:meth:`_check_life`) before anything is read."""
        with connect(path) as con:
            self._generation, self._last = stored_lives(con, self.topic)
        self._next = {p: last.offset + 1 for p, last in self._last.items()}
        self._resumed = True

    def _check_life(self, ends: dict[int, int] | None) -> None:
        """The topic begun again since the last rows were read (a memory broker restarted:
        offsets count from 0 again): read it from offset 0 as the next generation. Checked
        before each read, not only on resuming from the table: a running stream keeps its
        drain across micro-batches and broker restarts. A topic whose ends are where the drain
        stands has nothing to read yet and is compared when it has, except on resuming from
        the table (a new life exactly as long as the old one is found there). Raises what the
        broker raises; waits while the topic does not exist."""
        from stream.kafka_source import latest_offsets

        consumer = self._topic_consumer()
        if consumer is None or not self._last:
            return
        if ends is None:
            ends = {int(p): e for p, e in latest_offsets(consumer, self.topic).items()}
        if not self._resumed and ends == {p: (self._next or {}).get(p, 0) for p in ends}:
            return
        self._resumed = False
        why = begun_again(consumer, self.topic, self._last, ends, self._row_of)
        if why is not None:
            self._last = {}
            self._generation += 1
            self._next = {}
            LOG.warning(f"dead-letter topic {self.topic!r} has begun again ({why}): the broker "
                        f"was restarted without its storage, or the topic made again. Its "
                        f"records are stored from offset 0 as generation {self._generation}; "
                        f"the rows stored before are kept")

    def _row_of(self, partition: int, rec: Any) -> dict[str, Any]:
        return dead_letter_row(self.topic, partition, rec.offset, rec.timestamp, rec.value,
                               rec.headers, datetime.now(UTC))

    def fetch(self, path: str | Path, now: datetime,
              ends: dict[int, int] | None = None) -> pd.DataFrame:
        """The dead letters not stored yet (at most ``max_records``), read *before* the sink
        opens its transaction, so the DuckDB file is not held while Kafka answers. Call
        :meth:`advance` after the rows are committed, :meth:`forget` when they were not. A
        broker that cannot be reached, or a topic that does not exist yet, gives an empty
        frame: the records stay in the topic for a later batch. `ends` (from :meth:`ends`):
        read up to these offsets, not to the topic's end as it is now."""
        with self._lock:
            return self._fetch(path, now, ends)

    def _fetch(self, path: str | Path, now: datetime,
               ends: dict[int, int] | None = None) -> pd.DataFrame:
        from kafka.errors import KafkaError

        if self._next is None:  # first batch, or after a failed one: what the table says
            self._resume_from_table(path)
        self._read_end = {}
        try:
            self._check_life(ends)
            rows, read_to = self._read(self._next or {}, now, ends)
        except (KafkaError, RuntimeError, TimeoutError, OSError) as exc:
            LOG.warning(f"dead-letter topic {self.topic!r} not drained this batch: {exc}")
            self.close()
            return frame([])
        self._read_end = read_to
        self._read_last = {}
        for row in rows:
            row[GENERATION_COLUMN] = self._generation
            self._read_last[row["kafka_partition"]] = LastStored(
                row["kafka_offset"], row["raw"], row["rejected_at"], row[KEY_COLUMN])
        return frame(self._not_stored(path, rows))

    def _not_stored(self, path: str | Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`rows` but those whose key is stored already or came earlier in `rows` (ingest sent
        the record again)."""
        keys = list({r[KEY_COLUMN] for r in rows if r[KEY_COLUMN] is not None})
        if not keys:
            return rows
        with connect(path) as con:
            seen = {k for (k,) in con.execute(
                "SELECT dead_letter_key FROM dead_letters WHERE dead_letter_key IN "
                "(SELECT unnest(?::VARCHAR[]))", [keys]).fetchall()}
        kept = []
        for row in rows:
            key = row[KEY_COLUMN]
            if key is None or key not in seen:
                kept.append(row)
                if key is not None:
                    seen.add(key)
        if len(kept) < len(rows):
            LOG.info(f"{len(rows) - len(kept):,} dead letter(s) sent again by ingest (a key "
                     f"already stored) not stored twice")
        return kept

    def advance(self, stored: pd.DataFrame) -> None:
        """`stored` (from :meth:`fetch`) is committed (its keys with it: stream/sink.py): the
        next fetch starts after it and after the resends that fetch skipped."""
        if self._next is None:
            return
        before = dict(self._next)
        ends = {int(p): int(o) + 1 for p, o in
                stored.groupby("kafka_partition")["kafka_offset"].max().items()} \
            if len(stored) else {}
        for part, end in [*ends.items(), *self._read_end.items()]:
            self._next[part] = max(self._next.get(part, 0), end)
        self._last.update(self._read_last)  # compared before the next read
        self._read_last = {}
        if self._next != before:
            self.committer.commit(dict(self._next))

    def forget(self) -> None:
        """The batch failed: the next fetch re-reads the stored offsets from the table."""
        self._next = None
        self._read_end = {}
        self._read_last = {}

    def _read(self, start: dict[int, int], now: datetime, until: dict[int, int] | None = None
              ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """The dead letters after `start` (up to `until`, else to the topic's end) and the next
        offset per partition read."""
        from kafka import TopicPartition

        from stream.kafka_source import latest_offsets

        consumer = self._topic_consumer()
        if consumer is None:
            return [], {}
        rows: list[dict[str, Any]] = []
        ends: dict[int, int] = {}
        kept = 0  # raw bytes in `rows`

        def full() -> bool:
            return len(rows) >= self.max_records or kept >= self.max_bytes

        if until is None:
            until = {int(p): e for p, e in latest_offsets(consumer, self.topic).items()}
        for p, end in sorted(until.items()):
            nxt = start.get(p, 0)
            if nxt >= end or full():
                continue
            tp = TopicPartition(self.topic, p)
            consumer.assign([tp])
            consumer.seek(tp, nxt)
            last_progress = time.monotonic()
            while nxt < end and not full():
                try:
                    batch = consumer.poll(timeout_ms=200, max_records=5000).get(tp, [])
                except UnreadableBatch as bad:  # stored as what it is, then skipped
                    at, nxt = bad.skip(consumer, tp, nxt, end)
                    rows.append(unreadable_row(self.topic, p, at, bad, now))
                    continue
                if not batch and time.monotonic() - last_progress > DRAIN_STALL_S:
                    break
                for rec in batch:
                    if rec.offset < nxt or rec.offset >= end or full():
                        continue
                    rows.append(dead_letter_row(self.topic, p, rec.offset, rec.timestamp,
                                                rec.value, rec.headers, now))
                    kept += len(rows[-1]["raw"])
                    nxt = rec.offset + 1
                    last_progress = time.monotonic()
                if not full():  # every record taken: past a transaction marker too
                    moved = past_markers(consumer, tp, nxt, end)
                    if moved > nxt:
                        nxt, last_progress = moved, time.monotonic()
            ends[p] = nxt
        return rows, ends

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        self.committer.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __del__(self) -> None:  # a restarted query builds a new sink: free the old consumer
        if sys.is_finalizing():  # at exit the OS frees it; closing would wait forever for the
            return  # client's network thread, which is gone by then
        with contextlib.suppress(Exception):
            self.close()


class IdleDrainer:
    """Calls `drain` (``DuckDBSink.store_ingest_dead_letters``, which yields to a micro-batch)
    every `every` seconds in a daemon thread, so that ingest rejects reach ``dead_letters`` also
    while no posts arrive (no micro-batch runs then). A failure is logged and tried again."""

    def __init__(self, drain: Callable[[], int], every: float = IDLE_DRAIN_EVERY_S) -> None:
        self.drain, self.every = drain, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dead-letter-drain", daemon=True)

    def start(self) -> IdleDrainer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                stored = self.drain()
            except Exception as exc:  # a DuckDB lock held too long, a broker away: next time
                LOG.warning(f"dead-letter topic not drained between micro-batches: {exc}")
                continue
            if stored:
                LOG.info(f"+{stored:,} dead letter(s) from ingest stored between micro-batches")

    def close(self, timeout: float) -> None:
        """Stop, waiting up to `timeout` seconds for a chunk in hand (its DuckDB write)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
