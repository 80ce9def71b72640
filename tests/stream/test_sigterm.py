"""Stopping a real ``polarwatch stream --continuous`` with a signal, mid-stream, on real parts:
SIGTERM to the driver alone (a process manager that signals the main pid), SIGTERM to the whole
process group (systemd's default; Spark's JVM gets it too), also while the sink writes a batch,
and Ctrl-C to the group. Each stops within seconds with the documented exit status (143 for
SIGTERM, 0 for Ctrl-C), short log lines and no traceback (Python's or Java's), the heartbeat
says why, and a restart stores every produced post exactly once. Before, SIGTERM to the driver
hung (its SystemExit was raised inside a py4j call, and the cleanup's next call waited for that
call's answer), SIGTERM to the group exited 1 with py4j tracebacks (the cleanup asked a JVM
that was gone) and Ctrl-C printed pyspark's "reentrant call" traceback."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from polarwatch.config import Config
from polarwatch.heartbeat import read_heartbeat
from stream.job import run_stream
from tests.stream.test_recovery import REPO, _assert_exactly_once, _count, _env_of, _produce

EXIT_WITHIN_S = 60.0  # STOP_GRACE_S: the longest a stop may wait for the micro-batch in hand


def _start(cfg: Config, tmp_path: Path, batch: int = 100) -> tuple[subprocess.Popen[bytes], Path]:
    """`polarwatch stream --continuous` in its own process group, in batches of `batch` posts."""
    env = _env_of(cfg, POLARWATCH_SPARK_MAX_RECORDS_PER_TRIGGER=str(batch),
                  POLARWATCH_SPARK_TRIGGER_SECONDS="0.2")
    err = tmp_path / "stream.stderr"
    with err.open("wb") as fh, (tmp_path / "stream.stdout").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream",
                                 "--continuous"], env=env, cwd=REPO, stdout=out, stderr=fh,
                                start_new_session=True)
    return proc, err


def _signal_mid_stream(cfg: Config, proc: subprocess.Popen[bytes], err: Path, produced: int,
                       send: signal.Signals, group: bool) -> tuple[int, float]:
    """Wait for two stored micro-batches, send the signal; (its exit status, seconds to it)."""
    deadline = time.monotonic() + 120
    while _count(cfg, "SELECT count(*) FROM stream_batches") < 2:
        assert proc.poll() is None, f"the stream exited early: {err.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no 2 micro-batches in 120 s"
        time.sleep(0.1)
    assert _count(cfg, "SELECT count(*) FROM posts") < produced, "not mid-stream"
    sent = time.monotonic()
    if group:
        os.killpg(proc.pid, send)
    else:
        os.kill(proc.pid, send)
    try:
        code = proc.wait(EXIT_WITHIN_S + 10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the stream did not exit {EXIT_WITHIN_S + 10:g} s after {send.name}: "
                    f"{err.read_text()[-3000:]}")
    return code, time.monotonic() - sent


def _group_gone(pgid: int, timeout: float = 15.0) -> bool:
    """No process is left in the stream's process group (Spark's JVM included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _clean(stderr: str) -> None:
    lowered = stderr.lower()
    assert "traceback" not in lowered and "py4j" not in lowered, stderr[-4000:]
    assert "exception" not in lowered, stderr[-4000:]  # no Java stack trace either


@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["driver-alone", "process-group"])
def test_sigterm_stops_the_stream_with_143_and_a_restart_stores_every_post_once(
        stream_config: Config, spark: object, tmp_path: Path, group: bool) -> None:
    cfg = stream_config
    produced = _produce(cfg)
    proc, err = _start(cfg, tmp_path)
    try:
        code, took = _signal_mid_stream(cfg, proc, err, produced, signal.SIGTERM, group)
        assert _group_gone(proc.pid), "a process of the stream (its JVM?) outlived it"
    finally:
        _kill_group(proc)
    stderr = err.read_text()
    assert code == 128 + signal.SIGTERM, stderr[-4000:]
    assert took < EXIT_WITHIN_S
    _clean(stderr)
    assert "stopped on SIGTERM; `polarwatch stream` resumes from the checkpoint" in stderr
    beat = read_heartbeat(cfg.warehouse_path)
    assert beat is not None and (beat.state, beat.cause) == ("stopped", "terminated (SIGTERM)")
    stored = _count(cfg, "SELECT count(*) FROM posts")
    assert 0 < stored < produced, "the signal did not land mid-stream"

    run_stream(cfg, spark=spark)  # the restart drains the rest from the checkpoint
    _assert_exactly_once(cfg, produced)


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_stops_the_stream_without_a_traceback(
        stream_config: Config, spark: object, tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches the whole foreground group (Spark's JVM ignores it)."""
    cfg = stream_config
    produced = _produce(cfg)
    proc, err = _start(cfg, tmp_path)
    try:
        code, took = _signal_mid_stream(cfg, proc, err, produced, signal.SIGINT, group=True)
    finally:
        _kill_group(proc)
    stderr = err.read_text()
    assert code == 0 and took < EXIT_WITHIN_S, stderr[-4000:]
    _clean(stderr)
    assert "interrupted: stopping the stream" in stderr
    beat = read_heartbeat(cfg.warehouse_path)
    assert beat is not None and (beat.state, beat.cause) == ("stopped", "interrupted (Ctrl-C)")
    assert 0 < _count(cfg, "SELECT count(*) FROM posts") < produced

    run_stream(cfg, spark=spark)
    _assert_exactly_once(cfg, produced)


def _writing(cfg: Config) -> bool:
    """The stream holds the warehouse's write lock now (its sink, mostly, writing a batch)."""
    try:
        duckdb.connect(str(cfg.warehouse_path), read_only=True).close()
    except duckdb.IOException as exc:
        return "lock" in str(exc).lower()
    return False


@pytest.mark.slow
def test_sigterm_to_the_group_while_the_sink_writes_waits_for_its_transaction(
        stream_config: Config, spark: object, tmp_path: Path) -> None:
    """The driver outlives its JVM and its write in hand: a driver that exited while its sink
    was inside DuckDB (called from a daemon thread) aborted ("FATAL: exception not
    rethrown", exit -6) instead of exiting 143."""
    cfg = stream_config
    produced = _produce(cfg)
    proc, err = _start(cfg, tmp_path, batch=2000)  # about 1 s of DuckDB work per batch
    try:
        deadline = time.monotonic() + 120
        while _count(cfg, "SELECT count(*) FROM stream_batches") < 1:
            assert proc.poll() is None, f"the stream exited early: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no micro-batch in 120 s"
            time.sleep(0.1)
        locked_since = None  # the sink's transaction holds the lock for about 1 s, the
        while locked_since is None or time.monotonic() - locked_since < 0.15:  # listener's 40 ms
            assert proc.poll() is None, f"the stream exited early: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the stream never wrote again"
            locked_since = (locked_since or time.monotonic()) if _writing(cfg) else None
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(EXIT_WITHIN_S + 10)
        assert _group_gone(proc.pid)
    finally:
        _kill_group(proc)
    stderr = err.read_text()
    assert code == 128 + signal.SIGTERM, stderr[-4000:]
    _clean(stderr)
    run_stream(cfg, spark=spark)
    _assert_exactly_once(cfg, produced)
