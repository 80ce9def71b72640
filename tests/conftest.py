"""Session fixtures: a real embedded broker on a free port and a real local[2] SparkSession."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from pluggy import Result

from ingest.broker import EmbeddedBroker, free_port
from polarwatch.config import Config, load_config
from tests.kafka_helpers import stream_env
from tests.llm_server import LLMServer, hf_copy, require_smollm2, transformers_server

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    from stream.job import build_spark

    session = build_spark("local[2]", app_name="polarwatch-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLMServer]:
    """A real `transformers serve` with SmolLM2-135M on a free port (see tests/llm_server.py)."""
    model_dir = hf_copy(require_smollm2())
    log = tmp_path_factory.mktemp("llm") / "server.log"
    with transformers_server(model_dir, log) as base:
        yield LLMServer(base, str(model_dir))


@pytest.fixture
def stream_config(broker: EmbeddedBroker, tmp_path: Path) -> Config:
    """The shipped config pointed at the test broker, unique topics and a temp DuckDB file."""
    return load_config(REPO / "polarwatch.toml", env=stream_env(broker.bootstrap, tmp_path))


# -- under `make test` nothing may be skipped ---------------------------------------------------
# `make test` sets POLARWATCH_TEST_NO_SKIP=1: a test that would skip because a prerequisite the
# README promises is missing (Chromium, the SmolLM2 weights, the shipped heads, a backend's
# packages) fails instead, naming what is missing. A developer running one file by hand can
# still skip.
NO_SKIP_ENV = "POLARWATCH_TEST_NO_SKIP"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Result[pytest.TestReport], None]:
    outcome = yield
    report = outcome.get_result()
    # captured output and log lines may hold a lone surrogate (a file name that is not UTF-8,
    # tests/ingest/test_undecodable_names.py): pytest-xdist ships reports as UTF-8, and its
    # worker died on one ("strings must be utf-8 encodable"); shown escaped, as stderr shows it
    report.sections = [(title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
                       for title, text in report.sections]
    if report.skipped and os.environ.get(NO_SKIP_ENV) == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (f"skipped under {NO_SKIP_ENV}=1 (make test), which turns every skip "
                           f"into a failure: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector
                               ) -> Generator[None, Result[pytest.CollectReport], None]:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get(NO_SKIP_ENV) == "1":
        report.outcome = "failed"
        report.longrepr = f"a module skipped itself under {NO_SKIP_ENV}=1: {report.longrepr}"
