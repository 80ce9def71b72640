"""How a live source (Jetstream, Mastodon) waits before it reconnects: :class:`Backoff`, and
:func:`retry_after_seconds` after an HTTP 429/503."""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import wait_exponential, wait_random_exponential

from polarwatch.backoff import longer_wait, wait_seconds


@dataclass
class Backoff:
    """Exponential backoff with jitter, from tenacity's wait strategies: the n-th delay is
    between half and all of ``min(maximum, initial × factor**n)``. A live source's reconnect
    loop is a generator, so it asks for delays here instead of wrapping itself in a tenacity
    ``Retrying``; `reset()` after a connection that delivered data."""

    initial: float = 0.5
    maximum: float = 60.0
    factor: float = 2.0
    attempt: int = 0

    def next_delay(self) -> float:
        half = {"multiplier": self.initial / 2, "exp_base": self.factor, "max": self.maximum / 2}
        wait = wait_exponential(**half) + wait_random_exponential(**half)
        self.attempt += 1
        return wait_seconds(wait, self.attempt)

    def reset(self) -> None:
        self.attempt = 0


MAX_RETRY_AFTER_S = 600.0  # a server cannot park a live source for longer than this per answer


def retry_after_seconds(value: str | None, default: float,
                        cap: float = MAX_RETRY_AFTER_S) -> float:
    """Seconds to wait after an HTTP 429/503: the longer of `default` (the backoff) and the
    ``Retry-After`` header (seconds or an HTTP date; unreadable counts as absent), at most `cap`
    (a hostile or broken server's "come back in a year" is ten minutes)."""
    return longer_wait(value, default, cap)
