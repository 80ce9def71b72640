"""Record batches a consumer cannot unpack become one dead letter, never a failed batch.

Anyone who can write to a topic chooses how its record batches are compressed. kafka-python
decompresses a whole batch in memory with no bound (a 100 KiB gzip or zstd batch can hold
gigabytes), and raises from ``poll`` on a codec this machine lacks (snappy is not installed) or
on corrupt compressed bytes, so one such batch failed every run of the stream at the same offset.

:func:`install` (idempotent, called by ``kafka_source.consumer_for``) replaces kafka-python's
decoders with ones that stop at MAX_BATCH_BYTES and turns any failure to unpack a batch, or to
read a record in it, into :class:`UnreadableBatch`, which names the batch's offsets so the reader
can dead-letter them and seek past. A header key that is not UTF-8 (kafka-python decodes header
keys strictly, and one such key failed every fetch at its offset) is read with ``\\xNN`` in
place of the bad bytes: the record is judged by its value like any other. It patches
kafka-python's record module: the library offers no hook for any of this.

A transaction's commit or abort marker is a control batch: it takes an offset, and kafka-python
never returns it as a record. :func:`past_markers` moves a reader past it. A record's broker
time is any a producer set: :func:`broker_time_us` keeps only those pandas can hold.
"""

from __future__ import annotations

import gzip
import io
import threading
from typing import Any

MAX_BATCH_BYTES = 64 * 1024 * 1024  # one record batch, decompressed (posts are <= 256 KiB each)

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}  # the batch attribute's bits
_lock = threading.Lock()
_installed = False


class UnreadableBatch(Exception):  # noqa: N818 — a record batch, not an error of ours
    """A record batch at offsets [first, after) that cannot be unpacked, and why."""

    def __init__(self, first: int, after: int, reason: str) -> None:
        super().__init__(reason)
        self.first, self.after, self.reason = first, max(after, first + 1), reason

    def describe(self) -> str:
        """The dead letter's reason: the batch's offsets and why."""
        return f"offsets {self.first}..{self.after - 1}: {self.reason}"

    def skip(self, consumer: Any, tp: Any, position: int, end: int) -> tuple[int, int]:
        """Seek `consumer` past this batch for a reader at `position` that stops at `end`:
        (the offset its dead letter takes, the next offset to read). A batch wholly behind
        `position` is not the one the reader is at: it is raised again."""
        if self.after <= position:
            raise self
        nxt = min(self.after, end)
        consumer.seek(tp, nxt)
        return max(position, self.first), nxt


class _TooLarge(ValueError):
    pass


def _read_capped(reader: Any) -> bytes:
    """Read a decompressing stream up to MAX_BATCH_BYTES; raise _TooLarge beyond it."""
    out = bytearray()
    while len(out) <= MAX_BATCH_BYTES:
        chunk = reader.read(min(1 << 20, MAX_BATCH_BYTES + 1 - len(out)))
        if not chunk:
            return bytes(out)
        out += chunk
    raise _TooLarge(f"decompresses to more than {MAX_BATCH_BYTES:,} bytes")


def gzip_decode(payload: Any) -> bytes:
    with gzip.GzipFile(fileobj=io.BytesIO(payload), mode="rb") as reader:
        return _read_capped(reader)


def zstd_decode(payload: Any) -> bytes:
    import zstandard

    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(payload),
                                                     read_across_frames=True) as reader:
        return _read_capped(reader)


def lz4_decode(payload: Any) -> bytes:
    import lz4.frame

    return _read_capped(lz4.frame.LZ4FrameFile(io.BytesIO(payload), mode="rb"))


class _LenientKeys(bytearray):
    """A record batch's bytes whose slices decode bytes that are not UTF-8 as ``\\xNN``:
    kafka-python decodes header keys strictly and fails the whole fetch on one that is not
    UTF-8 (Kafka's String type, which another client may break). Neither reader looks at the
    posts topic's headers; the drain matches its two keys, which such a key is not."""

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        return _LenientSlice(item) if isinstance(index, slice) else item


