"""Webhooks against a real local HTTP receiver that verifies signatures, goes down, comes back."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from forecast.alerts.webhooks import (
    Alert,
    Endpoint,
    RetryPolicy,
    WebhookSender,
    alertmanager_payload,
    sign,
    verify,
)
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect

SECRET = "whsec_" + base64.b64encode(b"polarwatch-test-key-0123456789ab").decode()
FAST = RetryPolicy(max_attempts=5, initial=0.01, factor=2.0, max_delay=0.05, timeout=2.0)


class Receiver:
    """Answers 503 to the first ``down_for`` requests, then 200; records verified requests."""

    def __init__(self, down_for: int = 0) -> None:
        self.down_for = down_for
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["content-length"]))
                ok = verify(SECRET, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append({"id": self.headers["webhook-id"], "verified": ok,
                                       "body": json.loads(body)})
                code = 401 if not ok else 503 if len(outer.requests) <= outer.down_for else 200
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver(down_for=3)
    yield r
    r.close()


def alert(**extra: Any) -> Alert:
    return Alert(labels={"alertname": "PolarizationSpike", "topic": "abortion",
                         "flag": "reactive"}, annotations={"summary": "test"},
                 starts_at=datetime(2024, 3, 1, 12, tzinfo=UTC), **extra)


def log_rows(db: Path) -> list[tuple[Any, ...]]:
    with connect(db, read_only=True) as con:
        return con.execute("SELECT state, attempt, status_code, outcome FROM alert_deliveries "
                           "ORDER BY state, attempt").fetchall()


def test_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1,bogus " + sig}
    assert verify(secret, headers, b'{"test": 2432232314}', now=1614265330 + 10)
    assert not verify(secret, headers, b'{"test": 2432232315}', now=1614265330)
    assert not verify(secret, headers, b'{"test": 2432232314}', now=1614265330 + 3600)
    with pytest.raises(ConfigError, match="whsec_"):
        sign("secret", "id", 1, b"")


def test_default_backoff_covers_ten_minutes() -> None:
    delays = RetryPolicy().delays()
    assert sum(delays) >= 600
    assert delays[:3] == [2.0, 4.0, 8.0] and max(delays) == 120.0


def test_alertmanager_payload_shape() -> None:
    firing, resolved = alert(), alert(ends_at=datetime(2024, 3, 1, 14, tzinfo=UTC))
    body = alertmanager_payload([firing])
    assert body["version"] == "4" and body["status"] == "firing"
    a = body["alerts"][0]
    assert set(a) >= {"labels", "annotations", "startsAt", "endsAt", "fingerprint", "status"}
    assert a["startsAt"] == "2024-03-01T12:00:00Z" and a["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved.fingerprint == firing.fingerprint  # same labels, same alert
    assert alertmanager_payload([resolved])["alerts"][0]["endsAt"] == "2024-03-01T14:00:00Z"


def test_retries_through_downtime_then_dedupes_after_restart(receiver: Receiver,
                                                             tmp_path: Path) -> None:
    db = tmp_path / "pw.duckdb"
    waits: list[float] = []
    sender = WebhookSender([Endpoint(receiver.url, secret=SECRET)], db, FAST, sleep=waits.append)
    [res] = sender.send(alert())
    assert res.delivered and res.attempts == 4 and res.status == 200
    assert waits == [0.01, 0.02, 0.04]
    assert len(receiver.requests) == 4 and all(r["verified"] for r in receiver.requests)
    assert len({r["id"] for r in receiver.requests}) == 1  # same webhook-id on every retry
    assert log_rows(db) == [("firing", 1, 503, "retry"), ("firing", 2, 503, "retry"),
                            ("firing", 3, 503, "retry"), ("firing", 4, 200, "delivered")]

    restarted = WebhookSender([Endpoint(receiver.url, secret=SECRET)], db, FAST)
    [again] = restarted.send(alert())
    assert again.skipped and len(receiver.requests) == 4  # nothing sent twice

    [resolved] = restarted.send(alert(ends_at=datetime(2024, 3, 1, 14, tzinfo=UTC)))
    assert resolved.delivered and resolved.attempts == 1
    assert receiver.requests[-1]["body"]["type"] == "alert.resolved"  # standard, the default
    assert len(log_rows(db)) == 5


def test_gives_up_and_retries_after_restart(tmp_path: Path) -> None:
    down = Receiver(down_for=100)
    try:
        db = tmp_path / "pw.duckdb"
        policy = RetryPolicy(max_attempts=2, initial=0.0, max_delay=0.0, timeout=2.0)
        [res] = WebhookSender([Endpoint(down.url, secret=SECRET)], db, policy).send(alert())
        assert not res.delivered and res.attempts == 2
        assert [r[3] for r in log_rows(db)] == ["retry", "failed"]
        down.down_for = 0  # receiver back: a restarted sender delivers what never arrived
        [res] = WebhookSender([Endpoint(down.url, secret=SECRET)], db, policy).send(alert())
        assert res.delivered and len(down.requests) == 3
    finally:
        down.close()


def test_unreachable_and_client_errors(tmp_path: Path) -> None:
    r = Receiver()
    url = r.url
    r.close()  # nothing listens there any more: connection refused
    policy = RetryPolicy(max_attempts=2, initial=0.0, max_delay=0.0, timeout=1.0)
    [res] = WebhookSender([Endpoint(url, secret=SECRET)], None, policy).send(alert())
    assert not res.delivered and res.status is None and res.attempts == 2
    bad = Receiver()
    try:  # wrong secret: the receiver answers 401, which is not retried
        other = "whsec_" + base64.b64encode(b"another-key").decode()
        [res] = WebhookSender([Endpoint(bad.url, secret=other)], None, policy).send(alert())
        assert not res.delivered and res.status == 401 and res.attempts == 1
    finally:
        bad.close()
    with pytest.raises(ConfigError, match="http"):
        Endpoint("ftp://x")


class Scripted:
    """A real HTTP server whose answer to each request is ``answer(handler, n)``; records the
    method and path of every request."""

    def __init__(self, answer: Any) -> None:
        self.seen: list[tuple[str, str]] = []
        self.written = 0  # bytes of answer body the server managed to send
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.command, self.path))
                answer(self, len(outer.seen), outer)

            do_POST = do_GET = _any  # noqa: N815 (http.server API)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _reply(handler: BaseHTTPRequestHandler, code: int, **headers: str) -> None:
    handler.send_response(code)
    for k, v in {"content-length": "0", **headers}.items():
        handler.send_header(k, v)
    handler.end_headers()


def test_a_redirect_is_not_followed() -> None:
    srv = Scripted(lambda h, n, s: _reply(h, 302, location="/elsewhere") if h.path == "/hook"
                   else _reply(h, 200))
    try:
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], None, FAST).send(alert())
        assert not res.delivered and res.status == 302 and res.attempts == 1
        assert srv.seen == [("POST", "/hook")]  # not re-sent (as a GET) to /elsewhere
    finally:
        srv.close()


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    srv = Scripted(lambda h, n, s: _reply(h, 503, **{"retry-after": "3"}) if n == 1
                   else _reply(h, 200))
    try:
        waits: list[float] = []
        policy = RetryPolicy(max_attempts=3, initial=0.01, max_delay=60.0, timeout=2.0)
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], None, policy,
                              sleep=waits.append).send(alert())
        assert res.delivered and res.attempts == 2 and waits == [3.0]
    finally:
        srv.close()


def test_only_a_bounded_part_of_the_answer_is_read() -> None:
    size, chunk = 64 * 2**20, b"x" * 65536  # a 64 MiB answer
    done = threading.Event()

    def huge(h: BaseHTTPRequestHandler, n: int, s: Scripted) -> None:
        h.send_response(200)
        h.send_header("content-length", str(size))
        h.end_headers()
        try:
            while s.written < size:
                h.wfile.write(chunk)
                s.written += len(chunk)
        except OSError:  # the sender hung up
            pass
        done.set()

    srv = Scripted(huge)
    try:
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], None, FAST).send(alert())
        assert res.delivered and res.status == 200
        assert done.wait(30), "the server is still writing: the answer was not dropped"
        assert srv.written < size // 4, srv.written  # socket buffers, not the whole answer
    finally:
        srv.close()


def test_a_receiver_down_through_a_whole_schedule_gets_one_attempt_next_run(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A dead receiver cost every scheduled run its whole retry schedule (12 minutes by
    default). After a run in which it failed a message for good without an answer, the next
    run tries it once; once it answers, the schedule is back (real HTTP server)."""
    down = Receiver(down_for=100)
    db = tmp_path / "pw.duckdb"
    policy = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0, timeout=2.0)

    def run(**extra: Any) -> Any:
        return WebhookSender([Endpoint(down.url, secret=SECRET)], db, policy).send(
            alert(**extra))[0]

    try:
        assert run().attempts == 3  # the whole schedule, then failed
        res = run()  # still down: one attempt, the message stays pending
        assert not res.delivered and res.attempts == 1 and len(down.requests) == 4
        assert "one attempt this run" in caplog.text
        assert "took no message through a whole schedule of 3 attempts" in caplog.text
        assert not run().delivered and len(down.requests) == 5  # one attempt again
        asked = WebhookSender([Endpoint(down.url, secret=SECRET)], db, policy,
                              fail_fast=False).send(alert(), dedupe=False)[0]  # `alerts test`
        assert asked.attempts == 3 and len(down.requests) == 8  # as often as asked
        down.down_for = len(down.requests)  # back: its single attempt delivers it
        assert run().delivered and len(down.requests) == 9
        down.down_for = len(down.requests) + 2  # a blip after it answered: the whole schedule
        res = run(ends_at=datetime(2024, 3, 1, 14, tzinfo=UTC))
        assert res.delivered and res.attempts == 3
    finally:
        down.close()


