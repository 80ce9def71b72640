"""A file name that is not UTF-8 (copied from a Latin-1 machine: ``caf\\xe9.jsonl``), which
Python holds with a lone surrogate (``caf\\udce9.jsonl``): `ingest file` stopped with a
UnicodeEncodeError traceback while naming its progress file, before sending anything. Now it
is ingested and resumed like any other file, against the real broker."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from ingest.sources.base import Checkpoint
from polarwatch.cli import main
from tests.ingest.test_files import thread_rows, write_jsonl
from tests.kafka_helpers import consume, unique_topics

REPO = Path(__file__).resolve().parents[2]


def test_a_latin1_file_name_is_ingested_and_resumed(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    posts_topic, dead_topic = unique_topics(broker.bootstrap, "latin1")
    path = write_jsonl(tmp_path / os.fsdecode(b"caf\xe9.jsonl"), thread_rows(5))
    assert os.fsencode(path.name) == b"caf\xe9.jsonl"  # the bytes on disk are Latin-1
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", posts_topic)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", dead_topic)
    state = tmp_path / "state"
    args = ["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path), "--topic",
            "gun_control", "--state-dir", str(state)]
    assert main(args) == 0
    assert "5 posts sent" in capsys.readouterr().err
    assert sorted(json.loads(r.value)["id"] for r in consume(broker.bootstrap, posts_topic, 5)
                  ) == ["p0", "p1", "p2", "p3", "p4"]
    [progress] = state.glob("ingest-*.json")
    saved = json.loads(progress.read_text(encoding="ascii"))  # the name escaped in the JSON
    assert saved["key"] == f"{path}|{posts_topic}" and saved["position"] == 5
    assert main(args) == 0  # resumed after its last row: nothing sent again
    assert "5 records read (5 before the resume point), 0 posts sent" in capsys.readouterr().err


def test_a_utf8_key_keeps_its_progress_file_name() -> None:
    """Progress saved before the change is found again: a UTF-8 key hashes as it did."""
    ckpt = Checkpoint(Path("state"), "ingest", "/data/café.jsonl|posts")
    digest = hashlib.sha1("/data/café.jsonl|posts".encode()).hexdigest()[:16]
    assert ckpt.path == Path("state") / f"ingest-{digest}.json"
