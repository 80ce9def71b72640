"""Session fixtures: a real embedded broker on a free port and a real local[2] SparkSession."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, free_port
from polarwatch.config import Config, load_config

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
    suffix = uuid.uuid4().hex[:8]
    env = {
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap,
        "POLARWATCH_TOPICS_POSTS": f"posts-{suffix}",
        "POLARWATCH_TOPICS_DEAD_LETTER": f"dead-{suffix}",
        "POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "pw.duckdb"),
        "POLARWATCH_WAREHOUSE_LAKE_DIR": str(tmp_path / "lake"),
        "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
        "POLARWATCH_EXTRACTOR_BACKEND": "lexicon",
    }
    return load_config(REPO / "polarwatch.toml", env=env)
