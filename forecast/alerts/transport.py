"""One webhook POST, bounded: what :class:`~forecast.alerts.webhooks.WebhookSender` sends with.

- **A deadline per request**: ``timeout`` seconds from the start of the request to the status
  line and headers, in all (httpx's own timeouts bound each read or write, not their sum, so a
  receiver trickling its headers a byte at a time would hold the sender for hours). When the
  deadline passes, a timer shuts the connection's socket down, which ends the blocked read.
- **The status is the answer**: once the status line and headers are in, the attempt is decided;
  the body is never read (the connection is closed instead), so a receiver that drips, floods or
  drops its body cannot turn a 2xx into a failure or hold the sender.
- **Retry-After** in seconds or as an HTTP-date (RFC 9110 section 10.2.3); the caller caps it.
- **Redirects are not followed** (a POST must not turn into a GET elsewhere); the failure says so
  and names where the receiver pointed, host only (paths and queries carry tokens). A Location
  that is not an http(s) URL (``javascript:``, ``mailto:``) or cannot be parsed fails the same
  way, at once: httpx builds the redirect request even when it does not follow it and raises
  there, after the status is in, so the status is taken from httpcore's ``trace`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from polarwatch import http_limits
from polarwatch.backoff import retry_after_seconds
from polarwatch.redact import url_for_log

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Attempt:
    """What one POST got: a status (None when no answer came), an error text, Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None  # seconds

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        return not self.ok and (self.status is None or self.status in RETRY_STATUS)


class Deadline(http_limits.Deadline):
    """:class:`polarwatch.http_limits.Deadline` that also keeps the status line and headers as
    they arrive (:attr:`head`), which httpx may fail to hand over (a redirect it cannot build)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.head: tuple[int, dict[str, str]] | None = None  # status, headers (lower-case names)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        super().trace(event, info)
        if event.endswith("receive_response_headers.complete"):
            value: Any = info.get("return_value") or ()
            # HTTP/1.1: (version, status, reason, headers); HTTP/2: (status, headers)
            status, raw = (value[1], value[3]) if len(value) == 4 else (value[0], value[1])
            self.head = (int(status), {bytes(k).decode("latin-1").lower():
                                       bytes(v).decode("latin-1") for k, v in raw})


def redirect_text(url: str, status: int, location: str | None) -> str:
    """``HTTP 307: redirect to https://host/… not followed``, the target cut to its host."""
    if not location:
        return f"HTTP {status}: redirect (no Location) not followed"
    try:
        joined = httpx.URL(url).join(location)
        target = (url_for_log(str(joined)) if joined.scheme in ("http", "https") and joined.host
                  # the scheme only: the rest of a mailto: or javascript: may carry anything
                  else f"a Location that is not an http(s) URL ({joined.scheme or 'no'} "
                       f"scheme)")
    except (httpx.InvalidURL, ValueError):
        target = "an invalid Location"
    return (f"HTTP {status}: redirect to {target} not followed (put the URL that answers the "
            f"POST itself in [alerts] webhooks)")


def post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
         timeout: float) -> Attempt:
    """One POST, answered within ``timeout`` seconds in all; the answer's body is not read."""
    deadline = Deadline(timeout)
    status: int | None = None
    retry_after = location = None
    deadline.start()
    try:
        with client.stream("POST", url, content=body, headers=headers,
                           extensions={"trace": deadline.trace}) as resp:
            status, retry_after = resp.status_code, resp.headers.get("Retry-After")
            location = resp.headers.get("Location")
            deadline.stop()  # the status is in: closing the response drops the body unread
    # refused, timeouts, protocol errors, the deadline (TransportError); a redirect httpx could
    # not build (InvalidURL, or RemoteProtocolError for an unparsable Location)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        if status is None and deadline.head is not None:  # the status came, then httpx failed
            status, head = deadline.head
            retry_after, location = head.get("retry-after"), head.get("location")
        if status is None:  # once the status is in, hanging up cannot undo it
            if deadline.fired:
                return Attempt(None, f"no answer within the {timeout:g} s deadline "
                                     f"({type(exc).__name__})")
            return Attempt(None, f"{type(exc).__name__}: {exc}".replace(url, url_for_log(url)))
    finally:
        deadline.stop()
    assert status is not None  # without a status the except clause returned
    if 200 <= status < 300:
        return Attempt(status)
    if 300 <= status < 400:
        return Attempt(status, redirect_text(url, status, location))
    return Attempt(status, f"HTTP {status}", retry_after_seconds(retry_after))
