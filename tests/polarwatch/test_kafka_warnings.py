"""Under ``PYTHONWARNINGS=error`` kafka-python 3.0's own DeprecationWarning ("read_text is
deprecated", from ``importlib.resources`` while ``import kafka`` loads its protocol schemas)
crashed `polarwatch ingest file` and `polarwatch broker start` with a traceback, and `broker
start` left the broker it had launched running. Now the CLI ignores kafka's own deprecation
warnings (and nothing else), `broker start` loads kafka-python before it launches a broker, and
the launched broker's handle is no ResourceWarning."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, port_open
from polarwatch.cli import quiet_kafka_deprecations

REPO = Path(__file__).resolve().parents[2]
PORTS = range(21600, 21700)  # the ports these tests may open


def _free_port() -> int:
    for port in random.sample(PORTS, len(PORTS)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


def _polarwatch(tmp_path: Path, port: int, *argv: str, prelude: str = ""
                ) -> subprocess.CompletedProcess[str]:
    """`polarwatch --config polarwatch.toml ARGV` under PYTHONWARNINGS=error, its broker on
    `port` with its state in `tmp_path`; `prelude` runs first in that process."""
    env = {**os.environ, "PYTHONWARNINGS": "error",
           "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
           "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker")}
    code = (f"import sys\n{prelude}\nfrom polarwatch.cli import main\n"
            f"sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, "--config", str(REPO / "polarwatch.toml"),
                           *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def test_broker_start_and_ingest_file_run_under_pythonwarnings_error(tmp_path: Path) -> None:
    port = _free_port()
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "a1", "text": "We need background checks now",
                                 "created_at": "2024-05-01T12:00:00+00:00",
                                 "author_id": "u1", "platform": "test"}) + "\n")
    try:
        started = _polarwatch(tmp_path, port, "broker", "start")
        assert started.returncode == 0, started.stderr
        assert "Warning" not in started.stderr, started.stderr  # nor "Exception ignored"
        ingested = _polarwatch(tmp_path, port, "ingest", "file", str(posts), "--topic",
                               "gun_control", "--state-dir", str(tmp_path / "state"))
        assert ingested.returncode == 0, ingested.stderr
        assert "1 posts sent" in ingested.stderr and "Warning" not in ingested.stderr
        stopped = _polarwatch(tmp_path, port, "broker", "stop")
        assert stopped.returncode == 0 and "broker stopped" in stopped.stderr, stopped.stderr
    finally:
        EmbeddedBroker(port, tmp_path / "broker").stop()
    assert not port_open("127.0.0.1", port)


def test_broker_start_that_cannot_load_kafka_leaves_no_broker(tmp_path: Path) -> None:
    """Without the CLI's filter `import kafka` raises: the broker must not be left running."""
    port = _free_port()
    try:
        done = _polarwatch(tmp_path, port, "broker", "start", prelude=(
            "import polarwatch.cli\npolarwatch.cli.quiet_kafka_deprecations = lambda: None"))
        assert done.returncode != 0, done.stderr
        assert "DeprecationWarning: read_text is deprecated" in done.stderr, done.stderr
        assert not port_open("127.0.0.1", port)
        assert not (tmp_path / "broker" / "tansu.pid").exists()
    finally:
        EmbeddedBroker(port, tmp_path / "broker").stop()


def test_only_kafkas_own_deprecation_warnings_are_silenced() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # what PYTHONWARNINGS=error installs at start-up
        quiet_kafka_deprecations()
        for module in ("kafka", "kafka.protocol.schemas.load_json"):
            warnings.warn_explicit("old", DeprecationWarning, "x.py", 1, module=module)
        for module, category in (("kafkaesque", DeprecationWarning), ("mykafka", DeprecationWarning),
                                 ("kafka.admin", UserWarning), ("ingest.broker",
                                                                DeprecationWarning)):
            with pytest.raises(category):
                warnings.warn_explicit("old", category, "x.py", 1, module=module)
        import importlib.resources

        if sys.version_info < (3, 13):  # deprecated in 3.11 and 3.12 only
            with pytest.raises(DeprecationWarning, match="read_text is deprecated"):
                importlib.resources.read_text("json", "__init__.py")  # another caller's
