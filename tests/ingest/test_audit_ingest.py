"""`ingest file` after the audit (findings 1, 3, 10, 11): a well-quoted multi-line CSV field is
never split into rows; a file whose rows have no text column stops before anything is sent; a
row without a text is a dead letter, never "matched no topic"; empty fields read as the contract
says; a re-send of the same instant in another offset is a duplicate, as the stream counts it."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.broker import EmbeddedBroker
from ingest.producer import DEAD_LETTER_REASON_HEADER, PostProducer
from ingest.runs import ingest_files
from ingest.sources.base import pump
from ingest.sources.files import FileSource
from ingest.sources.mapping import RowMapper, parse_mapping
from polarwatch.cli import main as cli_main
from polarwatch.config import load_config
from polarwatch.errors import PolarwatchError
from polarwatch.formats import csv_records
from tests.ingest.test_files import ROUTER
from tests.kafka_helpers import consume, unique_topics

REPO = Path(__file__).resolve().parents[2]
REDDIT_HEADER = ["id", "body", "created_utc", "author", "link_id", "parent_id", "topic"]
# the audit's reproduction: row short1 is one field short and its quoted body runs over 3 lines
REPRO = ('id,body,created_utc,author,link_id,parent_id,topic\nshort1,"climate first\n'
         'q-injected,climate injected,1619870400,evil,s1,,climate_change\nthird",1619870400,'
         'a,s1,\n')


def reddit_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(posts, dead-letter reasons) of a Reddit-preset file, as `ingest file` reads it."""
    source = FileSource(path, mapper=RowMapper(parse_mapping(None, "reddit")))
    got = list(source.records(None))
    return ([r.post for r in got if r.post is not None],
            [r.error for r in got if r.error is not None])


# ------------------------------------------------------------------ finding 1: CSV rows


def test_the_audit_repro_is_one_post_and_makes_up_none(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text(REPRO, newline="")
    posts, dead = reddit_rows(path)
    assert dead == []
    assert [(p["id"], p["author_id"], p["text"]) for p in posts] == [
        ("t1_short1", "a", "climate first\nq-injected,climate injected,1619870400,evil,s1,,"
                           "climate_change\nthird")]


def test_a_short_row_reads_the_same_on_one_line_and_over_several() -> None:
    one = list(csv_records(io.StringIO('a,b,c\n1,"x y"\n', newline="")))
    many = list(csv_records(io.StringIO('a,b,c\n1,"x\ny"\n', newline="")))
    assert [r.fields for r in one] == [["a", "b", "c"], ["1", "x y"]]
    assert [r.fields for r in many] == [["a", "b", "c"], ["1", "x\ny"]]
    assert many[1].error is None and many[1].line == 2


def test_a_stray_quote_still_costs_its_line_only() -> None:
    """The quote that never closes (or closes inside a field of a later row) is set aside."""
    for text, after in [('a,b,c\n1,"open,3\n2,b,4\n', ["2", "b", "4"]),
                        ('a,b,c\n1,"open,3\n2,x "q" y\n', ["2", 'x "q" y'])]:
        got = list(csv_records(io.StringIO(text, newline="")))
        assert [r.fields for r in got] == [["a", "b", "c"], None, after]
        assert got[1].error is not None and got[1].error.startswith("unterminated quote")


# Reddit-like texts: quotes, commas, CR/LF line breaks, quoted quotes, a field that is only a quote
TEXTS = st.lists(st.sampled_from(['"', '""', ",", "\n", "\r\n", "climate", " ", "q-injected",
                                  "1619870400", "é", "'", "> quoted"]),
                 min_size=1, max_size=12).map("".join).filter(lambda t: t.strip() != "")


@settings(max_examples=150, deadline=None, derandomize=True)
@given(rows=st.lists(st.tuples(TEXTS, st.integers(0, 2)), min_size=1, max_size=12))
def test_rows_written_by_the_csv_module_come_back_exactly(rows: list[tuple[str, int]]) -> None:
    """Every row, whole or short by one or two trailing fields, is one post with its text."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(REDDIT_HEADER)
    for i, (text, short) in enumerate(rows):
        row = [f"r{i}", text, str(1619870400 + i), "a", "s1", "", "climate_change"]
        writer.writerow(row[:len(row) - short])
    data = out.getvalue()
    fields = [r.fields for r in csv_records(io.StringIO(data, newline=""))][1:]
    assert [f[1] if f else None for f in fields] == [t for t, _ in rows]
    assert [len(f) if f else None for f in fields] == [7 - s for _, s in rows]


def test_real_reddit_shaped_text_round_trips_through_ingest_file(tmp_path: Path) -> None:
    """Bodies with quoted quotes and paragraphs (as Reddit exports have), every third row one
    field short, written by Python's csv module: each row is its post, text exact."""
    texts = [f'He said "{i}" and\r\n\r\n> quoted "reply", then\n"more"' if i % 2 else
             f'climate, {i}""' for i in range(300)]
    path = tmp_path / "reddit.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(REDDIT_HEADER)
        for i, text in enumerate(texts):
            row = [f"r{i}", text, str(1619870400 + i), f"u{i}", "s1", "", "climate_change"]
            writer.writerow(row[:-1] if i % 3 == 0 else row)
    posts, dead = reddit_rows(path)
    assert dead == []
    assert [(p["id"], p["text"]) for p in posts] == [(f"t1_r{i}", t) for i, t in enumerate(texts)]


# ------------------------------------------------------------------ finding 3: no text column


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_a_file_with_no_text_column_stops_before_the_broker(tmp_path: Path) -> None:
    """The DEBAGREEMENT shape: no `text`, `id`, ... column. The broker address answers nothing:
    the column error comes first, so nothing was sent and no progress was saved."""
    path = tmp_path / "pairs.csv"
    path.write_text("msg_id_child,body_parent,body_child,author_child,exact_time\n"
                    "c1,Climate policy now,I disagree,bob,1605323077\n")
    cfg = load_config(REPO / "polarwatch.toml",
                      env={"POLARWATCH_BROKER_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port()}"})
    with pytest.raises(PolarwatchError) as err:
        ingest_files(cfg, [path], parse_mapping(None), state_dir=tmp_path / "state")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: no row has a column for id, text, created_at, "
                              f"author_id, which every post needs; column(s) found (5): "
                              f"msg_id_child, body_parent, body_child, author_child, exact_time;")
    assert "--map id=COLUMN,text=COLUMN,created_at=COLUMN,author_id=COLUMN" in message
    assert "text from body_parent or body_child" in message
    assert not (tmp_path / "state").exists()  # not marked done


