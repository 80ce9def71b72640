"""File ingest: formats, column mapping, routing, dead letters, replay pacing and crash-safe resume
(a real `polarwatch ingest file` process killed with SIGKILL, then run again)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import EmbeddedBroker
from ingest.normalize import TopicRouter
from ingest.producer import DEAD_LETTER_REASON_HEADER, PostProducer, ProduceStats
from ingest.sources.base import Checkpoint, Replay, SourceError, SourceRecord, pump
from ingest.sources.files import FORMATS, FileSource
from ingest.sources.mapping import RowMapper, parse_mapping, parse_time
from ingest.sources.progress import open_progress
from polarwatch.cli import main as cli_main
from polarwatch.config import load_topics
from polarwatch.errors import PolarwatchError
from polarwatch.formats import detect_format
from tests.kafka_helpers import consume, unique_topics

REPO = Path(__file__).resolve().parents[2]
START = datetime(2024, 5, 1, tzinfo=UTC)
CONSUME_TIMEOUT_S = 15.0
ROUTER = TopicRouter.from_topics(load_topics(REPO / "topics.toml"))


def thread_rows(n: int, start: datetime = START, step_s: float = 1.0) -> list[dict[str, Any]]:
    """`n` posts in threads of 5: the root mentions gun control, the replies no keyword."""
    out = []
    for i in range(n):
        root = i - i % 5
        out.append({"id": f"p{i}", "platform": "test", "author_id": f"u{i % 7}",
                    "text": "We need gun control now" if i == root else f"I disagree, {i}",
                    "created_at": (start + timedelta(seconds=i * step_s)).isoformat(),
                    "conversation_id": f"c{root}", "parent_id": None if i == root else f"p{root}",
                    "lang": "en"})
    return out


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_bytes(b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n"
                              for r in rows))
    return path


@pytest.fixture
def topic_names(broker: EmbeddedBroker) -> tuple[str, str]:
    return unique_topics(broker.bootstrap, "file")


# ---------------------------------------------------------------------------- pure: mapping


def mapped(mapper: RowMapper, row: dict[str, Any]) -> dict[str, Any]:
    post = mapper(row)
    assert post is not None
    return post


@pytest.mark.parametrize(("value", "expected"), [
    (1714521600, "2024-05-01T00:00:00+00:00"),
    ("1714521600", "2024-05-01T00:00:00+00:00"),
    (1714521600.5, "2024-05-01T00:00:00.500000+00:00"),
    (1714521600123, "2024-05-01T00:00:00.123000+00:00"),  # epoch milliseconds
    ("2024-05-01T02:00:00+02:00", "2024-05-01T02:00:00+02:00"),
    ("2024-05-01T00:00:00.000Z", "2024-05-01T00:00:00+00:00"),
    ("Wed May 01 00:00:00 +0000 2024", "2024-05-01T00:00:00+00:00"),  # Twitter v1
    (datetime(2024, 5, 1, tzinfo=UTC), "2024-05-01T00:00:00+00:00"),
])
def test_parse_time(value: Any, expected: str) -> None:
    assert parse_time(value) == expected


def test_parse_time_refuses_naive_unless_told() -> None:
    with pytest.raises(ValueError, match="no timezone.*--assume-utc"):
        parse_time("2024-05-01 10:00:00")
    assert parse_time("2024-05-01 10:00:00", assume_utc=True) == "2024-05-01T10:00:00+00:00"
    with pytest.raises(ValueError, match="cannot parse 'yesterday'"):
        parse_time("yesterday")


def test_parse_mapping_and_its_errors() -> None:
    m = parse_mapping("text=body, created_at=ts", "twitter")
    assert m["text"] == "body" and m["created_at"] == "ts" and m["platform"] == "=twitter"
    assert m["parent_id"] == ("referenced_tweets[type=replied_to].id|in_reply_to_status_id_str|"
                              "in_reply_to_status_id")  # v2, then v1.1
    with pytest.raises(PolarwatchError, match="'txt' is not a post field"):
        parse_mapping("txt=body")
    with pytest.raises(PolarwatchError, match="must look like field=column"):
        parse_mapping("text")
    with pytest.raises(PolarwatchError, match="unknown preset 'facebook'"):
        parse_mapping(None, "facebook")


def test_reddit_preset() -> None:
    mapper = RowMapper(parse_mapping(None, "reddit"))
    sub = mapped(mapper, {"id": "abc", "title": "Gun control vote", "selftext": "Thoughts?",
                  "created_utc": 1714521600, "author": "op", "name": "t3_abc"})
    assert sub == {"id": "t3_abc", "platform": "reddit", "author_id": "op",
                   "text": "Gun control vote\n\nThoughts?", "conversation_id": "t3_abc",
                   "parent_id": None, "lang": None, "created_at": "2024-05-01T00:00:00+00:00"}
    top = mapped(mapper, {"id": "c1", "body": "Agreed", "created_utc": "1714521660", "author": "a",
                  "parent_id": "t3_abc", "link_id": "t3_abc"})
    assert (top["id"], top["parent_id"], top["conversation_id"]) == ("t1_c1", "t3_abc", "t3_abc")
    nested = mapped(mapper, {"id": "c2", "body": "No", "created_utc": 1714521720, "author": "b",
                     "parent_id": "t1_c1", "link_id": "t3_abc"})
    assert (nested["id"], nested["parent_id"], nested["conversation_id"]) == \
        ("t1_c2", "t1_c1", "t3_abc")
    # a comment whose bare id equals a submission's stays another post (Reddit's own prefixes)
    twin = mapped(mapper, {"id": "abc", "body": "Same id", "created_utc": 1714521780,
                           "author": "c", "parent_id": "t1_c2", "link_id": "t3_abc"})
    assert twin["id"] == "t1_abc" != sub["id"]
    assert mapper({"id": "c3", "body": "[deleted]", "created_utc": 1, "parent_id": "t1_c1",
                   "link_id": "t3_abc"}) is None


def test_twitter_preset_and_thread_reconstruction() -> None:
    mapper = RowMapper(parse_mapping("author_id=user.id_str", "twitter"))
    root = mapped(mapper, {"id": 1790000000000000001, "text": "#2A", "lang": "en",
                   "created_at": "Wed May 01 00:00:00 +0000 2024", "user": {"id_str": "42"}})
    reply = mapped(mapper, {"id": "1790000000000000002", "text": "no", "user": {"id_str": "43"},
                    "created_at": "2024-05-01T00:01:00.000Z",
                    "in_reply_to_status_id": 1790000000000000001})
    assert root["id"] == "1790000000000000001" and root["author_id"] == "42"
    assert root["conversation_id"] == root["id"] and root["parent_id"] is None
    # no conversation_id column: the reply joins its parent's thread
    assert reply["conversation_id"] == root["id"] and reply["parent_id"] == root["id"]
    v2 = mapped(mapper, {"id": "5", "text": "x", "created_at": "2024-05-01T00:00:00Z",
                 "conversation_id": "3", "in_reply_to_status_id": "4", "author_id": "9"})
    assert (v2["conversation_id"], v2["parent_id"]) == ("3", "4")


def test_formats_agree(tmp_path: Path) -> None:
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = thread_rows(12)
    jsonl = write_jsonl(tmp_path / "posts.jsonl", rows)
    with open(tmp_path / "posts.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "posts.parquet")
    (tmp_path / "posts.jsonl.gz").write_bytes(gzip.compress(jsonl.read_bytes()))
    posts = {}
    for name in ("posts.jsonl", "posts.csv", "posts.parquet", "posts.jsonl.gz"):
        recs = list(FileSource(tmp_path / name).records(None))
        assert [r.position for r in recs] == list(range(1, 13))
        assert all(r.error is None and not r.replayed for r in recs)
        posts[name] = [r.post for r in recs]
    csv_posts = [p for p in posts["posts.csv"] if p is not None]
    assert posts["posts.jsonl"] == posts["posts.csv"] == posts["posts.parquet"] \
        == posts["posts.jsonl.gz"]
    assert csv_posts[1]["parent_id"] == "p0"
    assert detect_format(Path("x.ndjson"), FORMATS, gzip=True) == "jsonl"
    (tmp_path / "x.txt").write_text(jsonl.read_text())
    with pytest.raises(SourceError, match="pass --format"):
        FileSource(tmp_path / "x.txt")


# ---------------------------------------------------------------------------- pure: pump


class FakeProducer:
    """Records what `pump` hands over (the real one is tested against the broker below)."""

    def __init__(self) -> None:
        self.stats = ProduceStats()
        self.sent: list[dict[str, Any]] = []
        self.dead: list[tuple[bytes, str]] = []
        self.flushes = 0

    def send_obj(self, obj: dict[str, Any], original: bytes | None = None) -> str:
        self.sent.append(obj)
        self.stats.sent += 1
        return "sent"

    def dead_letter(self, raw: bytes, reason: str, raw_size: int | None = None,
                    **keyed: Any) -> None:
        self.dead.append((raw, reason))
        self.stats.dead_lettered += 1

    def mark_seen(self, post: Any) -> None:
        pass

    def flush(self) -> None:
        self.flushes += 1


def test_replay_speed_paces_by_timestamps() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    rows = thread_rows(11, step_s=10.0)  # 100 s of history
    recs = [SourceRecord(i, r, b"") for i, r in enumerate(rows, 1)]
    producer = FakeProducer()
    stats = pump(recs, producer, topic="gun_control", replay=Replay(20.0, sleep, lambda: now[0]),
                 clock=lambda: now[0])
    assert stats.sent == 11 and stats.position == 11
    assert now[0] == pytest.approx(100 / 20)  # 100 s of timestamps at 20× real time
    assert slept == [pytest.approx(0.5)] * 10
    # with 'max' nothing waits
    slept.clear()
    pump(recs, FakeProducer(), topic="gun_control", replay=Replay(None, sleep))
    assert slept == []


def test_pump_routes_replies_with_their_conversation_and_checkpoints() -> None:
    rows = thread_rows(10) + [{**thread_rows(1)[0], "id": "x", "conversation_id": "cx",
                               "text": "I like turtles"}]
    recs = [SourceRecord(i, r, b"", replayed=i <= 3) for i, r in enumerate(rows, 1)]
    saved: list[Any] = []
    producer = FakeProducer()
    stats = pump(recs, producer, router=ROUTER, checkpoint=saved.append, confirm_every=4)
    assert [p["id"] for p in producer.sent] == [f"p{i}" for i in range(3, 10)]
    assert {p["topic"] for p in producer.sent} == {"gun_control"}  # replies inherit the root's
    assert (stats.read, stats.replayed, stats.no_topic, stats.sent) == (11, 3, 1, 7)
    assert saved == [7, 11, 11]  # every 4 rows after the resume point, then at the end
    assert stats.position == 11


def test_a_post_naming_a_topic_not_in_topics_toml_is_a_dead_letter_not_sent() -> None:
    """The stream would dead-letter it; ingest counted it as sent (the audit's `topic: "nosuch"`
    row: "1 posts sent"). It names the known ids, in the words the dashboard groups as
    "unknown topic"."""
    rows = [{**thread_rows(1)[0], "id": "x", "topic": "nosuch"}, thread_rows(1)[0]]
    producer = FakeProducer()
    stats = pump([SourceRecord(i, r, b"raw%d" % i) for i, r in enumerate(rows, 1)], producer,
                 router=ROUTER)
    assert [p["id"] for p in producer.sent] == ["p0"]
    assert (stats.sent, stats.dead_lettered) == (1, 1)
    [(raw, reason)] = producer.dead
    assert raw == b"raw1"
    assert re.fullmatch(r"topic 'nosuch' is not in topics.toml \(known: gun_control, .*\); "
                        r"add a \[\[topic\]\] with that id .*--topic ID`", reason)


# ---------------------------------------------------------------------------- against the broker


def test_jsonl_ingest_counts_and_dead_letters_exactly(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path) -> None:
    posts_topic, dead_topic = topic_names
    good = thread_rows(40)
    bad = [b'{"id": "broken", "text": \n', b"[1, 2]\n",
           json.dumps({**good[1], "id": "naive", "created_at": "2024-05-01 10:00:00"}).encode()
           + b"\n",
           json.dumps({k: v for k, v in good[2].items() if k != "text"} | {"id": "notext"})
           .encode() + b"\n"]
    dup = dict(good[3])
    turtle = {**good[0], "id": "t0", "conversation_id": "ct", "text": "I like turtles"}
    path = write_jsonl(tmp_path / "in.jsonl", [*good[:20], *bad, dup, b"\n", turtle, *good[20:]])

    with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
        stats = pump(FileSource(path).records(None), producer, router=ROUTER)
    assert (stats.read, stats.sent, stats.duplicates, stats.dead_lettered, stats.no_topic,
            stats.ignored) == (47, 40, 1, 4, 1, 1)
    assert producer.stats.reasons == {"malformed JSON": 1, "expected a JSON object, got list": 1,
                                      "created_at": 1, "missing required field(s)": 1}
    records = consume(broker.bootstrap, posts_topic, 40)
    got = [json.loads(r.value) for r in records]
    assert sorted(p["id"] for p in got) == sorted(r["id"] for r in good)
    assert all(p["topic"] == "gun_control" for p in got)
    assert all(r.key == json.loads(r.value)["conversation_id"].encode() for r in records)
    dead = consume(broker.bootstrap, dead_topic, 4)
    assert sorted(r.value for r in dead) == sorted(b.rstrip(b"\n") for b in bad)
    reasons = {r.value: dict(r.headers)[DEAD_LETTER_REASON_HEADER].decode() for r in dead}
    assert reasons[bad[2].rstrip(b"\n")].startswith("created_at: '2024-05-01 10:00:00' has no "
                                                    "timezone")
    assert reasons[bad[3].rstrip(b"\n")].startswith("missing required field(s): text (every "
                                                    "post needs id, platform,")
    assert reasons[bad[3].rstrip(b"\n")].endswith("`polarwatch schema` prints the contract)")


def test_cli_reddit_csv_with_topic(broker: EmbeddedBroker, topic_names: tuple[str, str],
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    posts_topic, dead_topic = topic_names
    path = tmp_path / "reddit.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "body", "created_utc", "author", "parent_id", "link_id"])
        w.writerows([["c1", "Carbon tax now", "1714521600", "a", "t3_s1", "t3_s1"],
                     ["c2", "Nope &amp; no", "1714521660", "b", "t1_c1", "t3_s1"],
                     ["c3", "[removed]", "1714521720", "c", "t1_c1", "t3_s1"],
                     ["c4", "bad time", "soon", "d", "t1_c1", "t3_s1"]])
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", posts_topic)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", dead_topic)
    args = ["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path), "--preset",
            "reddit", "--state-dir", str(tmp_path / "state"), "--topic", "climate_change"]
    assert cli_main(["--progress", *args]) == 0
    err = capsys.readouterr().err
    assert "reddit.csv: 4rows" in err  # tqdm's count of rows read, on stderr
    assert cli_main([*args[:-1], "nope"]) == 2  # unknown topic: an error, not a traceback
    assert cli_main(args) == 0  # a second run resumes after the last row: sends nothing
    got = [json.loads(r.value) for r in consume(broker.bootstrap, posts_topic, 2)]
    assert sorted((p["id"], p["parent_id"], p["conversation_id"], p["topic"]) for p in got) == [
        ("t1_c1", "t3_s1", "t3_s1", "climate_change"),  # Reddit's own names (t1_ comment,
        ("t1_c2", "t1_c1", "t3_s1", "climate_change")]  # t3_ submission) are kept
    assert {p["text"] for p in got} == {"Carbon tax now", "Nope &amp; no"}  # raw text kept
    dead = consume(broker.bootstrap, dead_topic, 1)
    assert len(dead) == 1 and json.loads(dead[0].value)["id"] == "c4"


def test_changed_file_is_not_resumed_silently(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", thread_rows(3))
    src = FileSource(path)
    progress = open_progress(src, tmp_path, "posts")
    progress.checkpoint.save(2, fingerprint="something else")
    with pytest.raises(PolarwatchError, match="changed since.*--restart"):
        open_progress(src, tmp_path, "posts")
    assert open_progress(src, tmp_path, "posts", restart=True).position == 0


def _ingest_cmd(path: Path, state: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "polarwatch.cli", "--config", str(REPO / "polarwatch.toml"),
            "ingest", "file", str(path), "--topic", "gun_control", "--state-dir", str(state),
            *extra]


def _point_at(monkeypatch: pytest.MonkeyPatch, broker: EmbeddedBroker,
              topic_names: tuple[str, str]) -> None:
    """In-process commands (``cli_main``) send to the test broker's topics."""
    posts_topic, dead_topic = topic_names
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", posts_topic)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", dead_topic)


