"""Alert webhooks: Standard Webhooks signatures, Alertmanager payloads, retries, a DuckDB log.

- **Signing** (https://www.standardwebhooks.com): headers ``webhook-id`` (stable across retries:
  the receiver's idempotency key), ``webhook-timestamp`` (Unix seconds, per attempt) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 over "id.timestamp.body">``; the secret is
  ``whsec_<base64 key>``. :func:`verify` is the receiver side.
- **Payload**: ``alertmanager`` (webhook ``version "4"`` with ``alerts[]`` of labels, annotations,
  startsAt, endsAt, fingerprint) or ``standard`` (``{type, timestamp, data}``).
- **Delivery**: one ``httpx`` POST per attempt (:func:`forecast.alerts.transport.post`: answered
  within ``timeout`` seconds in all, decided by its status line, the body never read), retried by
  ``tenacity`` on connection errors, timeouts, 408, 425, 429 and 5xx with exponential backoff
  (:class:`RetryPolicy`; the default schedule waits 12 min in total; a longer ``Retry-After``, in
  seconds or as a date, is honoured up to the cap); other answers fail at once. Redirects are not
  followed (a POST must not turn into a GET elsewhere): the failure names the target's host, and
  a Location httpx cannot follow (``javascript:``, unparsable) fails at once the same way.
- **Log and de-duplication**: every attempt is a row of ``alert_deliveries`` (contract
  :class:`polarwatch.tables.AlertDelivery`). An alert already *delivered* to an endpoint in the
  same state (its ``webhook-id``: endpoint, fingerprint, state, startsAt and, for an escalation
  update, its ``revision``) is not sent again by a later run or a restarted sender (new object,
  same DuckDB). Delivery is **at least once**, not exactly once: the row is
  written after the receiver's 2xx, so a crash between the two sends the message again on the
  next run, with the same ``webhook-id``, which is how a receiver de-duplicates.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from forecast.alerts.transport import RETRY_STATUS, Attempt, post
from polarwatch.errors import ConfigError
from polarwatch.fields import DEFAULT_WEBHOOK_FORMAT, WEBHOOK_FORMATS, WebhookFormat
from polarwatch.redact import url_for_log
from polarwatch.warehouse import connect, init_schema, scalar, transaction

LOG = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
# Standard Webhooks' reference libraries reject timestamps more than 5 minutes off.
TOLERANCE_SECONDS = 300
# Alertmanager's zero time for endsAt of a firing alert.
ZERO_TIME = "0001-01-01T00:00:00Z"
OUTCOME_DELIVERED, OUTCOME_RETRY, OUTCOME_FAILED = "delivered", "retry", "failed"
# Senders on several threads (forecast.alerts.delivery: one per endpoint) share the log file;
# one DuckDB unit of work at a time, so a reader never meets a writer's open file in this process.
LOG_LOCK = threading.Lock()


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``initial * factor**k`` capped at ``max_delay``, ``max_attempts`` in all.

    Defaults: 2, 4, ..., 64 s then 120 s (the cap) five times: 11 waits of 726 s in total, i.e.
    the receiver may be down for 12 minutes (the issue asks for at least 10).
    """

    max_attempts: int = 12
    initial: float = 2.0
    factor: float = 2.0
    max_delay: float = 120.0
    timeout: float = 10.0  # seconds per request, in all (connect, send, status and headers)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.initial < 0 or self.factor < 1 or self.max_delay < 0:
            raise ConfigError(f"invalid retry policy {self}: need max_attempts >= 1, "
                              f"initial >= 0, factor >= 1, max_delay >= 0")

    def delay(self, k: int) -> float:
        """The wait after attempt ``k + 1``: ``initial * factor**k`` capped at ``max_delay``,
        the exponent capped where the cap is reached (``factor**k`` overflows a float from
        k = 1024 at factor 2), so any attempt count works."""
        if self.initial >= self.max_delay:
            return self.max_delay
        if self.initial == 0 or self.factor == 1:
            return self.initial
        reach = math.ceil(math.log(self.max_delay / self.initial, self.factor))
        return self.max_delay if k >= reach else min(self.max_delay,
                                                     self.initial * self.factor ** k)

    def delays(self) -> list[float]:
        """Waits between attempts (``max_attempts - 1`` of them)."""
        return [self.delay(k) for k in range(self.max_attempts - 1)]

    def wait(self, state: Any) -> float:
        """tenacity's wait: the schedule's next delay, longer when the receiver's Retry-After
        asks for more (never above ``max_delay``). tenacity asks before it checks the stop
        condition, so after the last attempt too: 0 then."""
        if state.attempt_number >= self.max_attempts:
            return 0.0
        wait = self.delay(state.attempt_number - 1)
        retry_after = getattr(state.outcome.result(), "retry_after", None)
        if retry_after is not None:
            wait = min(self.max_delay, max(wait, retry_after))
        return wait


