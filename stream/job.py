"""The Spark Structured Streaming job: Kafka → label (mapInPandas) → DuckDB (foreachBatch).

A thin driver over :mod:`stream.kafka_source`, :mod:`stream.udfs` and :mod:`stream.sink`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import threading
import time
from datetime import timedelta
from typing import Any

from polarwatch.config import Config
from polarwatch.console import INTERRUPTED, STOP, SignalHold
from polarwatch.warehouse import require_file_path
from stream.dead_letters import DeadLetterDrain, IdleDrainer
from stream.heartbeat import HeartbeatWriter
from stream.preflight import check_backend, check_broker, check_lake, check_offsets
from stream.session import build_spark, check_java, master_in_effect
from stream.sink import DuckDBSink
from stream.supervise import MAX_RESTARTS_DRAIN, cause, supervise
from stream.topic_generation import PostsLife
from stream.udfs import LabelStage, output_ddl

LOG = logging.getLogger(__name__)

QUERY_NAME = "polarwatch_posts"
# Ctrl-C or a stop waits this long for the micro-batch in hand before cutting it (a cut batch is
# safe, only loud: it is replayed on restart and the sink's marker keeps it exactly-once)
STOP_GRACE_S = 60.0
_SINKS: dict[str, DuckDBSink] = {}  # query id -> its sink, until the query is released


def start_stream(spark: Any, cfg: Config, *, available_now: bool = True, reset: bool = False,
                 backend: str | None = None, heartbeat: HeartbeatWriter | None = None) -> Any:
    """Start the streaming query; returns the StreamingQuery. `heartbeat` hears of every
    micro-batch the sink finishes (its id and time go into the next beat)."""
    from stream.kafka_source import spark_security_options

    ckpt = cfg.checkpoint_dir / QUERY_NAME
    if reset and ckpt.exists():
        shutil.rmtree(ckpt)
        LOG.info(f"removed checkpoint {ckpt}: the stream starts over from the topic's first "
                 f"offset")
    stage = LabelStage(backend=backend or cfg.extractor.backend,
                       fallback=tuple(cfg.extractor.fallback), topics=tuple(cfg.load_topics()),
                       settings=cfg.extractor_settings,
                       max_future_skew=timedelta(hours=cfg.ingest.max_future_skew_hours))
    sink = DuckDBSink(cfg.warehouse_path, QUERY_NAME, cfg.topics.posts,
                      window=cfg.aggregate.window,
                      extreme_threshold=cfg.aggregate.extreme_threshold,
                      watermark=cfg.aggregate.watermark,
                      orphan_horizon=cfg.aggregate.orphan_horizon,
                      checkpoint_dir=ckpt,
                      lake_dir=cfg.path(cfg.warehouse.lake_dir) if cfg.warehouse.lake_dir else None,
                      dead_letters=DeadLetterDrain(cfg.broker.bootstrap_servers,
                                                   cfg.topics.dead_letter,
                                                   security=cfg.kafka_options()),
                      keep_days=cfg.warehouse.keep_days, labeler=stage.extract,
                      posts_life=PostsLife(cfg.broker.bootstrap_servers, cfg.topics.posts, ckpt,
                                           cfg.kafka_options()))
    reader = (spark.readStream.format("polarwatch_kafka")
              .option("bootstrap", cfg.broker.bootstrap_servers)
              .option("topic", cfg.topics.posts)
              .option("maxRecordsPerTrigger", str(cfg.spark.max_records_per_trigger))
              .option("checkpoint", str(ckpt))  # the sink's last posts, compared each batch
              .options(**spark_security_options(cfg.kafka_options())))
    labeled = reader.load().mapInPandas(stage, output_ddl())
    writer = (labeled.writeStream.queryName(QUERY_NAME)
              .foreachBatch(sink if heartbeat is None else heartbeat.timed(sink))
              .option("checkpointLocation", str(ckpt)))
    if available_now:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{cfg.spark.trigger_seconds} seconds")
    query = writer.start()
    _SINKS[query.id] = sink
    return query


def _quiet_stream_errors() -> None:
    """Spark's streaming loggers print a query's failure as an ERROR with a Java and a Python
    stack trace: a batch the sink refuses at a stop (StreamStopping inside foreachBatch), an
    offset regression (a broker restarted with memory storage). They are switched off; the
    failure still reaches the driver as an exception, which the supervisor (stream/supervise.py)
    says in one line. -v keeps them."""
    if LOG.isEnabledFor(logging.DEBUG):
        return
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    if jvm is None:
        return
    with contextlib.suppress(Exception):  # a JVM already gone (SIGTERM to the group)
        jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(
            "org.apache.spark.sql.execution.streaming", jvm.org.apache.logging.log4j.Level.OFF)


def stop_between_batches(query: Any, grace: float = STOP_GRACE_S) -> None:
    """Stop `query` after its micro-batch in hand, not inside it.

    ``query.stop()`` alone cancels the batch's Spark job mid-flight: nothing is lost (the batch
    is replayed on restart), but Spark prints about a thousand lines of Java stack traces. Here
    the sink first refuses any batch that has not started and the stop waits up to `grace`
    seconds for the running one; a second Ctrl-C stops at once.
    """
    sink = _SINKS.get(query.id)
    if sink is not None and query.isActive:
        _quiet_stream_errors()
        try:
            if not sink.drain(0.0):
                again = ("" if STOP.is_set() else
                         "; Ctrl-C again stops it now, it is then replayed on restart")
                LOG.info(f"{'SIGTERM: ' if STOP.is_set() else ''}stopping the stream after "
                         f"the micro-batch in hand (up to {grace:g} s{again})")
                if not sink.drain(grace):
                    LOG.warning(f"the micro-batch was still running after {grace:g} s: "
                                f"stopping it now (it is replayed on restart)")
        except KeyboardInterrupt:
            LOG.info("stopping the stream now (the cut micro-batch is replayed on restart)")
    query.stop()
    release(query, 0.0)  # waited above: a batch cut by Ctrl-C must not hold the stop again


def release(query: Any, grace: float = STOP_GRACE_S) -> None:
    """Forget a stopped `query`'s sink and close the Kafka clients it opened. They were kept
    until the process exited: a process running many streams (the tests, a supervisor's
    restarts) kept a client per stream, reconnecting to brokers long gone. A sink still
    writing after `grace` seconds keeps its clients (they close when it is collected)."""
    sink = _SINKS.pop(query.id, None)
    if sink is not None and sink.drain(grace):
        sink.close()


def run_stream(cfg: Config, *, available_now: bool = True, reset: bool = False,
               timeout: float | None = None, backend: str | None = None,
               spark: Any = None) -> None:
    """Run the stream until the topic is drained (`available_now`) or until interrupted, with
    its heartbeat beside the warehouse (stream/heartbeat.py) from start to end: ``stopped``
    and why when it ends cleanly, ``failed`` and the cause when it raises.

    Called in the main thread it holds SIGTERM and Ctrl-C (polarwatch.console.SignalHold): they
    stop the stream between micro-batches (Ctrl-C then returns; SIGTERM raises SystemExit(143)
    once everything is stopped). After SIGTERM an error of the ending stream (Spark's JVM ends
    too when the whole process group is signalled) is no failure: it is logged with -v only."""
    cfg.load_topics()  # a missing or broken topics.toml: its ConfigError now, before Spark starts
    require_file_path(cfg.warehouse_path)  # a directory ([warehouse] path = ""): one line now
    check_lake(cfg)  # a file where the Parquet lake goes: the same
    check_backend(cfg, backend)  # a damaged head file, an unwritable encoder cache: one line
    check_java()  # what to install comes before what to start
    check_broker(cfg)  # no broker: one line in seconds, not minutes of supervised restarts
    if not reset:  # a broker that lost what the checkpoint read: one line, before Spark starts
        check_offsets(cfg, cfg.checkpoint_dir / QUERY_NAME)
    beat = HeartbeatWriter(cfg.warehouse_path).start()
    state, why = "failed", "it ended without saying why"
    with SignalHold() as hold:
        try:
            interrupted = _run_supervised(cfg, beat, hold, available_now=available_now,
                                          reset=reset, timeout=timeout, backend=backend,
                                          spark=spark)
            state, why = "stopped", ("terminated (SIGTERM)" if STOP.is_set()
                                     else "interrupted (Ctrl-C)" if interrupted
                                     else "the topic was drained" if available_now
                                     else "its query was stopped")
        except KeyboardInterrupt:
            state, why = "stopped", "interrupted (Ctrl-C)"
            raise
        except SystemExit:  # polarwatch.cli turns SIGTERM into SystemExit (when not held)
            state, why = ("stopped", "terminated (SIGTERM)" if STOP.is_set()
                          else "the process exited")
            raise
        except BaseException as exc:
            if not STOP.is_set():
                why = cause(exc)
                raise
            state, why = "stopped", "terminated (SIGTERM)"  # the JVM it also ended answers no more
            LOG.debug(f"the stream's error after SIGTERM: {cause(exc)}")
        finally:
            beat.close(state, why)
    if hold.held and STOP.is_set():
        LOG.info("stopped on SIGTERM; `polarwatch stream` resumes from the checkpoint")
        raise SystemExit(128 + signal.SIGTERM)


def _run_supervised(cfg: Config, beat: HeartbeatWriter, hold: SignalHold, *,
                    available_now: bool, reset: bool, timeout: float | None,
                    backend: str | None, spark: Any) -> bool:
    """:func:`run_stream`'s work; True when Ctrl-C ended it."""
    from stream.kafka_source import PASSWORD_ENV

    t0 = time.monotonic()
    password = cfg.broker.sasl_password.get_secret_value()
    if password and cfg.broker.security_protocol.startswith("SASL"):
        # the source's Python workers read it from here (Spark options would show it)
        os.environ.setdefault(PASSWORD_ENV, password)
    own = spark is None
    if own:
        master, given = master_in_effect(cfg.spark.master)
        LOG.info(f"starting Spark ({master}{'' if given is None else ', from spark-submit'}) …")
        spark = build_spark(cfg.spark.master, quiet_after_sigterm=hold.held,
                            explicit_master="master" in cfg.spark.model_fields_set)
        hold.claim()  # the SparkContext installed its own Ctrl-C handler (py4j calls in it)
        LOG.info(f"Spark up in {time.monotonic() - t0:.1f} s")
        _quiet_stream_errors()  # a failed query: the supervisor's one line (-v: Spark's trace)
    listener = _gated_listener(cfg)
    spark.streams.addListener(listener)
    queries: list[Any] = []
    sinks: list[DuckDBSink] = []  # the current query's sink: reachable without the JVM
    first = [reset]

    def start() -> Any:  # the first start may reset the checkpoint; restarts resume from it
        if queries:  # a restart: the failed query's sink is done
            release(queries[-1])
        query = start_stream(spark, cfg, available_now=available_now, reset=first[0],
                             backend=backend, heartbeat=beat)
        first[0] = False
        sinks[:] = [_SINKS[query.id]]
        return query

    def stopping() -> bool:
        return STOP.is_set() or INTERRUPTED.is_set()

    def nap(delay: float) -> None:  # the supervisor's back-off, cut short by a stop
        until = time.monotonic() + delay
        while not stopping() and time.monotonic() < until:
            time.sleep(min(0.2, max(until - time.monotonic(), 0.0)))

    # ingest rejects while no posts arrive (no micro-batch): between batches, every few seconds
    idle = None if available_now else IdleDrainer(lambda: sinks[0].store_ingest_dead_letters(
        wait=False, stopping=stopping) if sinks else 0).start()
    interrupted = False
    try:  # transient failures restart the query from its checkpoint (stream/supervise.py)
        if not stopping():  # SIGTERM or Ctrl-C while Spark started: no query at all
            supervise(start, timeout=timeout, on_query=queries.append, stopping=stopping,
                      sleep=nap, max_restarts=MAX_RESTARTS_DRAIN if available_now else None,
                      on_state=beat.set_state)
        if available_now and sinks and not stopping() and not queries[-1].isActive:
            # the posts topic is drained: the rest of the dead-letter topic, chunk by chunk
            stored = sinks[0].store_ingest_dead_letters(stopping=stopping)
            if stored:
                LOG.info(f"+{stored:,} dead letter(s) from ingest stored after the last batch")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if idle is not None:
            idle.close(STOP_GRACE_S)
        interrupted = interrupted or INTERRUPTED.is_set()
        if interrupted:
            LOG.info("interrupted: stopping the stream (the checkpoint keeps its position)")
        _shut_down(spark, queries[-1] if queries else None, listener, own)
    return interrupted


