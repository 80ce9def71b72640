"""A Spark Python DataSource streaming reader for Kafka, built on kafka-python.

pyspark's wheel has no Kafka connector and ``--packages`` cannot download here, so this reader
is how Spark consumes the posts topic. Offsets are ``{"<partition>": next_offset}``; Spark keeps
them in its checkpoint, so a restarted query resumes exactly where the last committed batch
ended. Each micro-batch reads one Spark partition per Kafka partition with assign + seek.

Latest offsets: some brokers (the embedded Tansu among them) answer ListOffsets(latest) with the
start of the last record batch + 1 instead of the last offset + 1. :func:`latest_offsets` seeks to
``max(end - 1, 0)``, fetches, and takes ``max(end, last fetched + 1, highwater)`` — correct on both
that broker and real Kafka. An offset that goes *backwards* (broker reset, topic recreated) stops
the query with a clear message instead of silently re-reading or skipping.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)

from polarwatch.broker_probe import reader_consumer
from stream.group_offsets import STREAM_GROUP, GroupCommitter
from stream.kafka_values import decode_value
from stream.record_batches import UnreadableBatch, broker_time_us, past_markers
from stream.record_batches import install as install_batch_guards

SOURCE_NAME = "polarwatch_kafka"
# read_error: why the record could not be read whole (an unpackable record batch, a value over
# MAX_RECORD_BYTES, whose `value` is then cut); value_size: the value's real size in bytes
SCHEMA = ("kafka_partition int, kafka_offset long, broker_ts timestamp, value string, "
          "read_error string, value_size long")
FETCH_STALL_TIMEOUT_S = 60.0  # give up a partition read when no record arrives for this long
# How long the broker may gather a fetch. Real Kafka answers as soon as it has a record, so this
# only bounds a wait at the end of the log. Tansu's s3 storage lists the partition's objects and
# then reads them one by one until this much time has passed, and answers with what it has: at
# 100 ms a partition of 500 batch objects returned nothing at all (a 60 s stall, the soak's
# failure); at 500 ms it read them in 36 s, at 1 s in 15 s, at 2 s in 9 s (benchmarks/README.md).
FETCH_MAX_WAIT_MS = 2000
RANGE_FETCH_BYTES = 8 * 1024 * 1024  # per partition and fetch, reading ranges
# A check of one record asks for one byte: a broker answers with the first record batch whole
# whatever the limit (KIP-74), and no more. With 8 MiB, Tansu's s3 storage read every batch
# object after the offset: a check of a partition of 1,000 one-record batches took 0.17 s at
# its last offset and 2.2 s at its first (1 byte: 0.17 s at any offset); the sink's three
# checks per micro-batch (stream.topic_generation.PostsLife) on two such partitions took 3.3 s,
# 1.2 s with one batch per fetch (benchmarks/posts_checks_speed.py).
ONE_BATCH = 1


class OffsetRegressionError(RuntimeError):
    pass


class TopicMissingError(RuntimeError):
    pass


def regression_message(topic: str, detail: str, gone: bool, checkpoint: str) -> str:
    """Why a stream is refused whose checkpoint read further than the broker's topic ends
    (`detail`: :func:`regressed`; `gone`: the broker has no such topic)."""
    return (f"offsets of topic {topic!r} went backwards ({detail})"
            f"{f' (the broker has no topic {topic!r})' if gone else ''}: the broker was reset "
            f"(memory storage loses its messages on a restart) or the topic recreated. Refusing "
            f"to re-read or skip records. To start over deliberately, run `polarwatch stream "
            f"--reset` (a new checkpoint, {checkpoint}).")


# [broker] security settings as Spark options (Spark lower-cases the keys) → kafka-python
# keywords. The SASL password is not an option (options show in query plans and logs): the
# Python workers read it from PASSWORD_ENV, which the job sets before Spark starts.
SECURITY_OPTIONS = {"securityprotocol": "security_protocol", "saslmechanism": "sasl_mechanism",
                    "saslusername": "sasl_plain_username", "sslcafile": "ssl_cafile"}
PASSWORD_ENV = "POLARWATCH_BROKER_SASL_PASSWORD"


def spark_security_options(kafka_options: dict[str, Any]) -> dict[str, str]:
    """Driver side: the Spark options that carry `kafka_options` (Config.kafka_options), without
    the password."""
    return {opt: str(kafka_options[kw]) for opt, kw in SECURITY_OPTIONS.items()
            if kafka_options.get(kw)}


def security_from_options(options: dict[str, str]) -> dict[str, Any]:
    """Worker side: kafka-python keywords from the (lower-cased) Spark options."""
    out: dict[str, Any] = {kw: options[opt] for opt, kw in SECURITY_OPTIONS.items()
                           if options.get(opt)}
    protocol = out.get("security_protocol", "PLAINTEXT")
    if protocol.endswith("SSL"):
        out["ssl_check_hostname"] = True
    if protocol.startswith("SASL"):
        out["sasl_plain_password"] = os.environ.get(PASSWORD_ENV, "")
    return out


def consumer_for(bootstrap: str, security: dict[str, Any] | None = None, *,
                 fetch_bytes: int = RANGE_FETCH_BYTES) -> Any:
    """A group-less consumer for assign + seek reads of ranges (this source, the dead-letter
    drain); `security`: kafka-python keywords of [broker]'s security settings. `fetch_bytes`
    bounds what one fetch reads per partition (:data:`ONE_BATCH` where records are compared
    or the last batch is read, not ranges)."""
    install_batch_guards()
    limits = {"max_partition_fetch_bytes": fetch_bytes}
    if fetch_bytes < RANGE_FETCH_BYTES:  # Tansu bounds a fetch by the request's limit only
        limits["fetch_max_bytes"] = fetch_bytes
    return reader_consumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                           group_id=None, request_timeout_ms=30000,
                           fetch_max_wait_ms=FETCH_MAX_WAIT_MS, **limits, **(security or {}))


def latest_offsets(consumer: Any, topic: str) -> dict[str, int]:
    """Next offset to be written, per partition (workaround for the wrong ListOffsets answer)."""
    from kafka import TopicPartition

    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise TopicMissingError(f"Kafka topic {topic!r} does not exist; create it with "
                           f"`polarwatch ingest` or `polarwatch broker start`")
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    ends = consumer.end_offsets(tps)
    result = {}
    for tp in tps:
        end = int(ends[tp])
        if end > 0:
            consumer.assign([tp])
            consumer.seek(tp, end - 1)
            last = -1
            deadline = time.monotonic() + 5.0
            while last < 0 and time.monotonic() < deadline:
                try:
                    for rec in consumer.poll(timeout_ms=500).get(tp, []):
                        last = max(last, rec.offset)
                except UnreadableBatch as bad:  # the last batch cannot be read: it ends there
                    last = max(last, bad.after - 1)  # (the reader dead-letters it)
                if last < 0 and past_markers(consumer, tp, end - 1, end) == end:
                    last = end - 1  # a transaction's marker: no record comes (it waited 5 s)
            end = max(end, last + 1, int(consumer.highwater(tp) or 0))
        result[str(tp.partition)] = end
    return result


def regressed(read: dict[str, int], ends: dict[str, int]) -> str:
    """The partitions whose end on the broker lies before the offset already read, as
    "partition 0: checkpoint at 9, broker at 0, …" ("" when none did)."""
    behind = {p: (o, ends.get(p, 0)) for p, o in read.items() if ends.get(p, 0) < o}
    return ", ".join(f"partition {p}: checkpoint at {o}, broker at {e}"
                     for p, (o, e) in sorted(behind.items(), key=lambda i: int(i[0])))


def cap_offsets(start: dict[str, int], end: dict[str, int], budget: int) -> dict[str, int]:
    """Spend a row budget across partitions in proportion to what each has left, so that
    partitions move through a backlog together (roughly in step in event time: one partition
    racing ahead would push the watermark past the others' posts and make them late)."""
    left = {p: max(end[p] - start[p], 0) for p in end}
    total = sum(left.values())
    if total <= budget:
        return dict(end)
    take = {p: left[p] * budget // total for p in end}
    spare = budget - sum(take.values())
    for p in sorted(end, key=lambda q: left[q] - take[q], reverse=True):  # rounding leftovers
        if spare == 0:
            break
        if take[p] < left[p]:
            take[p] += 1
            spare -= 1
    return {p: start[p] + take[p] for p in end}


class KafkaRange(InputPartition):
    def __init__(self, partition: int, start: int, end: int) -> None:
        self.partition, self.start, self.end = partition, start, end


class KafkaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    def __init__(self, options: dict[str, str]) -> None:
        options = {k.lower(): v for k, v in options.items()}  # Spark lower-cases option keys
        self.bootstrap = options["bootstrap"]
        self.topic = options["topic"]
        self.max_rows = int(options.get("maxrecordspertrigger", "0"))
        self.checkpoint = options.get("checkpoint", "")  # where the sink marks its last posts
        self.options = options  # the password is read from the environment where it is used
        self.committer = GroupCommitter(self.bootstrap, options.get("group", STREAM_GROUP),
                                        self.topic, security_from_options(options))
        self._consumer: Any = None
        self._target: dict[str, int] | None = None  # set by Trigger.AvailableNow
        self._last_latest: dict[str, int] | None = None  # for lag in progress reports

    def _latest(self) -> dict[str, int]:
        if self._consumer is None:  # reads the last batches and the marks, no ranges
            self._consumer = consumer_for(self.bootstrap, security_from_options(self.options),
                                          fetch_bytes=ONE_BATCH)
        self._last_latest = latest_offsets(self._consumer, self.topic)
        return self._last_latest

    def reportLatestOffset(self) -> dict | None:
        return self._last_latest

    def initialOffset(self) -> dict:
        return {p: 0 for p in self._latest()}

    def getDefaultReadLimit(self) -> ReadLimit:
        return ReadMaxRows(self.max_rows) if self.max_rows > 0 else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        self._target = self._latest()

    def latestOffset(self, start: dict, limit: ReadLimit) -> dict:
        try:
            latest = self._target if self._target is not None else self._latest()
        except TopicMissingError:  # gone while the stream runs: a broker restarted empty
            if not any(start.values()):
                raise
            latest = {}
        detail = regressed(start, latest)
        if detail:
            raise OffsetRegressionError(regression_message(self.topic, detail, not latest,
                                                           self.checkpoint))
        end = dict(latest)
        start = {p: start.get(p, 0) for p in end}
        if any(end[p] > start[p] for p in end):
            self._check_life()
        if isinstance(limit, ReadMaxRows):
            return cap_offsets(start, end, limit.max_rows)
        return end

    def _check_life(self) -> None:
        """Before a batch is planned: refuse a topic begun again with more records than this
        checkpoint had read (a broker restarted while the query runs, or between a failed
        query and its supervised restart; the start of `stream` is checked by
        stream/preflight.py), by the last posts the sink marked beside the checkpoint. A record
        that cannot be fetched or read says nothing."""
        from stream.topic_generation import begun_again_message, load_last_read, posts_begun_again

        marks = load_last_read(Path(self.checkpoint), self.topic) if self.checkpoint else {}
        other = posts_begun_again(self._consumer, self.topic, marks) if marks else None
        if other:
            raise OffsetRegressionError(begun_again_message(self.topic, other, self.checkpoint))

    def partitions(self, start: dict, end: dict) -> Sequence[InputPartition]:
        return [KafkaRange(int(p), int(start.get(p, 0)), int(end[p]))
                for p in sorted(end, key=int) if int(end[p]) > int(start.get(p, 0))]

    def read(self, partition: InputPartition) -> Iterator[Any]:
        assert isinstance(partition, KafkaRange)
        yield from read_range_arrow(self.bootstrap, self.topic, partition.partition,
                                    partition.start, partition.end,
                                    security_from_options(self.options))

    def commit(self, end: dict) -> None:
        """Spark has stored the batch ending at `end` (the sink committed it to DuckDB before):
        report it to the consumer group, for broker retention only (see GroupCommitter)."""
        self.committer.commit(end)

    def stop(self) -> None:
        self.committer.close()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


ARROW_BATCH_ROWS = 10_000  # rows per Arrow record batch handed to Spark


def read_range(bootstrap: str, topic: str, partition: int, start: int,
               end: int) -> Iterator[tuple]:
    """Yield (partition, offset, broker timestamp, value) for offsets in [start, end)."""
    for batch in read_range_arrow(bootstrap, topic, partition, start, end):
        cols = batch.to_pydict()
        yield from zip(cols["kafka_partition"], cols["kafka_offset"], cols["broker_ts"],
                       cols["value"], strict=True)


def read_range_arrow(bootstrap: str, topic: str, partition: int, start: int,
                     end: int, security: dict[str, Any] | None = None) -> Iterator[Any]:
    """Offsets [start, end) of one partition as pyarrow RecordBatches (columns of SCHEMA).

    Arrow batches skip Spark's per-row Python → JVM conversion, which is what tuples cost. A
    record batch that cannot be unpacked (stream.record_batches) yields one row with its reason
    at its first offset in range, and the read goes on after it.
    """
    import pyarrow as pa
    from kafka import TopicPartition

    schema = pa.schema([("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()),
                        ("broker_ts", pa.timestamp("us", tz="UTC")), ("value", pa.string()),
                        ("read_error", pa.string()), ("value_size", pa.int64())])
    consumer = consumer_for(bootstrap, security)
    tp = TopicPartition(topic, partition)
    offsets: list[int] = []
    stamps: list[int] = []
    values: list[str] = []
    errors: list[str | None] = []
    sizes: list[int | None] = []
    columns: tuple[list[Any], ...] = (offsets, stamps, values, errors, sizes)

    def add(*row: Any) -> None:
        for column, value in zip(columns, row, strict=True):
            column.append(value)

    def flush() -> Any:
        out = pa.RecordBatch.from_arrays(
            [pa.array([partition] * len(offsets), pa.int32()), pa.array(offsets, pa.int64()),
             pa.array(stamps, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
             pa.array(values, pa.string()), pa.array(errors, pa.string()),
             pa.array(sizes, pa.int64())], schema=schema)
        for column in columns:
            column.clear()
        return out

    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        nxt = start
        last_progress = time.monotonic()
        while nxt < end:
            try:
                batch = consumer.poll(timeout_ms=500, max_records=10000).get(tp, [])
            except UnreadableBatch as bad:
                at, nxt = bad.skip(consumer, tp, nxt, end)
                add(at, int(time.time() * 1e6), "", bad.describe(), None)
                last_progress = time.monotonic()
                continue
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > FETCH_STALL_TIMEOUT_S:
                raise TimeoutError(f"no records from {topic}[{partition}] at offset {nxt} for "
                                   f"{FETCH_STALL_TIMEOUT_S:.0f} s (wanted up to {end})")
            for rec in batch:
                if rec.offset < nxt:
                    continue  # a compressed batch may start before the requested offset
                if rec.offset >= end:
                    nxt = end
                    break
                add(rec.offset, broker_time_us(rec.timestamp), *decode_value(rec.value))
                nxt = rec.offset + 1
            moved = past_markers(consumer, tp, nxt, end)
            if moved > nxt:
                nxt, last_progress = moved, time.monotonic()
            if len(offsets) >= ARROW_BATCH_ROWS:
                yield flush()
        if offsets:
            yield flush()
    finally:
        consumer.close()


class KafkaDataSource(DataSource):
    """``spark.readStream.format("polarwatch_kafka").option("bootstrap", ...).option("topic",
    ...)``; optional ``maxRecordsPerTrigger``."""

    @classmethod
    def name(cls) -> str:
        return SOURCE_NAME

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: Any) -> DataSourceStreamReader:
        for key in ("bootstrap", "topic"):
            if key not in self.options:
                raise ValueError(f"polarwatch_kafka source needs the option {key!r}")
        return KafkaStreamReader(dict(self.options))