def test_the_cli_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "p1", "text": "gun control"}) + "\n")
    reddit = tmp_path / "reddit.csv"
    reddit.write_text("id,body,created_utc,author\nc1,gun control,1714521600,a\n")
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", f"127.0.0.1:{closed_port()}")
    base = ["--config", str(REPO / "polarwatch.toml"), "ingest", "file", "--state-dir",
            str(tmp_path / "state")]
    assert cli_main([*base, str(posts), "--format", "csv"]) == 2
    assert capsys.readouterr().err == (f"polarwatch: error: {posts}: its first line is a JSON "
                                       f"object, not a CSV header: read it as JSONL (--format "
                                       f"jsonl); nothing was sent\n")
    assert cli_main([*base, str(reddit)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--preset reddit reads these columns" in err
    assert not (tmp_path / "state").exists()


def test_a_jsonl_file_is_read_to_the_first_row_with_the_columns(tmp_path: Path) -> None:
    """Rows of a JSONL file may differ: one row with a text column is enough (the others are
    dead letters), none at all is the error; a constant (field==VALUE) needs no column."""
    row = {"id": "p1", "created_at": "2024-05-01T12:00:00Z", "author_id": "a"}
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [row] * 50 + [{**row, "text": "x"}]))
    FileSource(path).check_columns()
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(PolarwatchError, match="no row has a column for text, which"):
        FileSource(path).check_columns()
    FileSource(path, mapper=RowMapper(parse_mapping("text==n/a"))).check_columns()


