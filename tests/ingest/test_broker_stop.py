"""Stopping a process the broker launched: nothing it started keeps its port open."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from ingest.broker import _launch, _stop_pid, free_port, port_open

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