def decode_secret(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ConfigError(f"webhook secret must look like {SECRET_PREFIX}<base64>; the one "
                          f"given ({len(secret)} characters, not shown) does not start with "
                          f"{SECRET_PREFIX}")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX):], validate=True)
    except ValueError as exc:
        raise ConfigError(f"webhook secret is not valid base64 after {SECRET_PREFIX}") from exc


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(decode_secret(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str, headers: Any, body: bytes, *, now: float | None = None,
           tolerance: int = TOLERANCE_SECONDS) -> bool:
    """Receiver side: a valid ``v1`` signature within the timestamp tolerance."""
    try:
        msg_id = headers["webhook-id"]
        ts = int(headers["webhook-timestamp"])
        sigs = headers["webhook-signature"].split()
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance:
        return False
    expected = sign(secret, msg_id, ts, body).encode()
    return any(hmac.compare_digest(expected, s.encode()) for s in sigs if s.startswith("v1,"))


def _iso(dt: datetime | None) -> str:
    if dt is None:
        return ZERO_TIME
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fingerprint_of(labels: dict[str, str]) -> str:
    """16 hex digits of SHA-256 over the sorted labels (like Alertmanager's fingerprint)."""
    canon = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Alert:
    """One alert in one state. ``fingerprint`` is ``key`` when given (the alert's identity
    when labels may change, e.g. an episode's class), else the hash of all its labels.
    ``revision`` tells a later firing message of the same alert from its first one (an
    escalation update: its new severity); it is part of the ``webhook-id``, not of the
    payload."""

    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ends_at: datetime | None = None  # set when resolved
    generator_url: str = ""
    key: str = ""
    revision: str = ""

    @property
    def state(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    @property
    def fingerprint(self) -> str:
        return self.key or fingerprint_of(self.labels)

    def as_alertmanager(self) -> dict[str, Any]:
        return {"status": self.state, "labels": dict(self.labels),
                "annotations": dict(self.annotations), "startsAt": _iso(self.starts_at),
                "endsAt": _iso(self.ends_at), "generatorURL": self.generator_url,
                "fingerprint": self.fingerprint}


def alertmanager_payload(alerts: list[Alert], receiver: str = "polarwatch") -> dict[str, Any]:
    """Alertmanager webhook ``version "4"`` body."""
    common = set.intersection(*(set(a.labels.items()) for a in alerts)) if alerts else set()
    status = "firing" if any(a.state == "firing" for a in alerts) else "resolved"
    return {"version": "4", "groupKey": "{}:" + json.dumps(dict(sorted(common))),
            "truncatedAlerts": 0, "status": status, "receiver": receiver,
            "groupLabels": {}, "commonLabels": dict(sorted(common)), "commonAnnotations": {},
            "externalURL": "", "alerts": [a.as_alertmanager() for a in alerts]}


def standard_payload(alert: Alert) -> dict[str, Any]:
    return {"type": f"alert.{alert.state}", "timestamp": _iso(datetime.now(UTC)),
            "data": alert.as_alertmanager()}


def sample_alert() -> Alert:
    return Alert(labels={"alertname": "PolarwatchTest", "topic": "sample", "flag": "spike",
                         "severity": "info"},
                 annotations={"summary": "polarwatch alerts test: a signed sample alert"})


@dataclass(frozen=True)
class Endpoint:
    url: str
    secret: str | None = field(default=None, repr=False)  # [alerts] secret, never printed
    format: WebhookFormat = DEFAULT_WEBHOOK_FORMAT

    def __post_init__(self) -> None:
        if self.format not in WEBHOOK_FORMATS:
            raise ConfigError(f"webhook format must be one of {', '.join(WEBHOOK_FORMATS)}, "
                              f"got {self.format!r}")
        if self.secret is not None:
            decode_secret(self.secret)
        # the scheme in any case (RFC 3986: HTTP://host is http://host)
        if not self.url[:8].lower().startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must start with http:// or https://, got one "
                              f"starting {self.url.split(':', 1)[0][:10]!r} (the rest is not "
                              f"shown: webhook URLs carry tokens)")
        try:
            parsed = httpx.URL(self.url)
        except httpx.InvalidURL as exc:  # e.g. "http://[::1" (the reason names no token)
            raise ConfigError(f"webhook URL is not a valid URL: {exc}") from None
        if not parsed.host:
            raise ConfigError("webhook URL has no host, e.g. http://hooks.example.org/path")
        if ":" not in parsed.host and not _HOST_NAME.fullmatch(parsed.host):  # not IPv6
            raise ConfigError("webhook URL's host holds a character no host name has (a space, "
                              "a quote, ...: every attempt would fail to resolve it); write it "
                              "as http://hooks.example.org/path")
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise ConfigError(f"webhook URL port {parsed.port} is not a port number (1-65535)")
        # what is sent to (httpx) and what the logs name (polarwatch.redact, urllib) must agree:
        # httpx reads a port "+19719", " 80" or "٣٣" that urllib refuses, so refuse it here
        try:
            _ = urlsplit(self.url).port
        except ValueError as exc:
            raise ConfigError(f"webhook URL has a port that is not plain digits ({exc}); "
                              f"write it as 1-65535 in the digits 0-9") from None
        if url_for_log(self.url) == "(invalid URL)":
            raise ConfigError("webhook URL's host cannot be read (the logs could not name it); "
                              "write it as http://hooks.example.org/path")


_HOST_NAME = re.compile(r"[\w.-]+")  # letters (also IDN), digits, "-", "_" and dots


@dataclass
class DeliveryResult:
    endpoint: str
    webhook_id: str
    delivered: bool
    attempts: int
    status: int | None
    skipped: bool = False  # already delivered earlier (de-duplicated)


def webhook_id(endpoint: str, alert: Alert) -> str:
    """The message's id: the same for every attempt and run of one message, another for an
    escalation update of the same alert (its ``revision``)."""
    key = f"{endpoint}|{alert.fingerprint}|{alert.state}|{_iso(alert.starts_at)}"
    if alert.revision:
        key += f"|{alert.revision}"
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]


