"""The progress file of ``ingest file``: the last row the broker confirmed, and what the broker
must still hold for resuming after it to be right.

A file is resumed after its last *confirmed* row (:func:`open_progress`) when its bytes up to its
size at the last run are still the same (rows appended are fine; a file rewritten or cut short is
refused, naming ``--restart``). That is only right
while the broker holds what was confirmed: a memory broker that restarted, or another broker at
the same address, holds none of it, and resuming would send nothing of the rows before, which
the stream has perhaps not read. So each save also keeps, per partition of the posts and
dead-letter topics, the highest offset the broker confirmed and a digest of the value stored
there (:attr:`ingest.producer.PostProducer.delivered`). Before a resume, :func:`broker_lost`
asks the broker for those records: a partition that now ends at or before its offset, or holds
another record there, refuses the resume (``--restart`` sends the file again). A record that
cannot be fetched (pruned with s3 storage, too slow) and a broker that cannot be asked say
nothing, as does a progress file written before these fields existed: they resume as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.sources.base import Checkpoint, Position, SourceError
from ingest.sources.files import FINGERPRINT_BYTES, fingerprint

if TYPE_CHECKING:
    from ingest.sources.files import FileSource

LOG = logging.getLogger(__name__)
FETCH_WAIT_S = 5.0  # how long to wait for the record at a confirmed offset
LARGE_FILE_BYTES = 1 << 30  # hashing a file this large takes about a second: said in a line
CONNECT_MS = 10_000  # a broker that does not answer in this time is not asked (as ensure_topics)
# Saved per partition: {"topic": str, "partition": int, "offset": int, "digest": str}
Delivered = list[dict[str, Any]]


@dataclass
class FileProgress:
    """What the progress file says about one input file."""

    checkpoint: Checkpoint
    position: int
    done: bool
    delivered: Delivered = field(default_factory=list)  # [] in files of earlier versions
    # (bytes, SHA-1) of the file's start as checked for this resume: the saver's own
    # fingerprint when the file has not grown, so an unchanged file is read once, not twice
    checked: tuple[int, str] | None = None


def open_progress(source: FileSource, state_dir: Path, posts_topic: str,
                  restart: bool = False,
                  lost: Callable[[Delivered], str | None] | None = None) -> FileProgress:
    """The progress of `source` into `posts_topic`. Refuses, unless `restart`, a file whose start
    changed (rows appended to the end are fine), one read before with other options (format,
    column mapping, --assume-utc): its rows up to the saved position were read the old way, and
    one whose delivered records `lost` (e.g. :func:`broker_lost`) says the broker lost."""
    ckpt = Checkpoint(state_dir, "ingest", f"{source.checkpoint_key()}|{posts_topic}")
    saved = None if restart else ckpt.load()
    if restart:
        ckpt.clear()
    if not saved:
        return FileProgress(ckpt, 0, False)
    position, hashed = _numbers(saved, ckpt.path)
    size = source.path.stat().st_size
    if size < hashed or saved.get("fingerprint") != fingerprint(source.path, hashed):
        state = f"is {size:,} bytes now" if size < hashed else "holds other bytes now"
        raise SourceError(f"{source.path} changed since rows 1-{position:,} were ingested: "
                          f"they were read from its first {hashed:,} bytes, and it {state} "
                          f"(progress in {ckpt.path}), so resuming after row {position:,} would "
                          f"skip or repeat rows; pass --restart to ingest it from the first row "
                          f"(posts already stored are kept once)")
    before, now = saved.get("options"), _options(source)
    if before is not None and before != now:
        changed = [k for k, v in now.items()
                   if not isinstance(before, dict) or before.get(k) != v]
        raise SourceError(
            f"{source.path}: rows 1-{position:,} were read with other {' and '.join(changed)} "
            f"than this run's (progress in {ckpt.path}), so going on would leave them as they "
            f"were read; pass --restart to read the whole file again with these options (posts "
            f"already stored are kept once), or run with the earlier options")
    delivered = sorted(valid_delivered(saved.get("delivered")), key=lambda d: d["topic"] != posts_topic)
    why = lost(delivered) if position and delivered and lost is not None else None
    if why:
        raise SourceError(
            f"{source.path}: the broker no longer holds what this file's progress says was "
            f"delivered (rows 1-{position:,}: {why}; progress in {ckpt.path}): a memory broker "
            f"restarted, or another broker answers at this address? Nothing was sent; pass "
            f"--restart to send the file again from row 1 (the stream stores each post once)")
    return FileProgress(ckpt, position, bool(saved.get("done")), delivered,
                        (hashed, str(saved["fingerprint"])))


def _numbers(saved: Any, path: Path) -> tuple[int, int]:
    """The saved position and the number of bytes its fingerprint covers (64 KiB in progress
    files written before 2026-12-07); a hand-edited file of other types is refused."""
    got = saved if isinstance(saved, dict) else {}
    position, hashed = got.get("position") or 0, got.get("fingerprint_bytes", FINGERPRINT_BYTES)
    if not got or not all(type(n) is int and n >= 0 for n in (position, hashed)):
        raise SourceError(f"progress file {path} is damaged (position {position!r}, "
                          f"fingerprint_bytes {hashed!r}: whole numbers expected); delete it or "
                          f"pass --restart")
    return position, hashed


def _options(source: FileSource) -> dict[str, Any]:
    """What decides how a row is read, as the progress file keeps it (JSON)."""
    return {"format": source.format, "column mapping": source.mapper.mapping,
            "--assume-utc": source.mapper.assume_utc}


def valid_delivered(items: Any) -> Delivered:
    """The well-formed entries of a saved ``delivered`` list (a hand-edited one is ignored)."""
    if not isinstance(items, list):
        return []
    return [d for d in items if isinstance(d, dict) and isinstance(d.get("topic"), str)
            and isinstance(d.get("partition"), int) and isinstance(d.get("offset"), int)
            and isinstance(d.get("digest"), str)]


def merged(before: Delivered, producer: Any) -> Delivered:
    """`before` updated with the higher offsets the `producer` has confirmed since."""
    at = {(d["topic"], d["partition"]): (d["offset"], d["digest"]) for d in before}
    for topic, parts in getattr(producer, "delivered", {}).items():
        for partition, (offset, digest) in parts.items():
            if offset >= at.get((topic, partition), (-1, ""))[0]:
                at[(topic, partition)] = (offset, digest)
    return [{"topic": t, "partition": p, "offset": o, "digest": d}
            for (t, p), (o, d) in sorted(at.items())]


def saver(progress: FileProgress, source: FileSource,
          producer: Any = None) -> Callable[[Position], None]:
    """The `checkpoint` of :func:`~ingest.sources.base.pump` for `source`: it saves the position
    with the offsets `producer` (a PostProducer) has confirmed, called right after its flush."""
    hashed = source.path.stat().st_size  # the file as this run reads it; appended rows are fine
    if progress.checked is not None and progress.checked[0] == hashed:
        fp = progress.checked[1]  # open_progress hashed exactly these bytes
    else:
        if hashed > LARGE_FILE_BYTES:
            LOG.info(f"{source.path}: hashing its {hashed:,} bytes, so a later resume can tell "
                     f"whether it changed")
        fp = fingerprint(source.path, hashed)

    def save(position: Position) -> None:
        if producer is not None:
            progress.delivered = merged(progress.delivered, producer)
        progress.checkpoint.save(position, fingerprint=fp, fingerprint_bytes=hashed,
                                 options=_options(source), path=str(source.path), done=False,
                                 delivered=progress.delivered)
        progress.position = int(position)

    return save


def broker_lost(bootstrap: str, kafka_options: dict[str, Any],
                delivered: Delivered) -> str | None:
    """Why the broker at `bootstrap` no longer holds the `delivered` records (the first
    partition that ends at or before its offset, or holds another value there), or None when it
    holds them or cannot be asked (unreachable, a record pruned or unreadable: the resume goes
    on as before)."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    from ingest.producer import value_digest
    from polarwatch.broker_probe import reader_consumer

    try:
        consumer = reader_consumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                   group_id=None, request_timeout_ms=CONNECT_MS,
                                   bootstrap_timeout_ms=CONNECT_MS,
                                   auto_offset_reset="earliest", **kafka_options)
    except (KafkaError, OSError) as exc:
        LOG.debug(f"confirmed offsets not compared with the broker's: {exc}")
        return None
    try:
        for d in delivered:
            tp, offset = TopicPartition(d["topic"], d["partition"]), d["offset"]
            where = (f"confirmed up to offset {offset:,} of topic {d['topic']!r} partition "
                     f"{d['partition']}")
            parts = consumer.partitions_for_topic(d["topic"]) or set()
            end = _end(consumer, tp) if d["partition"] in parts else 0
            if end <= offset:
                return f"{where}, which now ends at offset {end:,}"
            rec = _record_at(consumer, tp, offset)
            if rec is not None and value_digest(rec.value) != d["digest"]:
                return f"{where}, where the broker now holds another record"
    except (KafkaError, OSError, ValueError, RuntimeError, AssertionError) as exc:
        LOG.debug(f"confirmed offsets not compared with the broker's: {exc}")
    finally:
        consumer.close()
    return None


def _end(consumer: Any, tp: Any) -> int:
    """The next offset of `tp`. Tansu's ListOffsets answers the start of the last batch + 1, so
    the last batch is fetched too (FACTS.md: the workaround, also right on Kafka)."""
    end = int(consumer.end_offsets([tp])[tp])
    last = -1
    consumer.assign([tp])
    if end > 0:
        consumer.seek(tp, end - 1)
        deadline = time.monotonic() + FETCH_WAIT_S
        while last < 0 and time.monotonic() < deadline:
            for rec in consumer.poll(timeout_ms=200).get(tp, []):
                last = max(last, rec.offset)
    return max(end, last + 1, int(consumer.highwater(tp) or 0))


def _record_at(consumer: Any, tp: Any, offset: int) -> Any | None:
    """The record at `offset`, or None when it cannot be had (pruned, too slow)."""
    consumer.assign([tp])
    consumer.seek(tp, offset)
    deadline = time.monotonic() + FETCH_WAIT_S
    while time.monotonic() < deadline:
        for rec in consumer.poll(timeout_ms=200, max_records=1).get(tp, []):
            return rec if rec.offset == offset else None
    return None
