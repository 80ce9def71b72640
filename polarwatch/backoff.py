"""Delays from a tenacity wait strategy for loops that tenacity's ``Retrying`` cannot wrap: a
live source's reconnect loop is a generator, the stream supervisor restarts a Spark query.

Both ask :func:`wait_seconds` for the n-th delay, which hands the strategy a real
``RetryCallState`` (not a stand-in cast to one), so any tenacity wait strategy works here.
"""

from __future__ import annotations

from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base


def wait_seconds(wait: wait_base, attempt_number: int) -> float:
    """The delay `wait` gives before retry number `attempt_number` (1 = the first retry)."""
    if attempt_number < 1:
        raise ValueError(f"attempt_number starts at 1, got {attempt_number}")
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    return float(wait(state))
