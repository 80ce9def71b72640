"""A `[spark] master` Spark cannot use stops `polarwatch stream` in one line before a JVM starts,
exit 2. Before: `garbage`, `""` or `local[0]` failed inside the JVM (SparkSubmit's "Master must
either be yarn or start with spark, k8s, or local", "Asked to run locally with 0 threads") with
a Java and a Python trace, exit 1; a standalone master that does not answer, after about a
minute of Java retries and ~200 lines ("All masters are unresponsive! Giving up"), exit 1."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest.broker import free_port
from stream.session import check_master
from tests.kafka_helpers import stream_cli

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

FAIL_WITHIN_S = 20.0
NOT_A_MASTER = "which is not a Spark master; give local[N]"


@pytest.mark.parametrize(("master", "said"), [
    ("garbage", f"'garbage', {NOT_A_MASTER}"),
    ("", f"'', {NOT_A_MASTER}"),
    ("local[0]", "'local[0]': a local master needs at least 1 core"),
    ("spark://127.0.0.1:{port}", "no Spark master answers at spark://127.0.0.1:{port} "
                                 "(connection refused); start it")])
def test_a_master_spark_cannot_use_is_one_line_before_spark_starts(
        master: str, said: str, broker: EmbeddedBroker, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    proc = stream_cli(tmp_path, broker.bootstrap, "--backend", "lexicon", timeout=150,
                      POLARWATCH_SPARK_MASTER=master.format(port=port))
    err = proc.stderr
    errors = [line for line in err.splitlines() if line.startswith("polarwatch: error:")]
    assert proc.returncode == 2 and len(errors) == 1, err
    assert said.format(port=port) in errors[0] and "POLARWATCH_SPARK_MASTER" in errors[0]
    assert "Traceback" not in err and "Exception" not in err and len(err.splitlines()) <= 2, err
    assert time.monotonic() - t0 < FAIL_WITHIN_S, err


@pytest.mark.parametrize("master", ["local", "local[2]", "local[*]", "local[2,3]",
                                    "local-cluster[2,1,1024]", "yarn", "k8s://https://k:6443"])
def test_the_masters_spark_takes_pass(master: str) -> None:
    check_master(master)


def test_a_standalone_master_that_answers_passes(broker: EmbeddedBroker) -> None:
    """Only a TCP connect, as for the broker: any listener at one of the addresses will do."""
    check_master(f"spark://127.0.0.1:{free_port()},{broker.bootstrap}")
