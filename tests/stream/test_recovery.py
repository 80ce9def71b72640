"""Failure tests on real parts: kill -9 of the driver mid-stream, a broker that lost its data
(offset regression), and the same job on a Spark standalone cluster."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyspark
import pytest

from ingest.broker import EmbeddedBroker, ensure_topics, free_port
from ingest.producer import PostProducer
from ingest.sources.synthetic import generate
from polarwatch.config import Config, load_config
from polarwatch.warehouse import connect, scalar
from stream.job import run_stream

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 2, 1, tzinfo=UTC)


def _produce(cfg: Config, days: int = 1, seed: int = 3) -> int:
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter], 2)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        producer.send_many(generate(cfg.load_topics(), days=days, seed=seed, start=START))
    return producer.stats.sent


def _env_of(cfg: Config, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"),
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": cfg.broker.bootstrap_servers,
        "POLARWATCH_TOPICS_POSTS": cfg.topics.posts,
        "POLARWATCH_TOPICS_DEAD_LETTER": cfg.topics.dead_letter,
        "POLARWATCH_WAREHOUSE_PATH": str(cfg.warehouse_path),
        "POLARWATCH_WAREHOUSE_LAKE_DIR": str(cfg.path(cfg.warehouse.lake_dir)),
        "POLARWATCH_SPARK_CHECKPOINT_DIR": str(cfg.checkpoint_dir),
        "POLARWATCH_EXTRACTOR_BACKEND": "lexicon",
    })
    env.update(extra)
    return env


def _count(cfg: Config, sql: str) -> int:
    try:
        with connect(cfg.warehouse_path, read_only=True) as con:
            return int(scalar(con, sql))
    except Exception:  # file not created yet, or schema not there yet
        return 0


def _assert_exactly_once(cfg: Config, produced: int) -> None:
    with connect(cfg.warehouse_path, read_only=True) as con:
        rows = con.execute('SELECT count(*), count(DISTINCT id), '
                           'count(DISTINCT (kafka_partition, kafka_offset)) FROM posts').fetchall()
        batches = con.execute("SELECT count(*), count(DISTINCT (query, batch_id)) "
                              "FROM stream_batches").fetchall()
    assert rows == [(produced, produced, produced)]  # 0 lost, 0 duplicated
    assert batches[0][0] == batches[0][1]


@pytest.mark.slow
def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(
        stream_config: Config, spark: object) -> None:
    cfg = stream_config
    produced = _produce(cfg)
    env = _env_of(cfg, POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER="150",
                  POLARWATCH_SPARK_TRIGGER_SECONDS="0.2")
    proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream", "--continuous"],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while _count(cfg, "SELECT count(*) FROM stream_batches") < 3:
            assert proc.poll() is None, "stream exited before it could be killed"
            assert time.monotonic() < deadline, "stream did not commit 3 batches in 180 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and its JVM, no clean shutdown
        proc.wait(30)
    stored_at_kill = _count(cfg, "SELECT count(*) FROM posts")
    assert 0 < stored_at_kill < produced, "the kill did not land mid-stream"

    run_stream(cfg, spark=spark)  # restart from the checkpoint
    _assert_exactly_once(cfg, produced)


@pytest.mark.slow
def test_broker_reset_is_detected_not_silently_reread(stream_config: Config, spark: object,
                                                      tmp_path: Path) -> None:
    own = EmbeddedBroker(free_port(), tmp_path / "own-broker")
    own.start()
    try:
        env = {k: v for k, v in _env_of(stream_config).items() if k.startswith("POLARWATCH_")}
        env["POLARWATCH_BROKER_BOOTSTRAP_SERVERS"] = own.bootstrap
        cfg = load_config(REPO / "polarwatch.toml", env=env)
        produced = _produce(cfg)
        run_stream(cfg, spark=spark)
        _assert_exactly_once(cfg, produced)

        own.stop()  # memory storage: the topic and its offsets are gone
        own.start()
        with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                          cfg.topics.dead_letter) as producer:
            ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts], 2)
            producer.send_many(list(generate(cfg.load_topics(), days=1, seed=99,
                                             start=START))[:50])
        with pytest.raises(Exception, match="went backwards"):
            run_stream(cfg, spark=spark)
        _assert_exactly_once(cfg, produced)  # nothing re-read, nothing lost

        run_stream(cfg, spark=spark, reset=True)  # deliberate restart
        assert _count(cfg, "SELECT count(*) FROM posts") == produced + 50
    finally:
        own.stop()


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on {port} after {timeout} s")


@pytest.mark.slow
def test_job_runs_on_a_standalone_cluster(stream_config: Config, tmp_path: Path) -> None:
    cfg = stream_config
    produced = _produce(cfg, days=1, seed=5)
    spark_home = Path(pyspark.__file__).parent
    spark_class = str(spark_home / "bin" / "spark-class")
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=sys.executable, SPARK_WORKER_DIR=str(tmp_path / "work"))
    port = free_port()
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("master", "worker")]  # noqa: SIM115
    master = subprocess.Popen(
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
         "--port", str(port), "--webui-port", str(free_port())],
        env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        _wait_port(port)
        worker = subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
             "--cores", "2", "--memory", "2g", "--webui-port", str(free_port())],
            env=env, stdout=logs[1], stderr=subprocess.STDOUT, start_new_session=True)
        out = subprocess.run(
            [sys.executable, "-m", "polarwatch.cli", "stream"], cwd=REPO, timeout=600,
            env=_env_of(cfg, POLARWATCH_SPARK_MASTER=f"spark://127.0.0.1:{port}",
                        SPARK_LOCAL_IP="127.0.0.1"),
            capture_output=True, text=True)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        assert f"starting Spark (spark://127.0.0.1:{port})" in out.stderr
        _assert_exactly_once(cfg, produced)
    finally:
        for proc in (worker, master):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        for f in logs:
            f.close()
