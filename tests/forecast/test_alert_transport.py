"""One webhook POST against real local servers that misbehave: a 2xx then a dropped body, headers
or a body trickled a byte at a time, Retry-After as a date, a redirect; and a sender killed
between the receiver's 200 and its delivery record (at least once, same webhook-id)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import httpx
import pytest

from forecast.alerts.transport import post
from forecast.alerts.webhooks import Endpoint, RetryPolicy, WebhookSender
from polarwatch.warehouse import connect
from tests.forecast.test_webhooks import SECRET, Scripted, _reply, alert, log_rows

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 8.0  # no server below misbehaves for longer than this


class RawServer:
    """A TCP server on 127.0.0.1 that reads one HTTP request per connection and then lets
    ``answer(conn, stop)`` write whatever bytes it likes; ``stop`` is set on close."""

    def __init__(self, answer: Callable[[socket.socket, threading.Event], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.answer, self.tls = answer, tls
        self.connections = 0
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            with contextlib.suppress(OSError):  # the sender hung up
                self.answer(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def trickle(prefix: bytes, drip: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """Send ``prefix``, then ``drip`` one byte every 50 ms (for at most :data:`LIMIT` s)."""
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(prefix)
        until = time.monotonic() + LIMIT
        for byte in drip:
            if stop.is_set() or time.monotonic() > until:
                return
            conn.sendall(bytes([byte]))
            time.sleep(0.05)
    return answer


def test_a_2xx_then_a_dropped_connection_is_delivered(tmp_path: Path) -> None:
    def hang_up(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npartial")
        conn.shutdown(socket.SHUT_RDWR)

    srv = RawServer(hang_up)
    try:
        db = tmp_path / "pw.duckdb"
        policy = RetryPolicy(max_attempts=3, initial=0.0, max_delay=0.0, timeout=2.0)
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], db, policy).send(alert())
        assert res.delivered and res.status == 200 and res.attempts == 1
        assert srv.connections == 1 and log_rows(db) == [("firing", 1, 200, "delivered")]
    finally:
        srv.close()


def test_trickled_headers_are_cut_at_the_deadline(tmp_path: Path) -> None:
    """A byte every 50 ms never trips a 1 s read timeout; the 1 s deadline ends each attempt."""
    srv = RawServer(trickle(b"HTTP/1.1 200 OK\r\nx-pad: ", b"a" * 1000))
    try:
        db = tmp_path / "pw.duckdb"
        policy = RetryPolicy(max_attempts=2, initial=0.0, max_delay=0.0, timeout=1.0)
        started = time.monotonic()
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], db, policy).send(alert())
        took = time.monotonic() - started
        assert not res.delivered and res.status is None and res.attempts == 2
        assert 1.8 <= took < 4.0, f"2 attempts of a 1 s deadline took {took:.1f} s"
        with connect(db, read_only=True) as con:
            errors = [e for (e,) in con.execute("SELECT error FROM alert_deliveries").fetchall()]
        assert all(e.startswith("no answer within the 1 s deadline") for e in errors), errors
    finally:
        srv.close()


def tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and a client
    context that trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_pem, key_pem)
    return server, ssl.create_default_context(cafile=str(cert_pem))


def test_the_deadline_holds_for_https_too(tmp_path: Path) -> None:
    """TLS takes the TCP socket's descriptor over: the deadline must shut the TLS socket down
    (shutting the detached TCP one did nothing, and the trickle held the sender for 8 s)."""
    server_tls, client_tls = tls_contexts(tmp_path)
    srv = RawServer(trickle(b"HTTP/1.1 200 OK\r\nx-pad: ", b"a" * 1000), tls=server_tls)
    try:
        with httpx.Client(verify=client_tls, timeout=1.0) as client:
            started = time.monotonic()
            attempt = post(client, srv.url, b"{}", {"content-type": "application/json"}, 1.0)
            took = time.monotonic() - started
        assert attempt.status is None and attempt.error is not None
        assert attempt.error.startswith("no answer within the 1 s deadline"), attempt.error
        assert took < 3.0, f"a 1 s deadline over https took {took:.1f} s"
    finally:
        srv.close()


def test_a_trickled_body_is_not_waited_for() -> None:
    srv = RawServer(trickle(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n", b"x" * 1000))
    try:
        policy = RetryPolicy(max_attempts=2, initial=0.0, max_delay=0.0, timeout=2.0)
        started = time.monotonic()
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], None, policy).send(alert())
        took = time.monotonic() - started
        assert res.delivered and res.attempts == 1 and took < 1.0, took
    finally:
        srv.close()


@pytest.mark.parametrize(("ahead", "cap", "low", "high"), [(30, 60.0, 25.0, 30.0),
                                                          (None, 5.0, 5.0, 5.0)])
def test_retry_after_as_a_date_is_honoured_up_to_the_cap(ahead: int | None, cap: float,
                                                         low: float, high: float) -> None:
    when = (formatdate(time.time() + ahead, usegmt=True) if ahead
            else "Wed, 21 Oct 2099 07:28:00 GMT")
    srv = Scripted(lambda h, n, s: _reply(h, 429, **{"retry-after": when}) if n == 1
                   else _reply(h, 200))
    try:
        waits: list[float] = []
        policy = RetryPolicy(max_attempts=3, initial=0.01, max_delay=cap, timeout=2.0)
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], None, policy,
                              sleep=waits.append).send(alert())
        assert res.delivered and res.attempts == 2
        assert len(waits) == 1 and low <= waits[0] <= high, waits
    finally:
        srv.close()


@pytest.mark.parametrize("location", ["http://127.0.0.1:9/next?token=SECRETTOKEN123",
                                      "/next/SECRETTOKEN123"])
def test_a_redirect_says_it_was_not_followed_and_where_to(
        location: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    srv = Scripted(lambda h, n, s: _reply(h, 307, location=location))
    try:
        db = tmp_path / "pw.duckdb"
        with caplog.at_level(logging.INFO):
            [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], db).send(alert())
        assert not res.delivered and res.status == 307 and res.attempts == 1
        host = "http://127.0.0.1:9" if location.startswith("http") else srv.url[:-len("/hook")]
        says = f"HTTP 307: redirect to {host}/… not followed"
        assert says in caplog.text and "SECRETTOKEN123" not in caplog.text
        with connect(db, read_only=True) as con:
            [(error,)] = con.execute("SELECT error FROM alert_deliveries").fetchall()
        assert error.startswith(says) and "SECRETTOKEN123" not in error
        assert srv.seen == [("POST", "/hook")]
    finally:
        srv.close()


SENDER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from forecast.alerts.webhooks import Endpoint, RetryPolicy, WebhookSender
from polarwatch.warehouse import connect
from tests.forecast.test_webhooks import SECRET, alert
Path({pid!r}).write_text(str(__import__("os").getpid()))
WebhookSender([Endpoint({url!r}, secret=SECRET)], {db!r}, RetryPolicy(max_attempts=1)).send(alert())
"""


def test_a_crash_after_the_200_repeats_the_message_with_the_same_webhook_id(
        tmp_path: Path) -> None:
    """At least once: the receiver answers 200 and kills the sender before it can record the
    delivery; the next sender sends the message again, under the same webhook-id."""
    pid_file, db = tmp_path / "sender.pid", tmp_path / "pw.duckdb"
    ids: list[str] = []

    def answer_then_kill(h: BaseHTTPRequestHandler, n: int, s: Any) -> None:
        ids.append(h.headers["webhook-id"])
        _reply(h, 200)
        h.wfile.flush()
        if n == 1:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)

    srv = Scripted(answer_then_kill)
    try:
        script = SENDER.format(root=str(ROOT), pid=str(pid_file), url=srv.url, db=str(db))
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, cwd=tmp_path)
        assert run.returncode == -signal.SIGKILL, run.stderr
        [res] = WebhookSender([Endpoint(srv.url, secret=SECRET)], db).send(alert())
        assert res.delivered and not res.skipped
        assert len(ids) == 2 and ids[0] == ids[1] == res.webhook_id
    finally:
        srv.close()
    docs = (ROOT / "docs" / "forecasting.md").read_text()
    assert "at least once" in docs and "never repeats" not in docs
