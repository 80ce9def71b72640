"""`polarwatch dashboard` answers only its own Host names (a web page that rebinds its name to
127.0.0.1 is refused by the app's WebSocket), and prints the one link that may edit events."""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from dashboard.safety import allowed_hosts, token_ok

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def websocket_status(port: int, host: str, origin: str | None = None) -> str:
    """The status line the app's WebSocket answers to an upgrade with this Host (and Origin)."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /_stcore/stream HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               + (f"Origin: {origin}\r\n" if origin else "") + "\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request.encode())
        return s.recv(200).decode(errors="replace").split("\r\n")[0]


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[tuple[int, str]]:
    """`polarwatch dashboard` on a free port with editing on; yields (port, its output so far)."""
    for name in ("polarwatch.toml", "topics.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    port = _free_port()
    env = {**os.environ, "POLARWATCH_CONFIG": str(tmp_path / "polarwatch.toml"),
           "POLARWATCH_DASHBOARD_EDIT_EVENTS": "true", "POLARWATCH_ALERTS_SECRET": "whsec_eA==",
           "AWS_SECRET_ACCESS_KEY": "s3cr3t"}
    log = tmp_path / "dashboard.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "dashboard", "--port",
                                 str(port)], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        yield port, log.read_text() + "".join(  # ... and the app's environment
            f"\nAPP_ENV {name}" for child in psutil.Process(proc.pid).children(recursive=True)
            for name in child.environ())
    finally:
        proc.terminate()
        proc.wait(20)


def test_a_rebinding_page_is_refused_and_the_bound_names_are_answered(
        dashboard: tuple[int, str]) -> None:
    port, _ = dashboard
    assert websocket_status(port, f"127.0.0.1:{port}").endswith("101 Switching Protocols")
    assert websocket_status(port, f"localhost:{port}").endswith("101 Switching Protocols")
    # the attacker's name resolved to 127.0.0.1: the browser sends it as Host (and Origin)
    assert websocket_status(port, f"attacker.example:{port}").endswith("403 Forbidden")
    assert websocket_status(port, f"attacker.example:{port}",
                            f"http://attacker.example:{port}").endswith("403 Forbidden")
    # a page on another origin talking to 127.0.0.1 directly
    assert websocket_status(port, f"127.0.0.1:{port}",
                            "http://attacker.example").endswith("403 Forbidden")
    # what docs/dashboard.md says is not refused: the plain HTTP routes (the page skeleton,
    # health) answer any Host; none of them carries data from the warehouse
    for route in ("/topic", "/_stcore/health"):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{route}",
                                         headers={"Host": f"attacker.example:{port}"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200 and b"duckdb" not in resp.read()


def test_the_edit_link_carries_a_fresh_token(dashboard: tuple[int, str]) -> None:
    port, output = dashboard
    links = re.findall(rf"http://127\.0\.0\.1:{port}/event_calendar\?token=([\w-]+)", output)
    assert len(links) == 1 and len(links[0]) >= 32, output


def test_the_app_inherits_no_credential(dashboard: tuple[int, str]) -> None:
    _, output = dashboard
    assert "APP_ENV POLARWATCH_WAREHOUSE_PATH" in output  # the app's environment was read
    assert "APP_ENV POLARWATCH_ALERTS_SECRET" not in output
    assert "APP_ENV AWS_SECRET_ACCESS_KEY" not in output


def test_hosts_for_each_address() -> None:
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "::1", "localhost"]
    assert allowed_hosts("10.1.2.3", ["proxy.example"]) == ["10.1.2.3", "proxy.example"]
    exposed = allowed_hosts("0.0.0.0")
    assert socket.gethostname() in exposed and "localhost" in exposed


@pytest.mark.parametrize(("presented", "expected", "ok"), [
    ("abc", "abc", True), ("abd", "abc", False), (None, "abc", False), ("", "", False),
    ("abc", None, False), (["abc"], "abc", False)])
def test_only_the_run_s_token_writes(presented: object, expected: str | None, ok: bool) -> None:
    assert token_ok(presented, expected) is ok
