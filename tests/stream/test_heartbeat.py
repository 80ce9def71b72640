"""The stream's heartbeat (stream/heartbeat.py) on real parts: a real ``polarwatch stream
--continuous`` beats while idle, writes ``stopped`` on Ctrl-C, and after ``kill -9`` its last
beat stops advancing (the dashboard then says the process is gone). Plus the writer on its own:
a beat it cannot write never stops it, and its interval variable."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.status import heartbeat_note
from ingest.broker import EmbeddedBroker, ensure_topics
from ingest.producer import PostProducer
from polarwatch.config import Config, load_config
from polarwatch.heartbeat import BEAT_EVERY_S, Heartbeat, heartbeat_path, judge, read_heartbeat
from polarwatch.records import Post
from stream.heartbeat import EVERY_ENV, HeartbeatWriter, beat_every
from stream.supervise import StreamError, supervise
from tests.kafka_helpers import stream_env
from tests.stream.test_recovery import REPO, _env_of

EVERY_S = 1.0  # the beat interval of the stream under test ($POLARWATCH_HEARTBEAT_S)
POSTS = 20


def _posts(n: int) -> list[Post]:
    t0 = datetime.now(UTC) - timedelta(hours=1)
    return [Post(id=f"hb{i}", platform="t", author_id="u", text="We need gun control.",
                 created_at=t0 + timedelta(seconds=i), topic="gun_control",
                 conversation_id=f"hb{i}") for i in range(n)]


def _await_beat(cfg: Config, proc: subprocess.Popen[bytes], log: Path, what: str,
                ok: Callable[[Heartbeat], bool], timeout: float = 120.0) -> Heartbeat:
    deadline = time.monotonic() + timeout
    while True:
        hb = read_heartbeat(cfg.warehouse_path)
        if hb is not None and ok(hb):
            return hb
        assert proc.poll() is None, f"the stream exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no beat {what} in {timeout:g} s: {hb}"
        time.sleep(0.1)


def _start(cfg: Config, log: Path) -> subprocess.Popen[bytes]:
    env = _env_of(cfg, **{EVERY_ENV: str(EVERY_S), "POLARWATCH_SPARK_TRIGGER_SECONDS": "0.5"})
    with log.open("ab") as fh:
        return subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "stream",
                                 "--continuous"], env=env, cwd=REPO, stdout=fh,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the driver's JVM can outlive it
    proc.wait(30)


@pytest.mark.slow
def test_a_real_stream_beats_while_idle_says_stopped_on_ctrl_c_and_goes_stale_on_kill_9(
        stream_config: Config, broker: EmbeddedBroker, tmp_path: Path) -> None:
    # two streams side by side (one Spark start-up of wall time): `calm` stores a few posts,
    # idles, and gets Ctrl-C; `doomed` (its own topics and warehouse) gets kill -9
    calm = stream_config
    doomed = load_config(REPO / "polarwatch.toml",
                         env=stream_env(broker.bootstrap, tmp_path / "doomed"))
    for cfg in (calm, doomed):
        ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                      2)
    with PostProducer(calm.broker.bootstrap_servers, calm.topics.posts,
                      calm.topics.dead_letter) as producer:
        producer.send_many(_posts(POSTS))
    log, doomed_log = tmp_path / "calm.log", tmp_path / "doomed.log"
    proc, victim = _start(calm, log), _start(doomed, doomed_log)
    try:
        running = _await_beat(doomed, victim, doomed_log, "running",
                              lambda b: b.state == "running")
        assert running.pid == victim.pid
    finally:
        _kill_group(victim)  # kill -9 of the driver and its JVM: no last beat
    last = read_heartbeat(doomed.warehouse_path)
    assert last is not None and last.state == "running" and last.beat_at >= running.beat_at
    time.sleep(3 * EVERY_S)
    assert read_heartbeat(doomed.warehouse_path) == last  # nothing beats any more
    assert judge(last, datetime.now(UTC)) == "pid_gone"  # this machine: gone at once
    assert judge(last, datetime.now(UTC), host="another-machine") == "running"  # time only

    try:
        hb = _await_beat(calm, proc, log, "after a stored batch",
                         lambda b: b.state == "running" and b.last_batch_id is not None)
        assert (hb.pid, hb.every_s) == (proc.pid, EVERY_S)
        time.sleep(2 * EVERY_S)  # the posts are stored: from here on the stream is idle
        idle_from = read_heartbeat(calm.warehouse_path)
        assert idle_from is not None
        beats, seen = {idle_from.beat_at}, idle_from
        deadline = time.monotonic() + 4 * EVERY_S
        while time.monotonic() < deadline:
            beat = read_heartbeat(calm.warehouse_path)
            assert beat is not None and beat.state == "running"
            assert beat.last_batch_id == idle_from.last_batch_id  # no batch: idle
            assert beat.beat_at >= max(beats)
            beats.add(beat.beat_at)
            seen = beat
            time.sleep(0.1)
        assert len(beats) >= 3, f"the beat advanced {len(beats) - 1} time(s) in 4 s while idle"
        assert judge(seen, datetime.now(UTC)) == "running"
        assert heartbeat_note(seen)[0] == "running"

        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C: the driver only
        assert proc.wait(90) == 0, log.read_text()[-3000:]
    finally:
        _kill_group(proc)
    stopped = read_heartbeat(calm.warehouse_path)
    assert stopped is not None, log.read_text()[-3000:]
    assert (stopped.state, stopped.cause) == ("stopped", "interrupted (Ctrl-C)")
    assert stopped.beat_at >= max(beats) and stopped.pid == proc.pid
    assert judge(stopped, datetime.now(UTC) + timedelta(days=1)) == "stopped"
    leftovers = [p.name for p in calm.warehouse_path.parent.iterdir() if p.suffix == ".tmp"]
    assert not leftovers

    # the killed stream's last beat, once 3 beats + 15 s old (the calm stream's run took most
    # of that), is stale wherever it is read: on another machine only the time says so
    stale_at = last.beat_at + timedelta(seconds=last.stale_after() + 1)
    time.sleep(max(0.0, (stale_at - datetime.now(UTC)).total_seconds()))
    assert read_heartbeat(doomed.warehouse_path) == last
    assert judge(last, datetime.now(UTC), host="another-machine") == "stale"
    assert judge(last, datetime.now(UTC)) == "stale"
    _, warning = heartbeat_note(last, host="another-machine")
    assert warning is not None and warning.startswith("No heartbeat for ")
    assert "the stream process is gone (crashed or killed)" in warning


def test_a_beat_that_cannot_be_written_never_stops_the_writer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    warehouse = tmp_path / "pw.duckdb"
    heartbeat_path(warehouse).mkdir()  # a directory where the file goes: every write fails
    caplog.set_level(logging.INFO, logger="stream.heartbeat")
    writer = HeartbeatWriter(warehouse, every_s=0.1).start()
    time.sleep(0.5)
    assert writer.beats == 0
    warned = [r.getMessage() for r in caplog.records  # (a kafka client another test left
              if r.levelno == logging.WARNING and r.name == "stream.heartbeat"]  # may warn too)
    assert len(warned) == 1 and "could not write the stream heartbeat" in warned[0]
    heartbeat_path(warehouse).rmdir()  # fixed: the next beat is written
    deadline = time.monotonic() + 10
    while read_heartbeat(warehouse) is None:
        assert time.monotonic() < deadline, "no beat after the directory was removed"
        time.sleep(0.05)
    writer.batch_done(7)
    writer.close("failed", "StreamError: boom")
    last = read_heartbeat(warehouse)
    assert last is not None and (last.state, last.cause, last.last_batch_id) == (
        "failed", "StreamError: boom", 7)
    assert any("written again" in m for m in caplog.messages)
    with pytest.raises(ValueError, match="one of"):
        writer.close("running")


def test_the_interval_variable(caplog: pytest.LogCaptureFixture) -> None:
    assert beat_every({}) == BEAT_EVERY_S
    assert beat_every({EVERY_ENV: "2.5"}) == 2.5
    for bad in ("0", "-1", "nan", "1e9", "soon"):
        assert beat_every({EVERY_ENV: bad}) == BEAT_EVERY_S, bad
    assert sum(EVERY_ENV in m for m in caplog.messages) == 5


def test_a_supervised_restart_is_in_the_heartbeat_with_its_cause(tmp_path: Path) -> None:
    """stream.supervise tells the heartbeat before each back-off (run_stream wires it so)."""
    warehouse = tmp_path / "pw.duckdb"
    writer = HeartbeatWriter(warehouse, every_s=60.0).start()
    failures = iter([ConnectionRefusedError(111, "Connection refused"),
                     ValueError("a bad offset")])
    beats: list[Heartbeat | None] = []

    def start() -> object:  # starting the query fails: once transient, then for good
        raise next(failures)

    def on_state(state: str, why: str | None) -> None:
        writer.set_state(state, why)
        beats.append(read_heartbeat(warehouse))

    with pytest.raises(StreamError, match="a bad offset"):
        supervise(start, sleep=lambda _: None, on_state=on_state)
    writer.close("failed", "ValueError: a bad offset")
    assert [(b.state, b.cause) for b in beats if b is not None] == [
        ("restarting", "[Errno 111] Connection refused")]
    restarting = beats[0]
    assert restarting is not None
    phrase, warning = heartbeat_note(restarting)
    assert phrase == "restarting after \\[Errno 111\\] Connection refused" and warning
