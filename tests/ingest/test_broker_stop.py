"""Stopping a process the broker launched: nothing it started keeps its port open."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.broker import _launch, _stop_pid, free_port, port_open
from polarwatch.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]

# A process that ignores SIGTERM and listens on argv[1], after starting a child of its own that
# listens on argv[2] (what a launcher script whose server is a grandchild looks like).
STUBBORN = """
import signal, socket, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", '''
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(600)
''', sys.argv[2]])
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
time.sleep(600)
"""


def _wait_open(port: int) -> None:
    deadline = time.monotonic() + 30
    while not port_open("127.0.0.1", port):
        assert time.monotonic() < deadline, f"port {port} never opened"
        time.sleep(0.05)


def test_stop_returns_only_when_the_process_and_its_children_are_gone(tmp_path: Path) -> None:
    own, child = free_port(), free_port()
    proc = _launch([sys.executable, "-c", STUBBORN, str(own), str(child)], None,
                   tmp_path / "pid", tmp_path / "log")
    _wait_open(own)
    _wait_open(child)
    _stop_pid(proc.pid, timeout=0.5)  # SIGTERM is ignored: SIGKILL after 0.5 s
    assert not port_open("127.0.0.1", own)
    assert not port_open("127.0.0.1", child)
    assert proc.poll() is not None
    try:
        proc.wait(timeout=1)
    except subprocess.TimeoutExpired:  # pragma: no cover - reported by the asserts above
        proc.kill()


def test_broker_start_that_fails_after_the_launch_stops_the_broker_it_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`broker start` failing after the broker runs (its topics not created: a broker that
    cannot answer, Ctrl-C) left that broker running; one that already ran stays."""
    import ingest.runs
    from polarwatch.errors import BrokerError

    port = free_port()
    cfg = load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker")})

    def refuse(*args: object, **kwargs: object) -> list[str]:  # the failure, injected
        raise BrokerError("topics not created")

    monkeypatch.setattr(ingest.runs, "ensure_topics", refuse)
    with pytest.raises(BrokerError, match="topics not created"):
        ingest.runs.start_broker(cfg)
    assert not port_open("127.0.0.1", port)  # stopped: it was this command's

    monkeypatch.undo()
    broker = ingest.runs.start_broker(cfg)  # running now, and healthy
    try:
        monkeypatch.setattr(ingest.runs, "ensure_topics", refuse)
        with pytest.raises(BrokerError):
            ingest.runs.start_broker(cfg)
        assert port_open("127.0.0.1", port)  # not this command's broker: left running
    finally:
        broker.stop()


def _config(tmp_path: Path) -> Config:
    """The shipped config with the embedded broker on a free port, its state under tmp_path."""
    return load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker")})


def test_broker_start_names_our_own_broker_that_does_not_answer_and_replaces_a_dead_one(
        tmp_path: Path) -> None:
    """Audit R: `broker start` took our own broker that no longer answered (stopped, or killed
    a moment before) for a healthy one and blamed [broker]'s security settings. Real Tansu,
    stopped with SIGSTOP: the error names our process and how to replace it; killed while
    `broker start` waits on it: a new broker is started."""
    import os
    import signal
    import threading

    import ingest.runs
    from polarwatch.errors import BrokerError

    cfg = _config(tmp_path)
    broker = ingest.runs.start_broker(cfg)
    try:
        pid = broker.pid()
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        with pytest.raises(BrokerError) as err:
            ingest.runs.start_broker(cfg)
        assert f"the embedded broker already running (pid {pid}" in str(err.value)
        assert "`polarwatch broker stop`, then `polarwatch broker start`" in str(err.value)
        assert "security_protocol" not in str(err.value)

        killer = threading.Timer(2.0, os.kill, (pid, signal.SIGKILL))
        killer.start()  # dies while `broker start` waits for its answer
        again = ingest.runs.start_broker(cfg)
        killer.join()
        assert again.pid() not in (None, pid)
        assert again.running()
    finally:
        broker.stop()


def test_broker_status_calls_a_broker_that_gives_no_kafka_answer_not_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`broker status` said "broker running" (exit 0) of our Tansu stopped with SIGSTOP: its port
    still accepts TCP connections, and status asked nothing more, while `broker start` on the
    same broker says it does not answer. docs/cli.md: `status` exits 3 when the broker is
    down; a broker that gives no Kafka answer is down to its clients."""
    import logging
    import os
    import signal

    import ingest.runs

    cfg = _config(tmp_path)
    broker = ingest.runs.start_broker(cfg)
    try:
        pid = broker.pid()
        assert pid is not None
        assert ingest.runs.broker_status(cfg) is True
        os.kill(pid, signal.SIGSTOP)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="ingest.runs"):
            assert ingest.runs.broker_status(cfg) is False
        assert f"(pid {pid}," in caplog.text and "does not answer" in caplog.text
        assert "`polarwatch broker stop`, then `polarwatch broker start`" in caplog.text
        assert "security_protocol" not in caplog.text
        os.kill(pid, signal.SIGCONT)
        assert ingest.runs.broker_status(cfg) is True
    finally:
        broker.stop()