def _ingest_env(broker: EmbeddedBroker, topic_names: tuple[str, str], path: Path,
                state: Path) -> tuple[dict[str, str], Checkpoint]:
    """The environment of an `ingest file` child process on the test topics, and the progress
    file it keeps for `path`."""
    posts_topic, dead_topic = topic_names
    env = {**os.environ, "POLARWATCH_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap,
           "POLARWATCH_TOPICS_POSTS": posts_topic, "POLARWATCH_TOPICS_DEAD_LETTER": dead_topic}
    return env, Checkpoint(state, "ingest", f"{path.resolve()}|{posts_topic}")


def _wait_for_progress(ckpt: Checkpoint, proc: subprocess.Popen[Any], at_least: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        saved = ckpt.load()
        if saved and saved["position"] >= at_least:
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        time.sleep(0.02)
    raise AssertionError(f"no progress ≥ {at_least} within 60 s")


def test_a_refused_file_among_several_sends_none_and_a_file_named_twice_is_read_once(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`ingest file fresh.jsonl part.jsonl` sent fresh.jsonl whole, then refused part.jsonl
    (changed since its last run), "Nothing was sent" said of the wrong file (the audit)."""
    posts_topic, _ = topic_names
    _point_at(monkeypatch, broker, topic_names)
    rows = thread_rows(10)
    part = write_jsonl(tmp_path / "part.jsonl", rows[:5])
    fresh = write_jsonl(tmp_path / "fresh.jsonl", rows[5:])

    def ingest(*paths: Path) -> int:
        return cli_main(["--config", str(REPO / "polarwatch.toml"), "ingest", "file",
                         *map(str, paths), "--topic", "gun_control", "--state-dir",
                         str(tmp_path / "state")])

    assert ingest(part, part) == 0  # named twice: read once
    write_jsonl(part, [dict(r, text=r["text"] + "!") for r in rows[:5]])  # changed since
    assert ingest(fresh, part) == 2
    got = [json.loads(r.value)["id"] for r in consume(broker.bootstrap, posts_topic, 5)]
    assert sorted(got) == [f"p{i}" for i in range(5)]  # part.jsonl once, nothing of fresh


def test_replies_before_their_parent_are_counted_and_warned_about(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A thread newest first (as APIs return it): the replies came before the root that names
    the topic's keyword, matched no topic and were dropped without a word (the audit)."""
    _point_at(monkeypatch, broker, topic_names)
    rows = [{k: v for k, v in r.items() if k != "conversation_id"} for r in thread_rows(3)]
    path = write_jsonl(tmp_path / "newest_first.jsonl", rows[::-1])
    src = FileSource(path)
    assert [r.post["conversation_id"] for r in src.records(None) if r.post] == ["p0", "p0", "p0"]
    assert src.mapper.threads.early == 2
    in_order = FileSource(write_jsonl(tmp_path / "oldest_first.jsonl", rows))
    assert len(list(in_order.records(None))) == 3 and in_order.mapper.threads.early == 0
    assert cli_main(["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path),
                     "--state-dir", str(tmp_path / "state")]) == 0
    assert "newest_first.jsonl: 2 replies came before their parent in the file (newest " \
           "first?)" in caplog.text and "sort the file oldest first" in caplog.text


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_ingest_says_where_it_stopped_and_resumes_there(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path,
        sig: signal.Signals) -> None:
    """Ctrl-C and SIGTERM ended `ingest file` without a word (the audit); SIGTERM also skipped
    the last confirmation, leaving the progress file up to --confirm-every rows behind. Both
    now confirm what was sent, save it and say which row the same command resumes after."""
    posts_topic, _ = topic_names
    rows = thread_rows(3000)  # 1 s apart; replayed at 1000× → ~3 s
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    state = tmp_path / "state"
    env, ckpt = _ingest_env(broker, topic_names, path, state)
    proc = subprocess.Popen(_ingest_cmd(path, state, "--replay-speed", "1000",
                                        "--confirm-every", "1000000"),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_progress(ckpt, proc, 500)  # confirmed every 2 s: the first save
        time.sleep(0.3)
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    saved = ckpt.load()
    assert saved is not None and 500 <= saved["position"] < 3000
    at = saved["position"]
    assert f"big.jsonl: stopped; the broker confirmed rows 1-{at:,}, and the same command " \
           f"resumes after row {at:,}" in err
    sent = {json.loads(r.value)["id"] for r in consume(broker.bootstrap, posts_topic, at)}
    assert {r["id"] for r in rows[:at]} <= sent  # what it says was confirmed was sent
    assert len(sent) <= at + 10  # the stop sends nothing past its confirmation (replay pace)


def test_kill_9_mid_ingest_then_resume_loses_nothing(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path) -> None:
    """Kafka level: every post id arrives (no loss); an id arrives twice only when its row lies
    after the last confirmed checkpoint at the kill (the unconfirmed tail, ≤ --confirm-every
    rows). Exactly-once per post id is then the DuckDB sink's job (INSERT OR IGNORE on id)."""
    posts_topic, dead_topic = topic_names
    confirm_every = 100
    rows: list[Any] = thread_rows(3000)  # 1 s apart; replayed at 1000× → ~3 s
    for i in range(150, 3000, 300):
        rows[i] = b'{"broken": \n'  # ten dead letters
    good_ids = [r["id"] for r in rows if isinstance(r, dict)]
    row_of = {r["id"]: i for i, r in enumerate(rows, 1) if isinstance(r, dict)}
    path = write_jsonl(tmp_path / "big.jsonl", rows)
    state = tmp_path / "state"
    env, ckpt = _ingest_env(broker, topic_names, path, state)

    proc = subprocess.Popen(_ingest_cmd(path, state, "--replay-speed", "1000",
                                        "--confirm-every", str(confirm_every)),
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_progress(ckpt, proc, 800)
        time.sleep(0.07)  # land between two checkpoints, with unconfirmed records in flight
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    killed = ckpt.load()
    assert killed is not None
    confirmed = killed["position"]
    assert 800 <= confirmed < 3000, "the kill should land mid-file"

    done = subprocess.run(_ingest_cmd(path, state), env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resuming after row {confirmed:,}" in done.stderr
    saved = ckpt.load()
    assert saved is not None and saved["position"] == 3000

    records = consume(broker.bootstrap, posts_topic, len(good_ids))
    counts = Counter(json.loads(r.value)["id"] for r in records)
    assert set(counts) == set(good_ids)  # no loss
    dups = {i: n for i, n in counts.items() if n > 1}
    assert all(n == 2 for n in dups.values())
    assert all(row_of[i] > confirmed for i in dups)  # only the unconfirmed tail repeats
    assert len(dups) <= confirm_every
    print(f"killed at confirmed row {confirmed}; {len(dups)} ids sent twice (unconfirmed tail)")
    dead = consume(broker.bootstrap, dead_topic, 10)
    assert 10 <= len(dead) <= 11 and {r.value for r in dead} == {b'{"broken": '}
