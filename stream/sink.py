"""The DuckDB sink of the stream: one transaction per micro-batch, keyed by batch id.

For each micro-batch the sink, in *one* DuckDB transaction:
1. skips the batch when ``(query, batch_id)`` is already in ``stream_batches`` (a replay after a
   crash between the DuckDB commit and Spark's own commit);
2. stores dead letters (topic, partition, offset, reason, raw value cut to
   ``MAX_DEAD_LETTER_BYTES`` with its original size): the records the stream's parser rejected,
   and a chunk of the ingest rejects that arrived on the dead-letter topic since the last batch
   (:class:`stream.dead_letters.DeadLetterDrain`), so every rejected record ends in one table
   (the rest: :meth:`DuckDBSink.store_ingest_dead_letters`, between micro-batches);
3. stores labeled posts, each (platform, id) once: the first version seen is kept, an exact
   copy is a duplicate, and a copy with other content is a dead letter naming what differs
   (:mod:`stream.resends`);
4. labels the agreement of every reply whose parent is now known and scores the pair with the
   paper's rule table — the reply or the parent may be in this batch, so replies that arrived
   before their parent are scored when it comes (:mod:`stream.pairing`: a reply meets its parent
   once, here, never in the labelling stage);
5. recomputes the per-topic event-time windows touched by this batch;
6. with ``[warehouse] keep_days`` set, prunes old rows (:func:`polarwatch.warehouse.prune`)
   in the first batch and then at most once every PRUNE_EVERY_S;
7. records the batch marker.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from polarwatch.ddl import post_columns
from polarwatch.fields import parse_duration
from polarwatch.warehouse import (
    connect,
    event_clock_sql,
    init_schema,
    orphans_sql,
    prune,
    scalar,
    transaction,
)
from scoring.rules import EXTREME_THRESHOLD
from stream.dead_letters import COLUMNS as DEAD_LETTER_COLUMNS
from stream.dead_letters import GENERATION_COLUMN, KEY_COLUMN, DeadLetterDrain
from stream.pairing import Labeler, lexicon_labeler, score_new_pairs
from stream.resends import split_resends
from stream.topic_generation import PostsLife, load_last_read, row_marks, save_last_read
from stream.windows import update_windows

LOG = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0  # retention runs in the first batch, then at most once an hour
CRASH_ENV = "POLARWATCH_CRASH_AT"
STOPPING = "polarwatch is stopping the stream"  # a batch refused at the door says this


class StreamStopping(RuntimeError):
    """A micro-batch arrived after :meth:`DuckDBSink.drain`: not started, replayed on restart."""


def crash_point(where: str, batch_id: int) -> None:
    """Fault injection for the recovery tests: with ``POLARWATCH_CRASH_AT=before_commit:2`` (or
    ``after_commit:2``) the driver kills itself with SIGKILL at that point of batch 2, exactly
    as ``kill -9`` would. Unset (always, outside tests) it does nothing."""
    if os.environ.get(CRASH_ENV) == f"{where}:{batch_id}":
        os.kill(os.getpid(), signal.SIGKILL)


def interval_sql(span: str) -> str:
    """A duration in the one grammar (:func:`polarwatch.fields.parse_duration`: ``1 hour``,
    ``5m``, …) as a DuckDB INTERVAL expression."""
    micros = parse_duration(span) // timedelta(microseconds=1)
    return f"to_microseconds({micros})"


@dataclass
class BatchResult:
    batch_id: int
    skipped: bool
    posts: int = 0
    duplicates: int = 0  # exact copies of a post already kept
    dead: int = 0  # parser rejects + conflicts: posts + dead + duplicates = rows of the batch
    conflicts: int = 0  # of which: an id again with other content (stream.resends)
    ingest_dead: int = 0  # drained from the ingest dead-letter topic
    interactions: int = 0
    windows: int = 0
    late: int = 0
    pruned: int = 0  # rows deleted by retention ([warehouse] keep_days) in this batch
    seconds: float = 0.0

    def summary(self) -> str:
        """The batch's progress line."""
        if self.skipped:
            return f"batch {self.batch_id}: already committed, skipped (replay)"
        rate = (self.posts + self.dead) / self.seconds if self.seconds else 0.0
        resent = (f" ({self.conflicts} of them an id sent again with other content)"
                  if self.conflicts else "")
        return (f"batch {self.batch_id}: {self.posts:,} posts stored, {self.dead} dead-lettered"
                f"{resent} (+{self.ingest_dead} from ingest), {self.duplicates} duplicates, "
                f"{self.late} late, {self.interactions:,} interactions, {self.windows} windows updated, "
                f"sink {self.seconds:.2f} s ({rate:,.0f} rows/s)")


