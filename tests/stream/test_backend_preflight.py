"""`polarwatch stream` checks the `learned` backend's files on the driver before Java, the broker
or Spark: a damaged topic head (a `train` killed mid-write before heads were written
atomically) and an encoder cache directory that cannot be written each stopped the stream from
inside Spark's Python workers, with ~190 and ~500 lines of traces. Now one line, exit 2, in
seconds; no broker runs here (it would be checked after)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from ingest.broker import free_port
from tests.conftest import REPO
from tests.kafka_helpers import stream_env


def _stream(tmp_path: Path, **env: str) -> tuple[int, list[str], float]:
    child = {**os.environ, **stream_env(f"127.0.0.1:{free_port()}", tmp_path),
             "POLARWATCH_EXTRACTOR_BACKEND": "learned",
             "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"), **env}
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", "stream"], cwd=tmp_path,
                          env=child, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines(), time.monotonic() - t0


def test_a_damaged_topic_head_stops_the_stream_in_one_line(tmp_path: Path) -> None:
    heads = tmp_path / "heads"
    heads.mkdir()
    (heads / "stance_mytopic.npz").write_bytes(b"")  # what a killed in-place write left
    rc, err, took = _stream(tmp_path, POLARWATCH_EXTRACTOR_LEARNED_TOPIC_HEADS_DIR=str(heads))
    assert rc == 2, err
    assert len(err) == 1 and "cannot read head file" in err[0] and "stance_mytopic.npz" in err[0]
    assert took < 60, took  # before Spark: no JVM started


def test_an_unwritable_encoder_cache_stops_the_stream_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory would be\n")
    rc, err, _ = _stream(tmp_path, POLARWATCH_CACHE_DIR=str(blocker / "polarwatch"))
    assert rc == 2, err
    assert len(err) == 1 and "cache directory" in err[0] and "POLARWATCH_CACHE_DIR" in err[0]


def test_the_topic_heads_are_those_next_to_the_config_file_not_the_working_directory(
        tmp_path: Path) -> None:
    """[extractor] learned_topic_heads_dir is relative to the config file (as the workers read
    it): a damaged head there is refused from any directory; one under the working directory's
    own .polarwatch/heads is not the stream's and refuses nothing."""
    config_dir, elsewhere = tmp_path / "cfg", tmp_path / "elsewhere"
    for d in (config_dir, elsewhere):
        (d / ".polarwatch" / "heads").mkdir(parents=True)
    for name in ("polarwatch.toml", "topics.toml"):
        (config_dir / name).write_bytes((REPO / name).read_bytes())
    (elsewhere / ".polarwatch" / "heads" / "stance_other.npz").write_bytes(b"")
    env = {"POLARWATCH_CONFIG": str(config_dir / "polarwatch.toml"),
           "POLARWATCH_EXTRACTOR_LEARNED_TOPIC_HEADS_DIR": ".polarwatch/heads"}
    rc, err, _ = _stream(elsewhere, **env)  # the damaged head is not the stream's
    assert rc == 2 and len(err) == 1 and "no Kafka broker answers" in err[0], err
    (config_dir / ".polarwatch" / "heads" / "stance_mine.npz").write_bytes(b"")
    rc, err, _ = _stream(elsewhere, **env)
    assert rc == 2 and len(err) == 1 and "stance_mine.npz" in err[0], err
