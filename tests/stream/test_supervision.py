"""Supervision: transient failures restart the query from its checkpoint, others end the
stream with one polarwatch error line. The real case: a reader holds the DuckDB file lock longer
than the sink's retries while the continuous stream runs."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import warnings
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import pytest

from ingest.broker import ensure_topics
from ingest.producer import PostProducer
from polarwatch import warehouse
from polarwatch.config import Config
from polarwatch.records import Post
from polarwatch.warehouse import connect, init_schema, is_lock_error, scalar
from stream.job import run_stream
from stream.sink import STOPPING
from stream.supervise import StreamError, cause, is_transient, supervise

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SPARK_FAILURE = """org.apache.spark.sql.streaming.StreamingQueryException: [FOREACH_BATCH_USER_FUNCTION_ERROR] An error occurred in the user provided function in foreach batch sink.
=== Streaming Query ===
py4j.protocol.Py4JJavaError: An error occurred while calling o123.call.
Traceback (most recent call last):
  File "/work/main/stream/sink.py", line 150, in write
_duckdb.IOException: IO Error: Could not set lock on file "/tmp/pw.duckdb": Conflicting lock is held in python (PID 42)
\tat org.apache.spark.sql.execution.streaming.StreamExecution.runStream(StreamExecution.scala:1)
"""


def test_cause_is_the_python_error_in_one_line() -> None:
    assert cause(SPARK_FAILURE) == ('IOException: IO Error: Could not set lock on file '
                                    '"/tmp/pw.duckdb": Conflicting lock is held in python '
                                    '(PID 42)')
    assert is_transient(SPARK_FAILURE)
    regression = "stream.kafka_source.OffsetRegressionError: offsets of topic 'p' went backwards"
    assert not is_transient(regression + " (Connection refused)")  # never replay or skip
    assert cause(regression).startswith("OffsetRegressionError: offsets")
    # seen in the soak on a loaded machine: Spark could not start a Python worker in time
    assert is_transient("org.apache.spark.SparkException: Python worker failed to connect back.")
    assert not is_transient("org.apache.spark.SparkException: Python worker exited unexpectedly")


class _Query:
    def __init__(self, failure: str | None) -> None:
        self.failure, self.isActive = failure, True

    def awaitTermination(self, timeout: float | None = None) -> None:  # noqa: N802 (pyspark)
        self.isActive = False
        if self.failure:
            raise RuntimeError(self.failure)

    def exception(self) -> None:
        return None


def test_supervise_restarts_transient_failures_and_stops_on_others(
        caplog: pytest.LogCaptureFixture) -> None:
    script = iter([SPARK_FAILURE, "KafkaConnectionError: Connection refused", None])
    sleeps: list[float] = []
    with warnings.catch_warnings():  # PYTHONWARNINGS=error: no deprecated call (tenacity 9.2's
        warnings.simplefilter("error")  # `initial` of wait_exponential_jitter stopped the stream)
        assert supervise(lambda: _Query(next(script)), sleep=sleeps.append) == 2
    logs = [r.getMessage() for r in caplog.records if r.name == "stream.supervise"]
    assert len(logs) == 2 and "stream restart 1" in logs[0] and "Could not set lock" in logs[0]
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential backoff

    with pytest.raises(StreamError, match=r"^the stream stopped: ValueError: bad") as err:
        supervise(lambda: _Query("Traceback\nValueError: bad\n\tat org.apache.X"),
                  sleep=sleeps.append)
    assert "\n" not in str(err.value) and "org.apache" not in str(err.value)
    with pytest.raises(StreamError, match="failed 3 times in a row"):
        supervise(lambda: _Query(SPARK_FAILURE), sleep=sleeps.append,
                  max_restarts=2)


# Another process takes the file read-write (retrying while the stream has it), says so,
# and holds it for 8 s.
LOCKER = """
import sys, time
from polarwatch.warehouse import connect
with connect(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(8)
"""


def _posts(prefix: str, n: int) -> list[Post]:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    return [Post(id=f"{prefix}{i}", platform="t", author_id="u", text="We need gun control.",
                 created_at=t0 + timedelta(seconds=i), topic="gun_control",
                 conversation_id=f"{prefix}{i}") for i in range(n)]


def _produce(cfg: Config, posts: list[Post]) -> None:
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(posts)


def _count(cfg: Config) -> int:
    with connect(cfg.warehouse_path, read_only=True) as con:
        return int(scalar(con, "SELECT count(*) FROM posts"))


def _wait_for(cfg: Config, n: int, timeout: float) -> int:
    deadline, got = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        try:
            got = _count(cfg)
        except duckdb.IOException as exc:  # the writer holds the file: ask again
            assert is_lock_error(exc), exc
        if got >= n:
            break
        time.sleep(0.5)
    return got


@pytest.mark.slow
def test_continuous_stream_survives_a_reader_holding_the_lock(
        stream_config: Config, spark: SparkSession, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    # lock retries of 1 s instead of 5 s (the sink runs in this process): a reader holding the
    # file for 8 s outlasts them for sure, however loaded the machine is
    monkeypatch.setattr(warehouse, "LOCK_RETRY_ATTEMPTS", 40)
    cfg = stream_config.model_copy(update={
        "spark": stream_config.spark.model_copy(update={"trigger_seconds": 0.5})})
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    init_schema(cfg.warehouse_path)
    _produce(cfg, _posts("a", 20))
    caplog.set_level(logging.INFO, logger="stream")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_stream(cfg, available_now=False, timeout=300, spark=spark)
        except BaseException as exc:  # surfaced by the assertions below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert _wait_for(cfg, 20, 120) == 20, caplog.messages
        # another process holds the file read-write for 8 s: longer than the sink's lock
        # retries, so the batch with the next posts fails inside the query
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(cfg.warehouse_path)],
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        _produce(cfg, _posts("b", 10))
        locker.wait(60)
        assert _wait_for(cfg, 30, 120) == 30, caplog.messages
    finally:
        for query in spark.streams.active:
            query.stop()
        thread.join(60)
    assert not errors, errors
    restarts = [m for m in caplog.messages if m.startswith("stream restart")]
    assert restarts and any("lock" in m for m in restarts), caplog.messages


def test_a_failure_while_polarwatch_stops_ends_the_supervision_without_a_restart(
        caplog: pytest.LogCaptureFixture) -> None:
    """SIGTERM to the process group also ends Spark's JVM: the query then fails with
    "Connection refused", a transient cause, but restarting it would only fail again."""
    caplog.set_level(logging.INFO, logger="stream.supervise")
    starts: list[int] = []

    def start() -> _Query:
        starts.append(1)
        return _Query("py4j.protocol.Py4JNetworkError: [Errno 111] Connection refused")

    sleeps: list[float] = []
    assert supervise(start, sleep=sleeps.append, stopping=lambda: True) == 0
    assert len(starts) == 1 and not sleeps
    assert any("while polarwatch stops" in m for m in caplog.messages), caplog.messages
    assert not any(m.startswith("stream restart") for m in caplog.messages)


def test_a_batch_refused_by_a_stop_between_batches_ends_the_supervision_quietly() -> None:
    """stop_between_batches makes the sink refuse a batch that arrives while the query stops;
    that failure is the stop itself: no restart, no error."""
    refused = (f"Traceback (most recent call last):\nstream.sink.StreamStopping: batch 7 not "
               f"started: {STOPPING}; it runs again from the checkpoint when the stream restarts")
    starts: list[int] = []

    def start() -> _Query:
        starts.append(1)
        return _Query(refused)

    sleeps: list[float] = []
    assert supervise(start, sleep=sleeps.append) == 0
    assert len(starts) == 1 and not sleeps


def test_a_deadline_less_than_a_millisecond_away_is_the_end_of_the_wait(spark: Any) -> None:
    """pyspark hands awaitTermination whole milliseconds: 0.4 ms left became 0, Spark refused it
    ("requirement failed: Timeout has to be positive") and the stream stopped as if the query
    had failed (seen once in an idle --continuous run ending at its timeout)."""
    from stream.supervise import _failure

    query = (spark.readStream.format("rate").load().writeStream.format("noop")
             .queryName("deadline_probe").start())
    ticks = iter([100.0, 100.9996])  # the deadline set at 101.0, then 0.4 ms before it
    try:
        assert _failure(query, 1.0, lambda: False, lambda: next(ticks, 101.0)) is None
    finally:
        query.stop()
