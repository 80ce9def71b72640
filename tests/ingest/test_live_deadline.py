"""`--duration` ends a live ingest on time while its server cannot be reached: refused (in
backoff) or accepting the TCP connection and never answering (mid-connect, mid-read), through
the real producer, broker and CLI. Also the CLI's refusals around the broker config."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, free_port
from ingest.runs import ingest_live, retention_chosen, start_broker
from ingest.sources.jetstream import JetstreamSource
from ingest.sources.mastodon import MastodonSource
from polarwatch.cli import main
from polarwatch.config import Config, load_config
from polarwatch.errors import ConfigError
from tests.kafka_helpers import stream_env

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "polarwatch.toml"
DURATION = 2.0
LATE = 1.5  # how much past its deadline a run may end (the last read/connect is cut there)


@contextlib.contextmanager
def silent_listener() -> Iterator[int]:
    """A real TCP port whose kernel completes the handshake but nobody ever answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def _source(kind: str, port: int) -> JetstreamSource | MastodonSource:
    if kind == "jetstream":
        return JetstreamSource(f"ws://127.0.0.1:{port}/subscribe")
    return MastodonSource(f"http://127.0.0.1:{port}", tag="climate")


@pytest.mark.parametrize("kind", ["jetstream", "mastodon"])
@pytest.mark.parametrize("server", ["refused", "silent"])
def test_duration_ends_a_run_whose_server_cannot_be_reached(
        stream_config: Config, tmp_path: Path, kind: str, server: str,
        caplog: pytest.LogCaptureFixture) -> None:
    listener = silent_listener() if server == "silent" else contextlib.nullcontext(free_port())
    with listener as port, caplog.at_level(logging.INFO):
        source = _source(kind, port)
        started = time.monotonic()
        reached = ingest_live(stream_config, source, kind, topic="climate_change",
                              state_dir=tmp_path / "state", duration=DURATION)
        took = time.monotonic() - started
    assert reached is False and source.connections == 0
    assert took < DURATION + LATE, f"{kind} against a {server} server ran {took:.1f} s"
    assert took >= DURATION - 0.1
    said = caplog.text
    assert f"{kind}: 0 posts sent: the server at " in said and "could not be reached in 2 s" in said
    assert source.last_error  # the reason, e.g. ConnectionRefusedError or a timeout


def test_the_cli_exits_1_when_the_server_was_never_reached(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in stream_env(broker.bootstrap, tmp_path).items():
        monkeypatch.setenv(key, value)
    started = time.monotonic()
    rc = main(["--config", str(CONFIG), "ingest", "jetstream", "--url",
               f"ws://127.0.0.1:{free_port()}/subscribe", "--topic", "climate_change",
               "--state-dir", str(tmp_path / "state"), "--duration", "1s"])
    assert rc == 1 and time.monotonic() - started < 1 + LATE + 2  # + topic creation
    assert "could not be reached in 1 s" in capsys.readouterr().err


def test_mastodon_tag_and_public_are_exclusive(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:  # bounded and in tmp_path even if it were accepted
        main(["--config", str(CONFIG), "ingest", "mastodon", "--instance",
              f"http://127.0.0.1:{free_port()}", "--tag", "a", "--public", "--duration", "1s",
              "--state-dir", str(tmp_path)])
    assert exc.value.code == 2
    assert "argument --public: not allowed with argument --tag" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["start", "stop", "prune"])
def test_broker_commands_refuse_an_external_broker(
        action: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    monkeypatch.setenv("POLARWATCH_BROKER_EMBEDDED", "false")
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", f"127.0.0.1:{port}")
    monkeypatch.setenv("POLARWATCH_BROKER_STATE_DIR", str(tmp_path / "broker"))
    try:
        assert main(["--config", str(CONFIG), "broker", action]) == 2
    finally:  # had it started one, stop it
        EmbeddedBroker(port, tmp_path / "broker").stop()
    err = capsys.readouterr().err
    assert f"`broker {action}` manages the embedded broker, but [broker] embedded = false" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "broker").exists()  # nothing was started or written


def test_broker_status_asks_the_external_broker(
        broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POLARWATCH_BROKER_EMBEDDED", "false")
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    assert main(["--config", str(CONFIG), "broker", "status"]) == 0
    closed = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", f"{closed},{broker.bootstrap}")
    assert main(["--config", str(CONFIG), "broker", "status"]) == 0  # the second one answers
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", closed)
    assert main(["--config", str(CONFIG), "broker", "status"]) == 3
    assert f"no Kafka broker answers at {closed}" in capsys.readouterr().err


def test_start_broker_library_refuses_an_external_broker(tmp_path: Path) -> None:
    port = free_port()
    cfg = load_config(CONFIG, env={"POLARWATCH_BROKER_EMBEDDED": "false",
                                   "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                                   "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker")})
    try:
        with pytest.raises(ConfigError, match="embedded = false points at an external one"):
            start_broker(cfg)
    finally:  # had it started one, stop it
        EmbeddedBroker(port, tmp_path / "broker").stop()


def test_retention_warns_only_when_chosen() -> None:
    assert retention_chosen(load_config(CONFIG, env={})) == []  # the shipped file: defaults
    assert retention_chosen(load_config(None, env={})) == []
    chosen = retention_chosen(load_config(CONFIG, env={"POLARWATCH_BROKER_RETENTION_HOURS": "24",
                                                       "POLARWATCH_BROKER_RETENTION_MB": "0"}))
    assert chosen == ["retention_hours = 24"]
