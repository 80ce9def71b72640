"""Library functions the CLI, the demo and the benchmarks share (``ingest.runs``,
``ingest.retention``, ``ingest.broker``, ``stream.summary``), without a broker."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import embedded_broker
from ingest.retention import prune_storage, start_pruner
from ingest.runs import mastodon_source
from polarwatch.config import load_config
from polarwatch.console import STOP
from polarwatch.errors import BrokerError, ConfigError, PolarwatchError

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "polarwatch.toml"


class _NoS3:
    """A broker whose S3 server is not running."""

    state_dir = pruner_log_file = Path("/nowhere")

    def __init__(self) -> None:
        self.asked = 0
        self.pruners: list[Any] = []

    def s3_endpoint(self) -> None:
        self.asked += 1
        return None

    def start_pruner(self, cmd: list[str], env: dict[str, str]) -> int:
        self.pruners.append(cmd)
        return 1


def test_the_embedded_broker_only_runs_on_loopback() -> None:
    cfg = load_config(CONFIG, env={"POLARWATCH_BROKER_BOOTSTRAP_SERVERS": "kafka:9092"})
    with pytest.raises(PolarwatchError, match="only runs on 127.0.0.1"):
        embedded_broker(cfg)
    cfg = load_config(CONFIG, env={"POLARWATCH_BROKER_BOOTSTRAP_SERVERS": "127.0.0.1:19092"})
    assert embedded_broker(cfg).port == 19092


def test_prune_needs_s3_storage_and_a_retention(caplog: pytest.LogCaptureFixture) -> None:
    memory = load_config(CONFIG, env={"POLARWATCH_BROKER_STORAGE": "memory"})
    with pytest.raises(PolarwatchError, match="needs \\[broker\\] storage = \"s3\""):
        prune_storage(memory, _NoS3())  # type: ignore[arg-type]
    off = load_config(CONFIG, env={"POLARWATCH_BROKER_STORAGE": "s3",
                                   "POLARWATCH_BROKER_RETENTION_HOURS": "0",
                                   "POLARWATCH_BROKER_RETENTION_MB": "0",
                                   "POLARWATCH_BROKER_RETENTION_BATCHES": "0"})
    broker = _NoS3()
    with caplog.at_level(logging.INFO, logger="ingest.retention"):
        prune_storage(off, broker)  # type: ignore[arg-type]
    assert "nothing to prune" in caplog.text and broker.asked == 0


def test_prune_once_fails_and_prune_every_retries(caplog: pytest.LogCaptureFixture) -> None:
    cfg = load_config(CONFIG, env={"POLARWATCH_BROKER_STORAGE": "s3"})
    with pytest.raises(BrokerError, match="S3 server is not running"):
        prune_storage(cfg, _NoS3())  # type: ignore[arg-type]
    broker = _NoS3()
    stopper = threading.Timer(0.5, STOP.set)
    stopper.start()
    try:
        with caplog.at_level(logging.WARNING, logger="ingest.retention"):
            prune_storage(cfg, broker, every=0.05)  # type: ignore[arg-type]
    finally:
        stopper.cancel()
        STOP.clear()
    assert broker.asked >= 2 and "prune round failed, retrying in 0.05 s" in caplog.text


def test_the_pruner_runs_only_with_s3_storage_and_a_retention() -> None:
    broker = _NoS3()
    start_pruner(load_config(CONFIG, env={"POLARWATCH_BROKER_STORAGE": "memory"}),
                 broker)  # type: ignore[arg-type]
    assert broker.pruners == []
    start_pruner(load_config(CONFIG, env={"POLARWATCH_BROKER_STORAGE": "s3",
                                          "POLARWATCH_BROKER_PRUNE_EVERY_S": "0.5"}),
                 broker)  # type: ignore[arg-type]
    assert broker.pruners[0][-4:] == ["broker", "prune", "--every", "0.5s"]


def test_mastodon_needs_a_timeline_and_reads_its_token(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(CONFIG, env={"POLARWATCH_INGEST_MASTODON_TOKEN": "from-config"})
    with pytest.raises(ConfigError, match="--tag TAG or --public"):
        mastodon_source(cfg, "https://mastodon.example")
    assert mastodon_source(cfg, "https://mastodon.example", tag="x").token == "from-config"
    monkeypatch.setenv("MY_TOKEN", "from-env")
    assert mastodon_source(cfg, "https://mastodon.example", public=True,
                           token_env="MY_TOKEN").token == "from-env"


def test_summarize_warehouse_counts_the_stream_tables(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from polarwatch.warehouse import init_schema
    from stream.summary import SUMMARY_TABLES, summarize_warehouse

    cfg = load_config(CONFIG, env={"POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "w.duckdb")})
    init_schema(cfg.warehouse_path)
    with caplog.at_level(logging.INFO, logger="stream.summary"):
        assert summarize_warehouse(cfg) == dict.fromkeys(SUMMARY_TABLES, 0)
    assert "rows in DuckDB" in caplog.text and "posts 0" in caplog.text