def test_the_warning_names_what_the_last_schedule_got_even_no_answer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A schedule of 503s, then one without any answer (the receiver gone): the warning says
    "no answer", not the earlier 503 (review: DuckDB's arg_max skips a NULL status)."""
    down = Receiver(down_for=100)
    db = tmp_path / "pw.duckdb"
    policy = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0, timeout=2.0)
    endpoint = Endpoint(down.url, secret=SECRET)
    try:
        assert WebhookSender([endpoint], db, policy).send(alert())[0].attempts == 3  # 503s
    finally:
        down.close()
    gone = WebhookSender([endpoint], db, policy, fail_fast=False).send(  # another message
        alert(ends_at=datetime(2024, 3, 1, 14, tzinfo=UTC)), dedupe=False)
    assert gone[0].attempts == 3 and gone[0].status is None  # `alerts test`: no answer
    caplog.clear()
    assert WebhookSender([endpoint], db, policy).send(alert())[0].attempts == 1
    assert "(no answer to the last)" in caplog.text, caplog.text


def test_a_receiver_that_refused_a_message_keeps_its_schedule(tmp_path: Path) -> None:
    """A 4xx is a refusal of that message, not a dead receiver: the next run retries in full."""
    refusing = Receiver()
    db = tmp_path / "pw.duckdb"
    policy = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0, timeout=2.0)
    other = "whsec_" + base64.b64encode(b"another-key").decode()
    try:
        [res] = WebhookSender([Endpoint(refusing.url, secret=other)], db, policy).send(alert())
        assert res.status == 401 and res.attempts == 1
        refusing.down_for = 100
        [res] = WebhookSender([Endpoint(refusing.url, secret=SECRET)], db, policy).send(alert())
        assert not res.delivered and res.attempts == 3
    finally:
        refusing.close()


def test_a_short_failed_test_of_a_receiver_does_not_cut_the_next_run_s_schedule(
        tmp_path: Path) -> None:
    """`alerts test --attempts 1` to a receiver that is down is no whole schedule: the next
    run still retries as configured (a review: it made the run's delivery a single attempt)."""
    down = Receiver(down_for=100)
    db = tmp_path / "pw.duckdb"
    policy = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0, timeout=2.0)
    once = dataclasses.replace(policy, max_attempts=1)
    try:
        [res] = WebhookSender([Endpoint(down.url, secret=SECRET)], db, once,
                              fail_fast=False).send(alert(), dedupe=False)
        assert res.attempts == 1 and not res.delivered
        [res] = WebhookSender([Endpoint(down.url, secret=SECRET)], db, policy).send(
            alert(ends_at=datetime(2024, 3, 1, 14, tzinfo=UTC)))
        assert res.attempts == 3
    finally:
        down.close()
