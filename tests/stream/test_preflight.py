"""`polarwatch stream` with no broker fails in seconds, in one line, before Spark starts (it
took ~4 minutes: Spark's start, then every supervised restart timing out on the broker). The
probe itself (several addresses, silent ones, bootstrap lists) is tested in
tests/polarwatch/test_broker_probe.py."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.broker import free_port
from polarwatch.config import Config, load_config
from polarwatch.errors import BrokerError
from stream.preflight import check_broker
from tests.conftest import REPO
from tests.kafka_helpers import stream_cli, stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

FAIL_WITHIN_S = 10.0


@pytest.fixture
def closed_port() -> int:
    """A port where nothing listens: connections to it are refused."""
    return free_port()


def _config(tmp_path: Path, bootstrap: str, **overrides: str) -> Config:
    return load_config(REPO / "polarwatch.toml", env=stream_env(bootstrap, tmp_path, **overrides))


def test_stream_without_a_broker_fails_in_seconds_in_one_line(tmp_path: Path,
                                                               closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    t0 = time.monotonic()
    proc = stream_cli(tmp_path, address, timeout=60)
    out, err = proc.stdout, proc.stderr
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


@pytest.mark.parametrize("path", ["", "."], ids=["empty", "dot"])
def test_a_warehouse_path_that_is_a_directory_is_one_line_before_spark_starts(
        tmp_path: Path, broker: EmbeddedBroker, path: str) -> None:
    """`[warehouse] path = ""` is the config's own directory. It was found after Spark's start
    (~20 s), as DuckDB's "Is a directory" with the advice to "move this file away so that a new
    warehouse is created": the project directory."""
    folder = _config(tmp_path, broker.bootstrap, POLARWATCH_WAREHOUSE_PATH=path).warehouse_path
    assert folder.is_dir()
    proc = stream_cli(tmp_path, broker.bootstrap, POLARWATCH_WAREHOUSE_PATH=path)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"polarwatch: error: {folder} cannot be opened as the DuckDB warehouse: it is a "
        f"directory; set [warehouse] path (env POLARWATCH_WAREHOUSE_PATH) to a file, e.g. "
        f"{folder / '.polarwatch' / 'polarwatch.duckdb'}"], proc.stderr
    assert not (tmp_path / "ckpt").exists()  # nothing of Spark's ran


def test_a_lake_dir_that_is_a_file_is_one_line_before_spark_starts(
        tmp_path: Path, broker: EmbeddedBroker) -> None:
    """It failed the first micro-batch after Spark's start: `the stream stopped:
    FileExistsError: [Errno 17] File exists: '…'`, naming neither the key nor the fix."""
    lake = tmp_path / "lake.txt"
    lake.write_text("not a directory\n")
    proc = stream_cli(tmp_path, broker.bootstrap, POLARWATCH_WAREHOUSE_LAKE_DIR=str(lake))
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        f"polarwatch: error: [warehouse] lake_dir (env POLARWATCH_WAREHOUSE_LAKE_DIR) is {lake}, "
        f"which is a file: the Parquet lake is a directory; point the key at one (a missing one "
        f"is created), or set it to \"\" for no lake"], proc.stderr
    assert not (tmp_path / "ckpt").exists()  # nothing of Spark's ran
    assert lake.read_text() == "not a directory\n"
