"""The dead-letters page and its queries on a real DuckDB file with rejects from both sources."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import rejects
from polarwatch.warehouse import connect, init_schema

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
ROWS = [  # source_topic, partition, offset, reason, raw, source, raw_size, rejected_at
    ("dead", 0, 0, "created_at: '2300-01-01T00:00:00+00:00' is in the future", "{}", "ingest",
     2, T0),
    ("dead", 0, 1, "record: 1,100,098 bytes, more than the 262,144 allowed", "x" * 10,
     "ingest", 1_100_098, T0 + timedelta(days=1)),
    ("posts", 1, 7, "text: character U+D800 is not allowed here", "{\"text\"", "stream", 40,
     T0 + timedelta(days=2)),
]


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "dl.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.executemany("INSERT INTO dead_letters (source_topic, kafka_partition, kafka_offset, "
                        "reason, raw, source, raw_size, rejected_at, seen_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())", ROWS)
    return path


def test_dead_letter_queries_filter_by_source_reason_and_time(warehouse: Path) -> None:
    assert len(rejects.dead_letters(warehouse)) == 3
    assert list(rejects.dead_letters(warehouse, source="ingest")["kafka_offset"]) == [1, 0]
    assert list(rejects.dead_letters(warehouse, kind="text")["source"]) == ["stream"]
    assert len(rejects.dead_letters(warehouse, contains="FUTURE")) == 1
    window = rejects.dead_letters(warehouse, since=T0 + timedelta(hours=1),
                                  until=T0 + timedelta(days=2))
    assert list(window["raw_size"]) == [1_100_098]
    summary = rejects.dead_letter_summary(warehouse)
    assert dict(zip(summary["kind"], summary["n"], strict=True)) == {
        "created_at": 1, "record": 1, "text": 1}


def _page(monkeypatch: pytest.MonkeyPatch, warehouse: Path, tmp_path: Path) -> AppTest:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.switch_page("views/dead_letters.py")
    at.run()
    assert not at.exception
    return at


def test_dead_letters_page_shows_and_filters(monkeypatch: pytest.MonkeyPatch, warehouse: Path,
                                             tmp_path: Path) -> None:
    at = _page(monkeypatch, warehouse, tmp_path)
    assert [m.value for m in at.metric] == ["2", "1"]
    assert len(at.dataframe[0].value) == 3
    at.selectbox(key="dl_source").set_value("stream").run()
    assert list(at.dataframe[0].value["reason"]) == [ROWS[2][3]]
    at.selectbox(key="dl_source").set_value("all").run()
    at.selectbox(key="dl_kind").set_value("record").run()
    assert list(at.dataframe[0].value["raw_size"]) == [1_100_098]


# dead_letters as the first release created it (before source, raw_size and rejected_at)
FIRST_RELEASE = """CREATE TABLE dead_letters (
  source_topic VARCHAR, kafka_partition INTEGER, kafka_offset BIGINT, reason VARCHAR NOT NULL,
  raw VARCHAR, seen_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (source_topic, kafka_partition, kafka_offset));
INSERT INTO dead_letters VALUES ('posts', 0, 3, 'malformed JSON: x', '{', now())"""


@pytest.mark.parametrize(("ddl", "says"), [
    (FIRST_RELEASE, "without the column(s) source, raw_size, rejected_at"),
    ("CREATE TABLE topic_windows (topic VARCHAR)", "has no dead_letters table yet"),
], ids=["first-release", "no-table"])
def test_an_unmigrated_file_gets_a_clear_message_and_stays_untouched(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ddl: str, says: str) -> None:
    path = tmp_path / "old.duckdb"
    with connect(path) as con:
        con.execute(ddl)
    before = path.read_bytes()
    at = _page(monkeypatch, path, tmp_path)
    assert [e.value for e in at.error] == []  # no raw SQL error
    [warning] = [w.value for w in at.warning if "older polarwatch" in w.value]
    assert says in warning and "polarwatch forecast" in warning and str(path) in warning
    assert path.read_bytes() == before  # read-only: the dashboard did not migrate it


def _reasons_as_written() -> list[str]:
    """Reasons as ingest and the stream write them: two oversize lines and two foreign topics
    (sizes and content before any ':'), an unreadable batch, two field checks, a re-send."""
    from ingest.sources.files import too_long
    from polarwatch.topics import Topic
    from polarwatch.validation import parse_record
    from stream.record_batches import UnreadableBatch
    from stream.resends import REASON
    from stream.udfs import LabelStage

    stage = LabelStage(backend="lexicon", fallback=(), topics=(Topic("climate", "C", "p", "a"),))
    return [too_long(300_158), too_long(1_048_577),
            str(stage.unknown_topic("<img src=x onerror=alert(1)>")),
            str(stage.unknown_topic("other: topic")),
            UnreadableBatch(10, 12, "not a record batch").describe(),
            str(parse_record(b"{")[1]), str(parse_record(b"{" * 5)[1]),
            f"{REASON}: id 'a' (platform 'x') differs in text; the first version is kept", ""]


def test_reason_kinds_name_the_check_never_a_value(tmp_path: Path) -> None:
    path = tmp_path / "kinds.duckdb"
    init_schema(path)
    with connect(path) as con:
        con.executemany("INSERT INTO dead_letters (source_topic, kafka_partition, kafka_offset, "
                        "reason, raw, source, seen_at) VALUES ('t', 0, ?, ?, '', 'ingest', "
                        "now())", list(enumerate(_reasons_as_written())))
    summary = rejects.dead_letter_summary(path)
    assert dict(zip(summary["kind"], summary["n"], strict=True)) == {
        "oversize line": 2, "unknown topic": 2, "unreadable batch": 1, "malformed JSON": 2,
        "post id already stored with different content": 1, "no reason": 1}
    assert len(rejects.dead_letters(path, kind="unknown topic")) == 2
    assert len(rejects.dead_letters(path, kind="oversize line")) == 2