def _latency_quantiles(pdf: pd.DataFrame, now: datetime) -> list[float | None]:
    """p50/p95 seconds from created_at and from the broker timestamp to this commit."""
    out: list[float | None] = []
    for col in ("created_at", "broker_ts"):
        ts = pd.to_datetime(pdf[col], utc=True).dropna() if col in pdf else pd.Series([])
        if ts.empty:
            out += [None, None]
            continue
        secs = (pd.Timestamp(now) - ts).dt.total_seconds()
        out += [float(secs.quantile(0.5)), float(secs.quantile(0.95))]
    return out


def write_lake(con: Any, lake_dir: Path, name: str, columns: list[str]) -> None:
    """Copy this batch's *new* posts (temp table ``new_post_ids``: not stored before) as stored
    now — replies paired in this batch carry their agreement — to Parquet under
    ``posts/topic=…/date=…/part-<name>-<i>.parquet``.

    Runs inside the batch's DuckDB transaction, before its commit: a replayed batch (same query,
    same batch id, same offsets) rewrites the same file names, so the lake holds each post once.
    A reply whose parent comes in a later batch keeps ``agreement = NULL`` in the lake (files are
    never rewritten); ``posts`` in DuckDB has the label.
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    target = str(lake_dir / "posts").replace("'", "''")
    if not scalar(con, "SELECT count(*) FROM new_post_ids"):
        return
    lake_dir.mkdir(parents=True, exist_ok=True)
    col_list = ", ".join(f'"{c}"' for c in columns)
    con.execute(f"""
        COPY (SELECT {col_list}, strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%d') AS date
              FROM posts SEMI JOIN new_post_ids USING (platform, id))
        TO '{target}' (FORMAT parquet, PARTITION_BY (topic, date),
                       FILENAME_PATTERN 'part-{safe}-{{i}}', OVERWRITE_OR_IGNORE true)""")


class DuckDBSink:
    """``foreachBatch`` target. `query` names the stream in the batch-marker table.

    When `checkpoint_dir` is given, the marker key also carries the id Spark stores in the
    checkpoint, so a fresh checkpoint (batch ids restart at 0) is never mistaken for a replay.
    """

    def __init__(self, path: str | Path, query: str, source_topic: str, window: str = "1 hour",
                 extreme_threshold: float = EXTREME_THRESHOLD, checkpoint_dir: str | Path | None = None,
                 lake_dir: str | Path | None = None, watermark: str = "1 day",
                 orphan_horizon: str = "1 day",
                 dead_letters: DeadLetterDrain | None = None, keep_days: float = 0.0,
                 prune_every_s: float = PRUNE_EVERY_S, labeler: Labeler | None = None,
                 posts_life: PostsLife | None = None) -> None:
        self.path, self.query, self.source_topic = Path(path), query, source_topic
        # labels a reply's agreement with its parent when the pair is complete (stream.pairing)
        self.labeler = labeler or lexicon_labeler()
        self.dead_letters = dead_letters
        self.keep_days, self.prune_every_s = keep_days, prune_every_s
        self._last_prune: float | None = None
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._last_read: dict[int, tuple[int, str, str]] | None = None  # topic_generation
        self.posts_life = posts_life  # compares the broker with a batch before its commit
        self.lake_dir = Path(lake_dir) if lake_dir else None
        self.interval = interval_sql(window)
        self.extreme_threshold = extreme_threshold
        self.watermark = parse_duration(watermark)
        init_schema(self.path)
        with connect(self.path) as con:
            con.execute("CREATE OR REPLACE VIEW orphans AS "
                        + orphans_sql(interval_sql(orphan_horizon)))
        # Stopping between micro-batches (stream.job.stop_between_batches): a batch runs holding
        # the gate, and one that arrives after drain() is refused before it starts a Spark job
        self._gate = threading.Lock()
        self._closing = False
        self._knock = threading.Event()  # a micro-batch waits for the gate: drains yield to it
        self.started: int | None = None  # the last batch this sink began
        self.last_batch: int | None = None  # the last batch this sink wrote (or skipped)

    def __call__(self, df: Any, batch_id: int) -> None:
        """Spark entry point: collect the micro-batch to pandas (Arrow) and write it."""
        self._knock.set()
        with self._gate:
            self._knock.clear()
            if self._closing:
                raise StreamStopping(f"batch {batch_id} not started: {STOPPING}; it runs "
                                     f"again from the checkpoint when the stream restarts")
            self.started = batch_id
            if self.checkpoint_dir is not None and "@" not in self.query:
                meta = (self.checkpoint_dir / "metadata").read_text().splitlines()[0]
                self.query = f"{self.query}@{json.loads(meta)['id']}"
            self.write(df.toPandas(), batch_id)
            self.last_batch = batch_id

    @property
    def busy(self) -> bool:
        """A micro-batch is being written now."""
        return self._gate.locked()

    def drain(self, timeout: float) -> bool:
        """Refuse every batch that arrives from now on and wait up to `timeout` seconds for the
        one in hand to finish. True: no batch is running any more."""
        self._closing = True
        if not self._gate.acquire(timeout=timeout):
            return False
        # released before the query stops: stop() waits for the batch callback in hand, and one
        # blocked on a held gate would never return
        self._gate.release()
        return True

    def close(self) -> None:
        """Close the Kafka clients this sink opened (the dead-letter drain's reader and group
        committer, the posts-topic check); a later call opens them again. Call it with no batch
        running (after :meth:`drain`)."""
        for clients in (self.dead_letters, self.posts_life):
            if clients is not None:
                clients.close()

    def store_ingest_dead_letters(self, *, wait: bool = True,
                                  stopping: Callable[[], bool] = lambda: False) -> int:
        """Store the ingest dead letters not stored yet, to the end of the dead-letter topic,
        outside any micro-batch: chunk by chunk (at most the drain's ``max_records`` and
        ``max_bytes`` in memory), each in its own transaction, with the same offset resume and
        key de-duplication as a batch's chunk (exactly once). It holds the gate for one chunk at
        a time and gives way to a micro-batch that waits for it; with `wait` False it begins no
        chunk while a batch runs (the next call goes on). It stops at the topic's end as it was
        when the call began (dead letters arriving meanwhile are the next call's: a steady
        stream of them kept a run's final drain going), at a stop of the stream
        (:meth:`drain`) or when `stopping()`. Returns how many rows it stored."""
        drain, stored = self.dead_letters, 0
        if drain is None or self._closing:  # a stopped sink: no client opened again
            return 0
        target = drain.ends()
        while not (self._closing or stopping() or self._knock.is_set()):
            if not self._gate.acquire(blocking=wait):
                break
            try:
                if self._closing:
                    break
                before = drain.position
                rows = drain.fetch(self.path, datetime.now(UTC), target)
                if len(rows):
                    try:
                        with transaction(self.path) as con:
                            self._store_dead(con, rows)
                    except BaseException:
                        drain.forget()
                        raise
                drain.advance(rows)
                stored += len(rows)
                now = drain.position or {}
                if now == before or (target is not None and all(  # no progress, or the end
                        now.get(p, 0) >= end for p, end in target.items())):
                    break
            finally:
                self._gate.release()
        return stored

    def write(self, pdf: pd.DataFrame, batch_id: int) -> BatchResult:
        t0 = time.perf_counter()
        for col in ("created_at", "broker_ts"):  # Spark's toPandas drops the zone: it is UTC
            if col in pdf:
                pdf[col] = pd.to_datetime(pdf[col], utc=True)
        res = BatchResult(batch_id, skipped=False)
        if self._last_read is None:  # the checkpoint's last posts, read once per sink
            self._last_read = ({} if self.checkpoint_dir is None else
                               load_last_read(self.checkpoint_dir, self.source_topic))
        marked = row_marks(pdf)  # what the batch read, per partition and offset
        if self.posts_life is not None:  # read from the topic it was planned on?
            self.posts_life.check(marked, self._last_read)
        drain = self.dead_letters
        drained = drain.fetch(self.path, datetime.now(UTC)) if drain is not None else None
        try:
            with transaction(self.path) as con:
                # a replay of a batch this sink committed: say so, store nothing
                res.skipped = bool(scalar(
                    con, "SELECT count(*) FROM stream_batches WHERE query = ? AND batch_id = ?",
                    [self.query, batch_id]))
                if not res.skipped:
                    self._write_batch(con, pdf, batch_id, res, drained)
                    crash_point("before_commit", batch_id)
        except BaseException:
            if drain is not None:
                drain.forget()
            raise
        if res.skipped:
            LOG.info(res.summary())
            return res
        if drain is not None and drained is not None:
            drain.advance(drained)
        if self.checkpoint_dir is not None:  # what `stream` compares with the broker at start
            save_last_read(self.checkpoint_dir, self.source_topic, marked, self._last_read)
        crash_point("after_commit", batch_id)
        res.seconds = time.perf_counter() - t0
        LOG.info(res.summary())
        return res

    def _write_batch(self, con: Any, pdf: pd.DataFrame, batch_id: int, res: BatchResult,
                     drained: pd.DataFrame | None = None) -> None:
        now = datetime.now(UTC)
        dead = pdf[pdf["dead_reason"].notna()]
        if len(dead):
            self._store_dead(con, pd.DataFrame({
                "source_topic": self.source_topic, "kafka_partition": dead["kafka_partition"],
                "kafka_offset": dead["kafka_offset"], "reason": dead["dead_reason"],
                "raw": dead["raw"], "seen_at": now, "source": "stream",
                "raw_size": dead.get("raw_size"),
                "rejected_at": now}))
        res.dead = len(dead)
        if drained is not None and len(drained):  # ingest rejects, fetched before BEGIN
            self._store_dead(con, drained)
            res.ingest_dead = len(drained)

        valid = pdf[pdf["dead_reason"].isna()].assign(ingested_at=now)
        # temp tables post_batch (what is stored now) and new_post_ids
        conflicts = split_resends(con, valid, self.source_topic, now)
        if len(conflicts):
            self._store_dead(con, conflicts)
        res.conflicts = len(conflicts)
        res.dead += res.conflicts
        cols = [name for name, _ in post_columns()]
        before = scalar(con, "SELECT count(*) FROM posts")
        # per topic, from the stored posts before this batch: a topic's late data, or one post
        # with a forged date, does not move another's (or its own) windows to final
        con.execute(f"CREATE OR REPLACE TEMP TABLE topic_watermarks AS SELECT topic, "
                    f"newest - ?::INTERVAL AS watermark FROM ({event_clock_sql(by_topic=True)})",
                    [self.watermark])
        # late: in a window that ended before its topic's watermark, which stream.windows
        # leaves final (a post behind the watermark in a window still open is counted there)
        iv = self.interval
        res.late = int(scalar(con, "SELECT count(*) FROM post_batch b JOIN topic_watermarks w "
                                   f"USING (topic) WHERE time_bucket({iv}, b.created_at) + {iv} "
                                   "<= w.watermark"))
        col_list = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"INSERT OR IGNORE INTO posts ({col_list}) SELECT {col_list} FROM post_batch")
        after = scalar(con, "SELECT count(*) FROM posts")
        res.posts = after - before
        res.duplicates = len(valid) - res.posts - res.conflicts

        res.interactions = score_new_pairs(con, self.labeler)
        if self.lake_dir is not None:
            write_lake(con, self.lake_dir, f"{self.query}-{batch_id}", cols)
        con.execute("DROP TABLE new_post_ids")
        if self.keep_days > 0 and (self._last_prune is None or
                                   time.monotonic() - self._last_prune >= self.prune_every_s):
            res.pruned = sum(prune(con, self.keep_days, now).values())
            self._last_prune = time.monotonic()
        res.windows = update_windows(con, self.interval, self.extreme_threshold, now)
        con.execute("DROP TABLE post_batch")
        latency = _latency_quantiles(pdf, now)
        con.execute("INSERT INTO stream_batches (query, batch_id, n_posts, n_dead, n_interactions, "
                    "committed_at, latency_created_p50_s, latency_created_p95_s, "
                    "latency_broker_p50_s, latency_broker_p95_s, n_late) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [self.query, batch_id, res.posts, res.dead, res.interactions, now, *latency,
                     res.late])

    @staticmethod
    def _store_dead(con: Any, rows: pd.DataFrame) -> None:
        # an ingest dead letter's key (stream/dead_letters.py) in the same transaction as its row
        names = [c for c in (*DEAD_LETTER_COLUMNS, KEY_COLUMN, GENERATION_COLUMN) if c in rows]
        cols = ", ".join(f'"{c}"' for c in names)
        con.register("dl_batch", rows[names])
        con.execute(f"INSERT OR IGNORE INTO dead_letters ({cols}) SELECT {cols} FROM dl_batch")
        con.unregister("dl_batch")
