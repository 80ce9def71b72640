"""Session fixtures: a real embedded broker on a free port and a real local[2] SparkSession."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, free_port
from polarwatch.config import Config, load_config
from tests.kafka_helpers import stream_env

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from stream.job import build_spark

    session = build_spark("local[2]", app_name="polarwatch-tests")
    yield session
    session.stop()


@pytest.fixture
def stream_config(broker: EmbeddedBroker, tmp_path: Path) -> Config:
    """The shipped config pointed at the test broker, unique topics and a temp DuckDB file."""
    return load_config(REPO / "polarwatch.toml", env=stream_env(broker.bootstrap, tmp_path))
