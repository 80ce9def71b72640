"""Supervision of the streaming query: restart it from its checkpoint when the cause is
transient, stop with a one-line polarwatch error when it is not.

Transient: the DuckDB file lock held by a reader longer than the sink's retries, a broker that
restarts or cannot be reached for a while, a full disk that is freed, a server that times out.
The query is restarted from its checkpoint (Spark replays the uncommitted micro-batch; the sink's
``(query, batch id)`` marker keeps it exactly-once) after an exponential backoff with jitter;
every restart is logged. Anything else — an offset regression, a bug, a bad configuration — ends
:func:`supervise` with :class:`StreamError`, whose message is the Python-level cause in one
line, not a Java stack trace.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Any

from tenacity import wait_exponential, wait_random

from polarwatch.backoff import wait_seconds
from polarwatch.errors import PolarwatchError
from polarwatch.warehouse import LOCK_ERROR_MARKERS
from stream.sink import STOPPING

LOG = logging.getLogger(__name__)

# Substrings of a failure (the Python exception and whatever Spark wraps around it) that mark
# a cause that goes away by itself.
TRANSIENT_MARKERS = (
    *LOCK_ERROR_MARKERS,  # a DuckDB reader held the file too long
    "NoBrokersAvailable", "KafkaConnectionError", "KafkaTimeoutError", "NodeNotReadyError",
    "RequestTimedOutError", "LeaderNotAvailableError", "NotLeaderForPartitionError",
    "no records from",  # stream/kafka_source.py: a partition read stalled (broker restarting)
    "Connection refused", "Connection reset", "Broken pipe", "timed out",
    "No space left on device", "Disk quota exceeded",
    "Python worker failed to connect back",  # a Spark Python worker starved on a loaded machine
)
PERMANENT_MARKERS = ("OffsetRegressionError",)  # replaying or skipping would be wrong
RESTART_BACKOFF = (1.0, 60.0)  # seconds: first delay, cap (doubling, with jitter)
HEALTHY_AFTER_S = 120.0  # a query that ran this long resets the backoff
MAX_RESTARTS_DRAIN = 5  # `polarwatch stream` without --continuous gives up after this many
POLL_S = 0.5  # seconds: how often the wait for the query looks whether polarwatch stops

_PY_ERROR = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit)): (.+)$", re.MULTILINE)
_NOISE = ("StreamingQueryException", "PythonException", "Py4JJavaError", "SparkException")


class StreamError(PolarwatchError):
    """The stream stopped for a reason a restart cannot fix (the message says which)."""


def is_transient(text: str) -> bool:
    if any(m in text for m in PERMANENT_MARKERS):
        return False
    return any(m in text for m in TRANSIENT_MARKERS)


PERMANENT_LIMIT = 1000  # characters of a cause that ends the stream (a restart's: 300)


def cause(exc: BaseException | str, limit: int = 300) -> str:
    """The innermost Python-level error of a Spark failure as ``Type: message``, one line."""
    text = str(exc)
    found = [(t, m) for t, m in _PY_ERROR.findall(text) if t not in _NOISE]
    if found:
        kind, msg = found[-1]
        line = f"{kind}: {msg.strip()}"
    else:
        line = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[:limit - 1] + "…"


def _failure(query: Any, timeout: float | None, stopping: Callable[[], bool],
             clock: Callable[[], float]) -> BaseException | None:
    """Wait for the query to end, for `timeout` seconds, or until `stopping()`; the exception
    the query ended with, or None (stopped, timed out, or polarwatch stops). It waits in slices
    of POLL_S, so a stop is seen between two py4j calls, never by interrupting one."""
    deadline = None if timeout is None else clock() + timeout
    try:
        while True:
            left = POLL_S if deadline is None else min(POLL_S, deadline - clock())
            if left < 0.001:  # pyspark passes whole milliseconds: 0 ms is refused by Spark
                return None  # ("requirement failed: Timeout has to be positive")
            # True: it ended (None, from a query object without the bool, counts as ended)
            if query.awaitTermination(left) is not False:
                break
            if stopping():
                return None
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # pyspark's StreamingQueryException and friends
        return exc
    failed = query.exception()
    return failed if isinstance(failed, BaseException) else None


def supervise(start: Callable[[], Any], *, timeout: float | None = None, max_restarts: int | None = None,
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic,
              on_query: Callable[[Any], None] | None = None,
              stopping: Callable[[], bool] = lambda: False,
              on_state: Callable[[str, str | None], None] | None = None) -> int:
    """Run ``start()`` (which starts the query from its checkpoint) until the query stops or
    `timeout` seconds pass, restarting it after transient failures. Returns the number of
    restarts; raises StreamError when the cause is not transient or `max_restarts` is spent.
    `on_query` receives each started query (so the caller can stop the current one).
    `stopping()` true: polarwatch is shutting down (SIGTERM, Ctrl-C): the supervision returns
    with the query still running (the caller stops it between micro-batches), and a failure
    ends it instead of a restart (a group-wide SIGTERM also ends Spark's JVM, and the query
    fails with "Connection refused"; its checkpoint keeps the position); a back-off `sleep`
    that returns early when it becomes true saves the rest of the wait.
    `on_state(state, cause)` hears ``("running", None)`` after each start and ``("restarting",
    cause)`` before each back-off (the heartbeat, stream/heartbeat.py)."""
    def tell(state: str, why: str | None = None) -> None:
        if on_state is not None:
            on_state(state, why)

    deadline = None if timeout is None else clock() + timeout
    first, cap = RESTART_BACKOFF
    # 0.5-1, 1-1.5, 2-2.5 … s (tenacity 9.2 deprecates wait_exponential_jitter's `initial`, and
    # 9.0 has no `multiplier` for it: this sum reads the same in every 9.x)
    wait = wait_exponential(multiplier=first / 2, max=cap) + wait_random(0, first / 2)
    attempt = 1  # the retry number the backoff is at
    restarts = 0
    while True:
        started = clock()
        exc: BaseException | None
        try:  # starting opens the DuckDB file and asks the broker for offsets: may fail too
            query = start()
        except (KeyboardInterrupt, PolarwatchError):
            raise
        except Exception as failed:
            exc = failed
        else:
            if on_query is not None:
                on_query(query)
            tell("running")
            remaining = None if deadline is None else max(deadline - clock(), 0.0)
            exc = _failure(query, remaining, stopping, clock)
            if exc is None:
                return restarts
        why = cause(exc)
        LOG.debug(f"the stream's failure in full: {exc}")
        if STOPPING in str(exc):  # stream.job.stop_between_batches refused a batch: a stop
            LOG.info("the stream stopped between micro-batches; it resumes from its checkpoint")
            return restarts
        if stopping():  # its cause (a JVM ending with us, in py4j's words): with -v only
            LOG.info("the stream ended while polarwatch stops")
            return restarts
        if not is_transient(str(exc)):  # said once, whole: its last words say how to fix it
            raise StreamError(f"the stream stopped: {cause(exc, PERMANENT_LIMIT)}") from None
        if max_restarts is not None and restarts >= max_restarts:
            raise StreamError(f"the stream failed {restarts + 1} times in a row, last: {why}; "
                              f"fix the cause and run it again (it resumes from its "
                              f"checkpoint)") from None
        if clock() - started >= HEALTHY_AFTER_S:
            attempt = 1  # it ran well for a while: start the backoff over
        delay = wait_seconds(wait, attempt)
        attempt += 1
        restarts += 1
        LOG.warning(f"stream restart {restarts} in {delay:.1f} s after a transient failure: "
                    f"{why}")
        tell("restarting", why)
        if deadline is not None and clock() + delay >= deadline:
            return restarts
        sleep(delay)
        if stopping():
            return restarts
