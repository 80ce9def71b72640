"""kill -9 of the driver at injected points just before and just after the DuckDB COMMIT of a
micro-batch (``POLARWATCH_CRASH_AT``, see :func:`stream.sink.crash_point`), then a restart from
the checkpoint. Afterwards posts, interactions, windows and the Parquet lake must equal those of
an uninterrupted run over the same topic, and the restart must show which recovery path ran:
after the commit, Spark replays the batch and the sink skips it; before the commit, DuckDB
discards the open transaction and the replayed batch is written for the first time."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from polarwatch.config import Config
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.stream.test_recovery import REPO, _env_of, _produce

CRASH_BATCH = 2
SNAPSHOT = {
    "posts": "SELECT count(*), count(DISTINCT id), "
             "count(DISTINCT (kafka_partition, kafka_offset)) FROM posts",
    "interactions": "SELECT post_id, parent_id, score, rule FROM interactions ORDER BY post_id",
    "windows": "SELECT * EXCLUDE (updated_at) FROM topic_windows ORDER BY topic, window_start",
}


def _rounded(row: tuple) -> tuple:
    """Floats to 9 places: sums over the same rows in another order differ in the last bit."""
    return tuple(round(v, 9) if isinstance(v, float) else v for v in row)


def _snapshot(cfg: Config) -> dict[str, list[tuple]]:
    with connect(cfg.warehouse_path, read_only=True) as con:
        out = {name: [_rounded(row) for row in con.execute(sql).fetchall()]
               for name, sql in SNAPSHOT.items()}
        lake = str(cfg.path(cfg.warehouse.lake_dir) / "posts" / "**" / "*.parquet")
        out["lake"] = con.execute(f"SELECT count(*), count(DISTINCT id) FROM read_parquet("
                                  f"'{lake}', hive_partitioning = true)").fetchall()
        out["batches"] = con.execute("SELECT batch_id FROM stream_batches ORDER BY 1").fetchall()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_kill_9_at_the_commit_then_restart_matches_an_uninterrupted_run(
        where: str, stream_config: Config, spark: object, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    produced = _produce(stream_config)
    cfg = stream_config.model_copy(update={
        "spark": stream_config.spark.model_copy(update={"max_records_per_trigger": 400})})
    env = _env_of(cfg, POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER="400",
                  POLARWATCH_CRASH_AT=f"{where}:{CRASH_BATCH}")
    log = tmp_path / "driver.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream"], env=env,
                                cwd=REPO, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            returncode = proc.wait(600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the driver's JVM can outlive it
    assert returncode == -signal.SIGKILL, log.read_text()[-3000:]
    at_kill = _snapshot(cfg)
    committed = CRASH_BATCH + (1 if where == "after_commit" else 0)
    assert at_kill["batches"] == [(b,) for b in range(committed)]
    assert 0 < at_kill["posts"][0][0] < produced, "the kill did not land mid-stream"

    caplog.set_level(logging.INFO, logger="stream.sink")
    run_stream(cfg, spark=spark)  # restart from the checkpoint
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.sink"]
    replayed = [line for line in lines if line.startswith(f"batch {CRASH_BATCH}:")]
    if where == "after_commit":  # committed in DuckDB, not in Spark: replayed and skipped
        assert replayed == [f"batch {CRASH_BATCH}: already committed, skipped (replay)"]
    else:  # rolled back with the process: the replay writes it
        assert len(replayed) == 1 and "posts stored" in replayed[0], lines
    after = _snapshot(cfg)

    reference = cfg.model_copy(update={  # Config is a pydantic model: model_copy, not replace
        "warehouse": cfg.warehouse.model_copy(update={
            "path": str(tmp_path / "reference.duckdb"),
            "lake_dir": str(tmp_path / "reference-lake")}),
        "spark": cfg.spark.model_copy(update={"checkpoint_dir": str(tmp_path / "reference-ckpt")})})
    run_stream(reference, spark=spark)
    expected = _snapshot(reference)

    assert after["posts"] == [(produced, produced, produced)]  # 0 lost, 0 duplicated
    assert after["lake"] == [(produced, produced)]
    for table in ("interactions", "windows"):
        assert len(after[table]) == len(expected[table]) > 0, table
        assert after[table] == expected[table], table
