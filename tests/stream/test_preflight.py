"""`polarwatch stream` with no broker fails in seconds, in one line, before Spark starts (it
took ~4 minutes: Spark's start, then every supervised restart timing out on the broker)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarwatch.config import Config, load_config
from polarwatch.errors import BrokerError
from stream.preflight import bootstrap_addresses, check_broker
from tests.conftest import REPO
from tests.kafka_helpers import stream_env

PORTS = range(19400, 19500)  # this file's share of the machine's ports
FAIL_WITHIN_S = 10.0


def _bound(avoid: int = 0) -> socket.socket:
    """A socket bound to a free port of PORTS on 127.0.0.1 (not listening yet)."""
    for port in (p for p in PORTS if p != avoid):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
    raise AssertionError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@pytest.fixture
def closed_port() -> int:
    """A port of PORTS where nothing listens: connections to it are refused."""
    with _bound() as sock:
        return int(sock.getsockname()[1])


@pytest.fixture
def listening(closed_port: int) -> Iterator[int]:
    """Another port of PORTS, with a real TCP listener (what the check connects to: no Kafka
    needed)."""
    with _bound(avoid=closed_port) as sock:
        sock.listen()
        yield int(sock.getsockname()[1])


def _config(tmp_path: Path, bootstrap: str, **overrides: str) -> Config:
    return load_config(REPO / "polarwatch.toml", env=stream_env(bootstrap, tmp_path, **overrides))


def test_stream_without_a_broker_fails_in_seconds_in_one_line(tmp_path: Path,
                                                               closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    env = {**os.environ, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"),
           **stream_env(address, tmp_path)}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # Spark's JVM too, should it start
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"`polarwatch stream` with no broker at {address} still ran after 60 s")
    elapsed = time.monotonic() - t0
    lines = err.strip().splitlines()
    assert proc.returncode == 2, err
    assert elapsed < FAIL_WITHIN_S, (elapsed, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"polarwatch: error: no Kafka broker answers at {address} ")
    assert "connection refused" in lines[0] and "`polarwatch broker start`" in lines[0]
    assert "[broker] bootstrap_servers" in lines[0]
    assert out == ""
    assert not (tmp_path / "ckpt").exists()  # nothing of Spark's ran


def test_an_external_kafka_is_not_told_to_start_the_embedded_broker(
        tmp_path: Path, closed_port: int) -> None:
    cfg = _config(tmp_path, f"127.0.0.1:{closed_port}", POLARWATCH_BROKER_EMBEDDED="false")
    with pytest.raises(BrokerError) as caught:
        check_broker(cfg)
    assert "broker start" not in str(caught.value)
    assert "start that Kafka, or fix [broker] bootstrap_servers" in str(caught.value)


def test_one_answering_address_of_several_is_enough(tmp_path: Path, closed_port: int,
                                                    listening: int) -> None:
    check_broker(_config(tmp_path, f"127.0.0.1:{closed_port},127.0.0.1:{listening}"))
    check_broker(_config(tmp_path, f"localhost:{listening}"))  # a name that resolves
    with pytest.raises(BrokerError, match=r"\(2 addresses tried: "
                       rf"127\.0\.0\.1:{closed_port}: connection refused; "
                       r"no-such-host\.invalid:9092: no-such-host\.invalid does not resolve\)"):
        check_broker(_config(tmp_path, f"127.0.0.1:{closed_port},no-such-host.invalid:9092"))


def test_an_address_that_never_answers_costs_the_timeout_once(tmp_path: Path) -> None:
    with _bound() as sock:  # a listener whose backlog is full drops new connections' SYNs
        sock.listen(0)
        port = int(sock.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # fills the backlog
            t0 = time.monotonic()
            with pytest.raises(BrokerError, match=r"\(1 address tried: no answer in 0\.5 s\)"):
                check_broker(_config(tmp_path, f"127.0.0.1:{port}"), timeout=0.5)
            assert time.monotonic() - t0 < 2.0


def test_bootstrap_lists() -> None:
    assert bootstrap_addresses("a:1, [::1]:9092,") == [("a", 1), ("::1", 9092)]
    # forms this does not parse are left to kafka-python (not checked, not refused)
    assert bootstrap_addresses("kafka") is None
    assert bootstrap_addresses("a:1,b:port") is None
    assert bootstrap_addresses("a:0") is None
    assert bootstrap_addresses("") is None
