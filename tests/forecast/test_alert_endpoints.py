"""Endpoints served apart, against real local servers: a dead or hanging receiver holds no other
endpoint's messages and the run counts what each endpoint has; a redirect to a Location httpx
cannot follow (``javascript:``, ``mailto:``, an unparsable one) fails that endpoint at once
instead of crashing the run; ``alerts test`` takes the config's timeout and backoff and never
writes polarwatch's tables into a file that is not a warehouse, nor creates a missing one."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from forecast.alerts.delivery import send_flag_alerts
from forecast.summary import ForecastSummary
from polarwatch.cli import main
from polarwatch.warehouse import connect, init_schema
from tests.forecast.test_alert_episodes import write_history
from tests.forecast.test_alerting import config
from tests.forecast.test_webhooks import Scripted, _reply


class Dead:
    """A TCP server that notes when each connection came and then closes it at once, or
    (``hang``) holds it without a word until closed."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.times: list[float] = []
        self.stop = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/dead"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.times.append(time.monotonic())
            if self.hang:
                threading.Thread(target=lambda c=conn: (self.stop.wait(), c.close()),
                                 daemon=True).start()
            else:
                conn.close()

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


class Healthy(Scripted):
    """Answers 200 and notes when each request came."""

    def __init__(self) -> None:
        self.times: list[float] = []

        def answer(h: BaseHTTPRequestHandler, n: int, s: Any) -> None:
            self.times.append(time.monotonic())
            _reply(h, 200)

        super().__init__(answer)


@pytest.fixture()
def healthy() -> Iterator[Healthy]:
    srv = Healthy()
    yield srv
    srv.close()


@pytest.mark.parametrize("hang", [False, True], ids=["closes", "hangs"])
def test_a_dead_endpoint_holds_no_other_endpoint(hang: bool, tmp_path: Path, healthy: Healthy,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The dead endpoint comes first; the healthy one still gets both messages of an episode
    (firing, resolved) before the dead one's first retry, and the run says it has them."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, 110)])  # opened and resolved: two messages
    dead = Dead(hang=hang)
    try:
        cfg = config(path, f"{dead.url},{healthy.url}", max_attempts="3",
                     backoff_seconds="0.8", max_backoff_seconds="0.8", timeout_seconds="0.5")
        with caplog.at_level(logging.INFO):
            summary = send_flag_alerts(cfg)
    finally:
        dead.close()
    assert len(dead.times) == 3 and len(healthy.times) == 2, (dead.times, healthy.times)
    assert max(healthy.times) < dead.times[1], "the healthy endpoint waited for the dead one"
    assert summary["sent"] == 0 and summary["failed"] == 2  # pending for the dead endpoint
    host = dead.url.rsplit("/", 1)[0]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("alerts "))
    assert "0 sent to all 2 endpoint(s), 2 pending" in line
    assert f"{host}/… 0 of 2, {healthy.url.rsplit('/', 1)[0]}/… 2 of 2" in line, line


@pytest.mark.parametrize("location", ["javascript:alert(1)", "mailto:ops@example.org",
                                      "http://[::1"])
def test_a_redirect_httpx_cannot_build_fails_that_endpoint_at_once(
        location: str, tmp_path: Path, healthy: Healthy,
        caplog: pytest.LogCaptureFixture) -> None:
    """httpx raised InvalidURL (not a TransportError: a traceback after forecast's rows) or,
    for an unparsable Location, a RemoteProtocolError retried like a dead receiver."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, None)])
    redirect = Scripted(lambda h, n, s: _reply(h, 308, location=location))
    try:
        cfg = config(path, f"{redirect.url},{healthy.url}", max_attempts="3",
                     backoff_seconds="5", max_backoff_seconds="5")
        with caplog.at_level(logging.INFO):
            summary = send_flag_alerts(cfg)
    finally:
        redirect.close()
    assert summary["failed"] == 1 and len(healthy.times) == 1
    assert redirect.seen == [("POST", "/hook")]  # one attempt: no retry, no GET elsewhere
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT status_code, error, outcome FROM alert_deliveries WHERE "
                           "endpoint = ?", [redirect.url]).fetchall()
    [(status, error, outcome)] = rows
    assert status == 308 and outcome == "failed" and "not followed" in error, rows
    assert "ops@example.org" not in caplog.text and "alert(1)" not in caplog.text


@pytest.fixture()
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.upper().startswith("POLARWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no polarwatch.toml: the defaults
    return tmp_path


def test_alerts_test_refuses_another_programs_duckdb_and_leaves_it_as_it_was(
        cli_env: Path, healthy: Healthy, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import duckdb

    other = cli_env / "other.duckdb"
    with contextlib.closing(duckdb.connect(str(other))) as con:
        con.execute("CREATE TABLE customers (x INTEGER)")
    before = other.read_bytes()
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(other))
    rc = main(["alerts", "test", healthy.url, "--attempts", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "not a polarwatch warehouse (its tables are customers)" in err, err
    assert "--no-log" in err and other.read_bytes() == before and healthy.times == []


def test_alerts_test_on_a_missing_warehouse_sends_and_creates_nothing(
        cli_env: Path, healthy: Healthy, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    typo = cli_env / "pw-typo.duckdb"
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(typo))
    with caplog.at_level(logging.INFO):
        rc = main(["alerts", "test", healthy.url, "--attempts", "1"])
    assert rc == 0 and len(healthy.times) == 1, capsys.readouterr().err
    assert f"{typo} does not exist, so this test is not logged" in caplog.text
    assert sorted(p.name for p in cli_env.iterdir()) == []  # no warehouse, no WAL


def test_alerts_test_takes_the_configs_timeout_and_backoff(
        cli_env: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 s timeout cuts a receiver that answers after 3 s (the built-in 10 s let it through);
    a 0.2 s max_backoff_seconds caps a Retry-After of a day (the built-in cap is 120 s)."""
    def late(h: BaseHTTPRequestHandler, n: int, s: Any) -> None:
        time.sleep(3)
        _reply(h, 200)

    slow = Scripted(late)
    busy = Scripted(lambda h, n, s: _reply(h, 503, **{"retry-after": "86400"}))
    try:
        monkeypatch.setenv("POLARWATCH_ALERTS_TIMEOUT_SECONDS", "1")
        monkeypatch.setenv("POLARWATCH_ALERTS_MAX_BACKOFF_SECONDS", "0.2")
        assert main(["alerts", "test", slow.url, "--attempts", "1", "--no-log"]) == 1
        assert "after 1 attempt(s), last status None" in capsys.readouterr().err
        started = time.monotonic()
        assert main(["alerts", "test", busy.url, "--attempts", "2", "--no-log"]) == 1
        took = time.monotonic() - started
        assert "after 2 attempt(s), last status 503" in capsys.readouterr().err
        assert took < 3, took
    finally:
        slow.close()
        busy.close()


def test_the_forecast_line_says_when_no_alerts_were_sent() -> None:
    fitted: Any = ForecastSummary("mean_score", topics=1)
    assert "None" not in str(fitted) and "no alerts sent (no [alerts] webhooks)" in str(fitted)
    fitted.alerts = dict(active=1, opened=1, resolved=0, sent=0, failed=1, escalated=0,
                         history=0, deferred=0)
    assert "alerts: 1 active, 1 new, 0 resolved, 0 sent, 1 pending" in str(fitted)
