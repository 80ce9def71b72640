"""Delays between attempts.

- :func:`wait_seconds`: the n-th delay of a tenacity wait strategy, for loops that tenacity's
  ``Retrying`` cannot wrap (a live source's reconnect loop is a generator, the stream supervisor
  restarts a Spark query). It hands the strategy a real ``RetryCallState`` (not a stand-in cast
  to one), so any tenacity wait strategy works here.
- :func:`retry_after_seconds`: an HTTP ``Retry-After`` header as seconds, in either form RFC 9110
  section 10.2.3 allows (a number of seconds or an HTTP-date); the webhook sender and the `llm`
  backend wait that long before their next attempt, each with its own cap. Only ASCII digits
  count as seconds (``str.isdigit`` also accepts ``²``, which ``float`` refuses).
- :func:`longer_wait`: the wait after an HTTP 429/503, the longer of our own backoff and the
  server's ``Retry-After`` (a ``Retry-After: 0`` must not turn a reconnect loop into a storm).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base


def wait_seconds(wait: wait_base, attempt_number: int) -> float:
    """The delay `wait` gives before retry number `attempt_number` (1 = the first retry)."""
    if attempt_number < 1:
        raise ValueError(f"attempt_number starts at 1, got {attempt_number}")
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    return float(wait(state))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP-date (a date in the past: 0).
    None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, (when - datetime.fromtimestamp(now, UTC)).total_seconds())


def longer_wait(retry_after: str | None, backoff: float, cap: float,
                now: float | None = None) -> float:
    """Seconds to wait after an HTTP 429/503: the longer of `backoff` and the ``Retry-After``
    header (absent or unreadable: `backoff`), at most `cap`."""
    asked = retry_after_seconds(retry_after, now)
    return min(cap, max(backoff, asked if asked is not None else 0.0))