class WebhookSender:
    """Sends alerts to endpoints; logs each attempt to DuckDB (``db_path``, brought to the
    newest schema first; None = no log)."""

    def __init__(self, endpoints: Iterable[Endpoint], db_path: str | Path | None,
                 retry: RetryPolicy | None = None, *,
                 sleep: Callable[[float], Any] = time.sleep, fail_fast: bool = True) -> None:
        self.endpoints = list(endpoints)
        self.db_path = db_path
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.fail_fast = fail_fast  # one attempt to a receiver down since a whole schedule
        if db_path is not None:
            init_schema(db_path)

    def _already_delivered(self, endpoint: str, alert: Alert, msg_id: str) -> bool:
        """This message (``msg_id``: endpoint, fingerprint, state, startsAt, revision) was
        delivered to ``endpoint`` before."""
        if self.db_path is None:
            return False
        with LOG_LOCK, connect(self.db_path) as con:
            return bool(scalar(con, "SELECT count(*) FROM alert_deliveries WHERE endpoint = ? AND "
                               "fingerprint = ? AND state = ? AND starts_at = ? AND "
                               "webhook_id = ? AND outcome = ?",
                               [endpoint, alert.fingerprint, alert.state, alert.starts_at,
                                msg_id, OUTCOME_DELIVERED]))

    def _policy_for(self, endpoint: str, shown: str) -> RetryPolicy:
        """The retry policy for `endpoint` in this run: one attempt when it spent a whole
        schedule on a message without an answer (none, or 408, 425, 429, 5xx to its last
        attempt: the receiver was down for 12 minutes by default) and has taken none since,
        else :attr:`retry`. A receiver that stays dead so costs each scheduled run one
        attempt, not the schedule; its messages stay pending, and the schedule is back once
        it answers (a delivered message, an ``alerts test`` too). ``alerts test`` sets
        ``fail_fast`` False: it tries as often as asked."""
        full = self.retry.max_attempts
        if self.db_path is None or full == 1 or not self.fail_fast:
            return self.retry
        with LOG_LOCK, connect(self.db_path) as con:
            down, status, up = con.execute(
                "SELECT max(attempted_at) FILTER (WHERE d), arg_max_null(status_code, attempted_at) "
                "FILTER (WHERE d), max(attempted_at) FILTER (WHERE outcome = ?) FROM ("
                "  SELECT *, outcome = ? AND attempt >= ? AND (status_code IS NULL OR "
                "  list_contains(?, status_code)) AS d FROM alert_deliveries WHERE endpoint = ?)",
                [OUTCOME_DELIVERED, OUTCOME_FAILED, full, sorted(RETRY_STATUS), endpoint]
            ).fetchone()
        if down is None or (up is not None and up > down):
            return self.retry
        when = down.astimezone(UTC) if down.tzinfo else down  # DuckDB: the machine's zone
        LOG.warning(f"{shown} took no message through a whole schedule of {full} attempts on "
                    f"{when:%Y-%m-%d %H:%M} UTC ({status or 'no answer'} to the last), nor "
                    f"any since: one attempt this run; its messages stay pending, and the "
                    f"full schedule is back once it answers")
        return dataclasses.replace(self.retry, max_attempts=1)

    def _log_attempt(self, endpoint: str, alert: Alert, msg_id: str, attempt: int,
                     status: int | None, error: str | None, outcome: str) -> None:
        if self.db_path is None:
            return
        with LOG_LOCK, transaction(self.db_path) as con:
            con.execute("INSERT OR REPLACE INTO alert_deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, ?)", [endpoint, alert.fingerprint, alert.state, alert.starts_at,
                                  msg_id, attempt, status, error, outcome, datetime.now(UTC)])

    def send(self, alert: Alert, *, dedupe: bool = True) -> list[DeliveryResult]:
        """Deliver ``alert`` to every endpoint (retrying), one after another; returns one
        result per endpoint. (:func:`forecast.alerts.delivery.send_flag_alerts` gives each
        endpoint a sender and a thread of its own.)"""
        return [self._send_one(ep, alert, dedupe) for ep in self.endpoints]

    def _send_one(self, ep: Endpoint, alert: Alert, dedupe: bool) -> DeliveryResult:
        msg_id = webhook_id(ep.url, alert)
        shown = url_for_log(ep.url)  # logs name the host: the path and query carry tokens
        if dedupe and self._already_delivered(ep.url, alert, msg_id):
            LOG.info(f"{alert.fingerprint} {alert.state} already delivered to {shown}: skipped")
            return DeliveryResult(ep.url, msg_id, True, 0, None, skipped=True)
        payload = (alertmanager_payload([alert]) if ep.format == "alertmanager"
                   else standard_payload(alert))
        body = json.dumps(payload, separators=(",", ":")).encode()
        secret = ep.secret
        attempts = itertools.count(1)
        policy = self._policy_for(ep.url, shown)

        def attempt(client: httpx.Client) -> Attempt:
            n = next(attempts)
            ts = int(time.time())
            headers = {"content-type": "application/json", "user-agent": "polarwatch-webhooks",
                       "webhook-id": msg_id, "webhook-timestamp": str(ts)}
            if secret:
                headers["webhook-signature"] = sign(secret, msg_id, ts, body)
            result = post(client, ep.url, body, headers, policy.timeout)
            # logged after the POST: a crash in between sends this message again on the next
            # run (at least once), with the same webhook-id for the receiver to de-duplicate
            outcome = (OUTCOME_DELIVERED if result.ok
                       else OUTCOME_RETRY if result.retryable and n < policy.max_attempts
                       else OUTCOME_FAILED)
            self._log_attempt(ep.url, alert, msg_id, n, result.status, result.error, outcome)
            return result

        def announce(state: RetryCallState) -> None:
            got: Attempt = state.outcome.result()  # type: ignore[union-attr]
            wait = state.next_action.sleep if state.next_action else 0.0
            LOG.warning(f"{msg_id} to {shown}: attempt {state.attempt_number} got "
                        f"{got.status if got.status is not None else got.error}; "
                        f"retrying in {wait:g} s")

        retrying = Retrying(stop=stop_after_attempt(policy.max_attempts), wait=policy.wait,
                            retry=retry_if_result(lambda a: a.retryable), sleep=self.sleep,
                            before_sleep=announce,
                            retry_error_callback=lambda state: state.outcome.result())  # type: ignore[union-attr]
        # no kept-alive connection: each attempt connects anew, so its deadline knows its socket
        with httpx.Client(timeout=policy.timeout, follow_redirects=False,
                          limits=httpx.Limits(max_keepalive_connections=0)) as client:
            last: Attempt = retrying(attempt, client)
        n = next(attempts) - 1
        outcome = OUTCOME_DELIVERED if last.ok else OUTCOME_FAILED
        LOG.log(logging.INFO if last.ok else logging.WARNING,
                f"{msg_id} to {shown}: {outcome} after {n} attempt(s) "
                f"(status {last.status}{', ' + last.error if last.error else ''})")
        return DeliveryResult(ep.url, msg_id, last.ok, n, last.status)
