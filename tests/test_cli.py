"""The `polarwatch` CLI as a user runs it: real subprocesses, real broker, Spark and DuckDB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ingest.broker import free_port

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"),
        "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "POLARWATCH_BROKER_STATE_DIR": str(tmp_path / "broker"),
        "POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "demo.duckdb"),
        "POLARWATCH_WAREHOUSE_LAKE_DIR": str(tmp_path / "lake"),
        "POLARWATCH_SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
        "POLARWATCH_EXTRACTOR_BACKEND": "lexicon",
    })
    return env


def _cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "polarwatch.cli", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    out = _cli(["demo", "--days", "3", "--no-dashboard"], env)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stderr  # log lines go to stderr (stdout carries only data)
    for stage in ("broker up at", "posts produced to", "Spark up in", "batch 0:",
                  "rows in DuckDB", "forecast done", "pipeline done", "broker stopped"):
        assert stage in log, f"missing stage {stage!r} in:\n{log}"
    # a local Spark stays on 127.0.0.1: it never looked for another interface's address
    assert "resolves to a loopback address" not in log and "SPARK_LOCAL_IP" not in log, log
    produced = int(log.split(" posts produced")[0].rsplit("] ", 1)[1].replace(",", ""))
    con = duckdb.connect(str(tmp_path / "demo.duckdb"), read_only=True)
    try:
        stored = con.execute("SELECT count(*), count(DISTINCT id) FROM posts").fetchall()[0]
        n_forecast = con.execute("SELECT count(*) FROM forecasts").fetchall()[0][0]
        topics = con.execute("SELECT DISTINCT topic FROM topic_windows ORDER BY 1").fetchall()
    finally:
        con.close()
    assert stored == (produced, produced)
    assert n_forecast > 0
    assert topics == [("climate_change",), ("gun_control",)]


def test_broker_start_status_stop(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    try:
        start = _cli(["broker", "start"], env, timeout=60)
        assert start.returncode == 0, start.stderr
        assert "topics created: polarwatch.posts, polarwatch.dead_letter" in start.stderr
        status = _cli(["broker", "status"], env, timeout=60)
        assert status.returncode == 0 and "broker running" in status.stderr
    finally:
        stop = _cli(["broker", "stop"], env, timeout=60)
    assert "broker stopped" in stop.stderr
    status = _cli(["broker", "status"], env, timeout=60)
    assert status.returncode == 3 and "not running" in status.stderr


def test_missing_java_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, free_port())
    env["PATH"] = str(tmp_path)  # no java anywhere
    env.pop("JAVA_HOME", None)
    out = _cli(["stream"], env, timeout=60)
    assert out.returncode == 2
    assert "java" in out.stderr and "openjdk-17" in out.stderr


def test_bad_config_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[spark]\nmastr = 'local[2]'\n")
    out = _cli(["--config", str(bad), "forecast"], dict(os.environ), timeout=60)
    assert out.returncode == 2
    assert "unknown key(s) ['mastr'] in [spark]" in out.stderr


@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["sigterm-process", "sigterm-group"])
def test_live_demo_keeps_streaming_while_the_dashboard_runs_and_stops_cleanly(
        tmp_path: Path, group: bool) -> None:
    """SIGTERM to the process (a supervisor's stop) or to its whole process group (`timeout
    make demo`, `kill -TERM -PGID`: Spark's JVM gets it too and dies first)."""
    import signal
    import time
    import urllib.request

    from polarwatch.warehouse import connect, scalar

    port, broker_port = free_port(), free_port()
    env = _env(tmp_path, broker_port)
    proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "demo", "--days", "2",
                             "--port", str(port), "--forecast-every", "3s"], env=env, cwd=REPO,
                            text=True, start_new_session=group,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None  # stdout=PIPE
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "dashboard never answered"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(1)
        live = 0
        while live == 0 and time.monotonic() < deadline:  # the stream keeps writing
            time.sleep(2)
            with connect(tmp_path / "demo.duckdb", read_only=True) as con:
                live = int(scalar(con, "SELECT count(*) FROM posts WHERE id LIKE 'live-%'"))
        assert live > 0
        time.sleep(4)  # at least one live forecast refresh
    finally:
        if group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "live feed stopped" in out and "broker stopped" in out
    # the stream is not restarted while polarwatch stops (stream/supervise.py: stopping)
    assert "stream restart" not in out, out[-3000:]
    if not group:  # in order: the stream stops before the broker, so it prints no stack
        assert "Traceback" not in out, out[-3000:]
    assert "forecast refreshed:" in out
    from ingest.broker import port_open

    assert not port_open("127.0.0.1", broker_port) and not port_open("127.0.0.1", port)
