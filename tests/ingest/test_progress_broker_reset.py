"""`ingest file` resumes after the last row the broker confirmed only while the broker still
holds what it confirmed. A memory broker that restarted (or another broker at the address) holds
none of it: resuming sent nothing, exit 0, and the stream stored none of the file's posts. Now
the resume is refused in one line (exit 2) naming `--restart` (real private memory broker,
restarted; the real `polarwatch` CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import EmbeddedBroker, free_port
from ingest.sources.progress import broker_lost
from polarwatch.cli import main as cli_main
from tests.ingest.test_files import START, thread_rows, write_jsonl
from tests.kafka_helpers import consume

REPO = Path(__file__).resolve().parents[2]
POSTS, DEAD = "reset-posts", "reset-dead"


@pytest.fixture
def memory_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(free_port(), tmp_path / "broker")  # memory storage: lost on a restart
    b.start()
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", b.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", POSTS)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", DEAD)
    yield b
    b.stop()


def _restart(broker: EmbeddedBroker) -> None:
    broker.stop()
    broker.start()


def _ingest(path: Path, state: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli_main(["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path),
                   "--topic", "gun_control", "--state-dir", str(state), *extra])
    return rc, capsys.readouterr().err


def _file(tmp_path: Path, name: str, n: int, start: datetime = START) -> Path:
    rows: list[Any] = thread_rows(n, start)
    rows[3] = b'{"broken": \n'  # a dead letter: its offsets are saved too
    return write_jsonl(tmp_path / name, rows)


def test_a_restarted_memory_broker_refuses_the_resume_until_restart(
        memory_broker: EmbeddedBroker, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, state = _file(tmp_path, "a.jsonl", 40), tmp_path / "state"
    assert _ingest(path, state, capsys)[0] == 0
    saved = json.loads(next(state.glob("ingest-*.json")).read_text())
    assert {d["topic"] for d in saved["delivered"]} == {POSTS, DEAD}
    rc, err = _ingest(path, state, capsys)  # the same broker holds them: resumed, none sent
    assert rc == 0 and "resuming after row 40" in err and "0 posts sent" in err

    _restart(memory_broker)
    rc, err = _ingest(path, state, capsys)
    lines = [line for line in err.splitlines() if line.startswith("polarwatch: error:")]
    assert rc == 2 and len(lines) == 1, err
    assert "no longer holds what this file's progress says was delivered" in lines[0]
    assert f"topic {POSTS!r}" in lines[0] and "now ends at offset 0" in lines[0]
    assert "Nothing was sent; pass --restart" in lines[0]

    rc, err = _ingest(path, state, capsys, "--restart")
    assert rc == 0 and "39 posts sent" in err, err
    assert len(consume(memory_broker.bootstrap, POSTS, 39)) == 39  # the refused run sent none
    assert _ingest(path, state, capsys)[0] == 0  # the new life's offsets were saved


def test_another_life_holding_more_records_is_refused(
        memory_broker: EmbeddedBroker, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, state = _file(tmp_path, "a.jsonl", 20), tmp_path / "state"
    assert _ingest(path, state, capsys)[0] == 0
    _restart(memory_broker)  # ... then another file fills the new topics past those offsets
    other = _file(tmp_path, "b.jsonl", 200, START + timedelta(days=1))  # other posts
    assert _ingest(other, tmp_path / "other-state", capsys)[0] == 0
    rc, err = _ingest(path, state, capsys)
    assert rc == 2 and "where the broker now holds another record" in err, err


def test_a_progress_file_of_the_previous_version_resumes_as_before(
        memory_broker: EmbeddedBroker, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, state = _file(tmp_path, "a.jsonl", 20), tmp_path / "state"
    assert _ingest(path, state, capsys)[0] == 0
    progress = next(state.glob("ingest-*.json"))
    saved = json.loads(progress.read_text())
    del saved["delivered"]  # as the version before wrote it
    progress.write_text(json.dumps(saved))
    _restart(memory_broker)
    rc, err = _ingest(path, state, capsys)
    assert rc == 0 and "resuming after row 20" in err, err


def test_a_broker_that_cannot_be_asked_says_nothing() -> None:
    silent = f"127.0.0.1:{free_port()}"  # nothing listens there
    delivered = [{"topic": POSTS, "partition": 0, "offset": 5, "digest": "0" * 16}]
    assert broker_lost(silent, {}, delivered) is None


def test_a_topic_that_begins_again_under_a_running_producer_is_said_once(
        memory_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture) -> None:
    """The producer sent on into the topic a restarted memory broker made anew, without a word
    that what it had sent before was gone."""
    from ingest.broker import ensure_topics
    from ingest.producer import PostProducer

    ensure_topics(memory_broker.bootstrap, [POSTS, DEAD], 1)
    with PostProducer(memory_broker.bootstrap, POSTS, DEAD) as producer:
        for i in range(5):
            producer.send_raw(f"not json {i}".encode())
        producer.flush()
        _restart(memory_broker)
        ensure_topics(memory_broker.bootstrap, [POSTS, DEAD], 1)
        for i in range(3):
            producer.send_raw(f"not json again {i}".encode())
            producer.flush()
        assert producer.delivered[DEAD][0][0] == 4  # the old mark stays for the next resume
    began = [r.getMessage() for r in caplog.records if "began again" in r.getMessage()]
    assert len(began) == 1, began
    assert f"topic {DEAD!r} began again" in began[0] and "offset 0 confirmed after 4" in began[0]


class _Confirmed:
    """A send the broker confirmed at `offset` (kafka-python's future, as flush reads it)."""

    def __init__(self, offset: int) -> None:
        from kafka.producer.future import RecordMetadata

        self.value = RecordMetadata(DEAD, 0, None, offset, -1, None, 10, -1, -1)

    def failed(self) -> bool:
        return False

    def succeeded(self) -> bool:
        return True


def test_a_retried_batch_confirmed_after_a_later_one_is_not_a_topic_begun_again(
        memory_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture) -> None:
    """Review: kafka-python puts a batch it retries back at the front of its queue, so within
    one flush a lower offset may be confirmed after a higher one on a healthy broker; that
    warned 'began again ... run stream --reset'. Only an offset below an earlier flush's is."""
    from ingest.producer import PostProducer

    with PostProducer(memory_broker.bootstrap, POSTS, DEAD) as producer:
        for offsets in ([0, 1, 2], [5, 6, 3, 4]):  # the second flush's 3-4 were retried
            producer._pending.extend((_Confirmed(o), f"d{o}") for o in offsets)
            producer.flush()
        assert producer.delivered[DEAD][0] == (6, "d6")
        assert not [r for r in caplog.records if "began again" in r.getMessage()]
        producer._pending.append((_Confirmed(1), "d1"))  # below 6: the topic began again
        producer.flush()
        assert producer.delivered[DEAD][0] == (6, "d6")
    began = [r.getMessage() for r in caplog.records if "began again" in r.getMessage()]
    assert len(began) == 1 and "offset 1 confirmed after 6" in began[0], began
