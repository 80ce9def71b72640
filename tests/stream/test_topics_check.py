"""`polarwatch stream` without its topics.toml fails before Spark starts (it used to say so
only ~8 s in, from the first micro-batch's set-up), with the config's own message."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarwatch.config import load_config
from polarwatch.errors import ConfigError
from stream import job
from tests.conftest import REPO


def test_a_missing_topics_file_fails_before_spark_starts(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "topics.toml"
    cfg = load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_EXTRACTOR_TOPICS_FILE": str(missing),
        "POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "w.duckdb"),
        "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt")})

    def no_spark(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("Spark was started before topics.toml was checked")

    monkeypatch.setattr(job, "build_spark", no_spark)
    with pytest.raises(ConfigError, match=f"topics file {missing} does not exist"):
        job.run_stream(cfg)
