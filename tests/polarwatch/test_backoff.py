"""polarwatch.backoff: tenacity's wait strategies outside a Retrying loop (wait_seconds), and
the Retry-After header as seconds (retry_after_seconds)."""

from __future__ import annotations

import time

import pytest
from tenacity import RetryCallState, wait_chain, wait_exponential, wait_fixed

from forecast.alerts import transport
from polarwatch.backoff import retry_after_seconds, wait_seconds


def test_the_nth_delay_of_an_exponential_wait() -> None:
    wait = wait_exponential(multiplier=1, max=8)
    assert [wait_seconds(wait, n) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


def test_the_strategy_gets_a_real_retry_state() -> None:
    """A wait strategy may read more of the state than attempt_number (a stand-in had only
    that attribute): here it checks the type and reads the elapsed time."""
    seen: list[RetryCallState] = []

    def wait(state: RetryCallState) -> float:
        seen.append(state)
        assert state.seconds_since_start is None  # nothing has finished yet
        return float(state.attempt_number)

    assert wait_seconds(wait, 3) == 3.0  # type: ignore[arg-type]
    assert isinstance(seen[0], RetryCallState)


def test_chained_waits_follow_the_attempt_number() -> None:
    wait = wait_chain(wait_fixed(1), wait_fixed(5))
    assert [wait_seconds(wait, n) for n in (1, 2, 3)] == [1, 5, 5]


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="starts at 1"):
        wait_seconds(wait_fixed(1), 0)


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    """One Retry-After reader for the webhook sender and the llm backend (RFC 9110 10.2.3)."""
    now = 1_800_000_000.0
    in_90 = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 90))
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(f" {in_90} ", now) == 90.0
    assert retry_after_seconds("Thu, 01 Jan 1970 00:00:00 GMT", now) == 0.0  # past: now
    assert [retry_after_seconds(v, now) for v in (None, "", "soon", "-5", "1.5")] == [None] * 5
    assert transport.retry_after_seconds is retry_after_seconds  # imported, not a copy