class _LenientSlice(bytearray):
    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytearray.decode(self, encoding, "backslashreplace")


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def install() -> None:
    """Bound kafka-python's decompression and make unpack failures UnreadableBatch."""
    global _installed
    with _lock:
        if _installed:
            return
        from kafka.errors import CorruptRecordError
        from kafka.record import default_records, legacy_records

        for module in (default_records, legacy_records):
            module.gzip_decode = gzip_decode
            if getattr(module, "lz4_decode", None) is not None:
                module.lz4_decode = lz4_decode
        default_records.zstd_decode = zstd_decode

        batch = default_records.DefaultRecordBatch
        unpack = batch._maybe_uncompress

        def bounded_uncompress(self: Any) -> None:
            try:
                unpack(self)
            except Exception as exc:
                codec = CODECS.get(self.compression_type, "unknown")
                raise UnreadableBatch(self.base_offset, self.next_offset,
                                      f"record batch ({codec} compression, "
                                      f"{self.records_count} record(s) by its header) cannot "
                                      f"be unpacked: {_why(exc)}") from exc

        batch._maybe_uncompress = bounded_uncompress

        read_msg = batch._read_msg

        def lenient_read_msg(self: Any) -> Any:
            pos = self._pos
            try:
                return read_msg(self)
            except UnicodeDecodeError:  # a header key (the one text a record holds) not UTF-8
                self._pos = pos
                self._buffer = _LenientKeys(self._buffer)  # for the rest of this batch
                return read_msg(self)

        batch._read_msg = lenient_read_msg
        next_record = batch.__next__

        def guarded_next(self: Any) -> Any:
            try:
                return next_record(self)
            except CorruptRecordError as exc:
                if self._next_record_index >= self._num_records:  # all read; bytes left over
                    raise StopIteration from None
                raise UnreadableBatch(self.base_offset, self.next_offset,
                                      f"record batch ({self.records_count} record(s) by its "
                                      f"header) holds a record that cannot be read: "
                                      f"{_why(exc)}") from exc

        batch.__next__ = batch.next = guarded_next

        legacy = legacy_records.LegacyRecordBatch
        decompress = legacy._decompress

        def bounded_decompress(self: Any, key_offset: int) -> Any:
            try:
                return decompress(self, key_offset)
            except Exception as exc:
                raise UnreadableBatch(self._offset, self._offset + 1,
                                      f"legacy message set cannot be unpacked: "
                                      f"{_why(exc)}") from exc

        legacy._decompress = bounded_decompress
        _installed = True


def past_markers(consumer: Any, tp: Any, nxt: int, end: int) -> int:
    """`nxt` moved to the consumer's position (at most `end`) after a poll whose records were
    all taken: a transaction's commit or abort marker takes an offset but is never returned
    as a record, so a range ending on one was waited on until the stall timeout, and a
    restarted stream planned the same range again: stopped for good (a review)."""
    try:
        pos = consumer.position(tp, timeout_ms=1000)
    except Exception:  # noqa: BLE001 - no position known: the records decide, as before
        return nxt
    return max(nxt, min(int(pos), end)) if pos is not None else nxt


# the broker times pandas can hold (nanoseconds in an int64: 1677-09-21 to 2262-04-11); the
# sink's toPandas raised on one outside them, so one such record stopped the stream at every
# restart (a producer sets any CreateTime, e.g. microseconds sent as milliseconds)
BROKER_TIME_US = (-(2**63 - 1) // 1000 + 1, (2**63 - 1) // 1000)


def broker_time_us(ms: int | None) -> int | None:
    """A record's broker time in microseconds, or None (no time: ingest uses the wall clock)
    when it has none or one that pandas cannot hold."""
    if ms is None or ms < 0:  # -1: the record carries no time
        return None
    us = ms * 1000
    return us if BROKER_TIME_US[0] <= us <= BROKER_TIME_US[1] else None