def test_a_header_naming_a_column_it_reads_twice_stops_before_the_broker(
        tmp_path: Path) -> None:
    """`id,text,created_at,author_id,text`: every row kept the last `text`, here empty, so
    each post was a dead letter ("text is empty") or, with two filled, took the wrong one
    without a word. A column read twice is refused in one line naming where; one the mapping
    does not read may repeat (an export's two `notes`). A Parquet schema is checked too."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "posts.csv"
    path.write_text("id,text,created_at,author_id,text,notes,notes\n"
                    "1,gun control now,2024-01-01T00:00:00Z,a,,x,y\n")
    with pytest.raises(PolarwatchError) as err:
        FileSource(path).check_columns()
    assert str(err.value) == (
        f"{path}: the header names 'text' 2 times (columns 2, 5): a row would keep only the "
        f"last of them, whichever holds the post's value; rename the others, then run the same "
        f"command again; nothing was sent")
    path.write_text("id,text,created_at,author_id,notes,notes\n"
                    "1,gun control now,2024-01-01T00:00:00Z,a,x,y\n")
    FileSource(path).check_columns()  # an unread column may repeat
    table = pa.Table.from_arrays([pa.array(["1"]), pa.array(["gun control"]),
                                  pa.array(["2024-01-01T00:00:00Z"]), pa.array(["a"]),
                                  pa.array(["b"])],
                                 names=["id", "body", "created_at", "author_id", "body"])
    pq.write_table(table, tmp_path / "posts.parquet")
    with pytest.raises(PolarwatchError, match=r"the header names 'body' 2 times \(columns 2, 5\)"):
        FileSource(tmp_path / "posts.parquet",
                   mapper=RowMapper(parse_mapping("text=body"))).check_columns()


# ------------------------------------------------------------------ findings 3 and 10: rows


def test_rows_without_text_are_dead_letters_with_the_contracts_reasons(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    """Before, with the router, such rows were counted as "matched no topic" and vanished."""
    posts_topic, dead_topic = unique_topics(broker.bootstrap, "audit")
    base = {"platform": "x", "author_id": "a", "created_at": "2024-05-01T12:00:00Z"}
    rows = [{**base, "id": "ok", "text": "we need gun control"},
            {**base, "id": "empty", "text": ""},
            {**base, "id": "absent"},
            {**base, "id": "noauthor", "author_id": "", "text": "gun control now"},
            {**base, "id": "noplatform", "platform": "", "text": "gun control now"}]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with PostProducer(broker.bootstrap, posts_topic, dead_topic) as producer:
        stats = pump(FileSource(path).records(None), producer, router=ROUTER)
    assert (stats.sent, stats.dead_lettered, stats.no_topic) == (1, 4, 0)
    reasons = {json.loads(r.value)["id"]: dict(r.headers)[DEAD_LETTER_REASON_HEADER].decode()
               for r in consume(broker.bootstrap, dead_topic, 4)}
    assert reasons["empty"] == "text is empty: every post needs a non-empty text"
    assert reasons["absent"].startswith("missing required field(s): text (every post needs")
    assert reasons["noauthor"] == "author_id is empty: every post needs a non-empty author_id"
    assert reasons["noplatform"] == "platform is empty: every post needs a non-empty platform"


def test_empty_cells_are_empty_or_unset_as_the_contract_says() -> None:
    mapper = RowMapper()
    row = {"id": "p1", "text": "gun control", "created_at": "2024-05-01T12:00:00Z",
           "author_id": "a", "platform": "", "conversation_id": "", "topic": "",
           "parent_id": "", "lang": ""}
    post = mapper(row)
    assert post is not None
    assert (post["conversation_id"], post["parent_id"], post["lang"], "topic" in post) \
        == ("p1", None, None, False)  # the thread's, a root, none, the router's
    assert post["platform"] == ""  # a dead letter "platform is empty", as in the stream
    assert (mapper({k: v for k, v in row.items() if k != "platform"}) or {})["platform"] == "file"
    for field in ("id", "text", "author_id", "created_at"):
        emptied = mapper({**row, field: ""})
        assert emptied is not None and emptied[field] == "", field
    assert "author_id" not in (mapper({k: v for k, v in row.items() if k != "author_id"}) or {})


# ------------------------------------------------------------------ finding 11: re-sends


def test_the_same_instant_in_another_offset_is_a_duplicate(broker: EmbeddedBroker) -> None:
    posts_topic, dead_topic = unique_topics(broker.bootstrap, "audit")
    post = {"id": "k1", "platform": "p", "author_id": "a", "text": "climate now",
            "created_at": "2021-05-01T12:00:00+00:00", "topic": "climate_change",
            "conversation_id": "c"}
    with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
        assert producer.send_obj(post) == "sent"
        assert producer.send_obj({**post, "created_at": "2021-05-01T14:00:00+02:00"}) \
            == "duplicate"
        assert producer.send_obj({**post, "created_at": "2021-05-01T12:00:00Z",
                                  "parent_id": ""}) == "duplicate"  # "" parent: a root
        assert producer.send_obj({**post, "created_at": "2021-05-01T12:00:01Z"}) == "sent"
    assert (producer.stats.sent, producer.stats.duplicates, producer.stats.resent_changed) \
        == (2, 2, 1)