def _gated_listener(cfg: Config) -> Any:
    """The metrics listener (stream/metrics.py), whose progress callback (a DuckDB write, from
    a py4j thread) :func:`_shut_down` can close and wait for, as the sink's batches."""
    from stream.metrics import MetricsListener

    class GatedListener(MetricsListener):
        def __init__(self) -> None:
            super().__init__(cfg.warehouse_path, QUERY_NAME)
            self.gate, self.closed = threading.Lock(), False

        def onQueryProgress(self, event: Any) -> None:  # noqa: N802 (pyspark)
            with self.gate:
                if not self.closed:
                    super().onQueryProgress(event)

        def close(self, timeout: float) -> None:
            self.closed = True
            if self.gate.acquire(timeout=timeout):
                self.gate.release()

    return GatedListener()


def _shut_down(spark: Any, query: Any, listener: Any, own: bool) -> None:
    """The end of a run: stop the query between micro-batches, remove the listener, stop an
    own Spark, and wait for the sink's and the listener's write in hand: this process must not
    exit while a thread of it is inside DuckDB or Arrow (Python aborts: "FATAL: exception not
    rethrown"). After SIGTERM to the whole process group Spark's JVM ends as well, and a
    failure of these calls is no error."""
    try:
        if query is not None and query.isActive:
            stop_between_batches(query)
        spark.streams.removeListener(listener)
        if own:
            spark.stop()
    except Exception as exc:
        if not STOP.is_set():
            raise
        LOG.debug(f"stopping Spark after SIGTERM: {cause(exc)}")  # its JVM ended too
    finally:
        if query is not None:  # after SIGTERM its JVM may be gone with a batch in Python
            release(query)  # waits for the sink's write in hand (a query's stop waited already)
        listener.close(STOP_GRACE_S)  # a JVM ending by itself may still call it back
