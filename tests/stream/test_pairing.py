"""A reply meets its parent once (stream/pairing.py): whatever the arrival order, batch boundary
or driver restart, the reply's agreement label and its interaction score come from the same
(reply, parent) texts — the pair as stored in DuckDB.

Runs the real path — the labelling stage (`LabelStage.label_frame`, as Spark's mapInPandas calls
it) and the DuckDB sink — with the shipped `learned` backend, whose agreement head reads both
texts. The driver restart is a real one: each batch runs in a fresh Python process, so nothing
kept in a process's memory can carry a parent's text across it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from polarwatch.config import load_topics
from polarwatch.records import Labels, Post, post_to_dict
from polarwatch.warehouse import connect
from scoring.extractors.base import PostPair
from stream.sink import DuckDBSink
from stream.udfs import LabelStage
from tests.conftest import REPO

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
CONF_NOISE = 0.01
TOPIC = "climate_change"
THREAD = {  # id → (text, parent id)
    "root": ("Climate change is real and we must cut carbon emissions now.", None),
    "yes": ("Absolutely agree, well said. We must act on climate now.", "root"),
    "no": ("No, that is completely wrong. Global warming is a hoax.", "root"),
    "deep": ("Exactly, and the data on the warming trend backs this up.", "no"),
}


def _post(pid: str, k: int) -> Post:
    text, parent = THREAD[pid]
    return Post(id=pid, platform="test", author_id=f"u{k}", text=text,
                created_at=T0 + timedelta(minutes=k), topic=TOPIC, conversation_id="root",
                parent_id=parent, lang="en")


def _source_frame(posts: list[Post], first_offset: int) -> pd.DataFrame:
    """What the Kafka source hands to mapInPandas for these posts."""
    return pd.DataFrame({
        "kafka_partition": pd.array([0] * len(posts), dtype="int32"),
        "kafka_offset": list(range(first_offset, first_offset + len(posts))),
        "broker_ts": [pd.Timestamp(datetime.now(UTC))] * len(posts),
        "value": [json.dumps(post_to_dict(p), default=str) for p in posts]})


def _frame(ids: list[str], first_offset: int) -> pd.DataFrame:
    order = list(THREAD)
    return _source_frame([_post(pid, order.index(pid)) for pid in ids], first_offset)


def _stage() -> LabelStage:
    return LabelStage("learned", ("lexicon",), tuple(load_topics(REPO / "topics.toml")))


def write_batch(path: str, ids: list[str], batch_id: int) -> None:
    """One micro-batch as the driver runs it: label, then the sink's transaction."""
    stage = _stage()
    sink = DuckDBSink(path, "q", "posts", labeler=stage.extract)
    sink.write(stage.label_frame(_frame(ids, first_offset=10 * batch_id)), batch_id)


def _pairs(path: Path) -> dict[str, tuple]:
    """reply id → (agreement, agreement_conf, score, rule)."""
    with connect(path, read_only=True) as con:
        rows = con.execute("""
            SELECT p.id, p.agreement, p.agreement_conf, i.score, i.rule
            FROM posts p LEFT JOIN interactions i ON i.post_id = p.id
            WHERE p.parent_id IS NOT NULL ORDER BY p.id""").fetchall()
    return {r[0]: r[1:] for r in rows}


@pytest.mark.slow
def test_agreement_is_the_same_whatever_the_arrival(tmp_path: Path) -> None:
    same, later, restart = (str(tmp_path / f"{n}.duckdb") for n in ("same", "later", "restart"))
    write_batch(same, ["root", "yes", "no", "deep"], 0)  # parent and replies in one batch
    write_batch(later, ["root"], 0)  # replies in later batches, "deep" before its parent "no"
    write_batch(later, ["deep"], 1)
    write_batch(later, ["yes", "no"], 2)
    for batch_id, ids in enumerate([["root"], ["deep"], ["yes", "no"]]):  # a driver per batch
        subprocess.run([sys.executable, "-c",
                        "import sys; from tests.stream.test_pairing import write_batch; "
                        "write_batch(sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]))",
                        restart, ",".join(ids), str(batch_id)], cwd=REPO, check=True,
                       timeout=300)

    expected = _pairs(Path(same))
    assert set(expected) == {"yes", "no", "deep"}
    assert all(row[2] is not None for row in expected.values()), expected  # all scored
    for other in (later, restart):
        got = _pairs(Path(other))
        assert set(got) == set(expected)
        for pid, (agreement, conf, score, rule) in expected.items():
            # labels and scores exactly; the confidence up to CONF_NOISE, because the int8
            # encoder quantizes each batch with its own scale, and a fresh process batches the
            # texts differently (measured: up to 0.005)
            assert got[pid][0::2] == (agreement, score) and got[pid][3] == rule, (other, pid)
            assert got[pid][1] == pytest.approx(conf, abs=CONF_NOISE), (other, pid)
    # …and that is the backend's label of the pair with the parent's real text; without it the
    # confidence of "yes" moves far more than the noise (so a lost parent text shows above)
    stage = _stage()
    for pid, (agreement, conf, *_score) in expected.items():
        text, parent = THREAD[pid]
        assert parent is not None  # expected holds replies only
        with_parent = stage.extract([PostPair(pid, text, TOPIC, THREAD[parent][0])])[0]
        assert with_parent.agreement == agreement
        assert with_parent.agreement_conf == pytest.approx(conf, abs=CONF_NOISE)
    without = stage.extract([PostPair("yes", THREAD["yes"][0], TOPIC, "")])[0]
    assert abs(without.agreement_conf - expected["yes"][1]) > 10 * CONF_NOISE
    assert expected["yes"][0] == "agree" and expected["no"][0] == "disagree"


def test_a_late_parent_of_many_replies_is_labelled_in_chunks_with_one_copy_of_its_text(
        tmp_path: Path) -> None:
    """2,500 replies stored before their parent: when it arrives, the labeler gets them
    PAIR_CHUNK at a time, and every pair holds the same parent text object, not a copy each."""
    from stream.pairing import PAIR_CHUNK, lexicon_labeler

    n = 2500
    stage = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))
    calls: list[list[PostPair]] = []
    lexicon = lexicon_labeler()

    def recording(pairs: Sequence[PostPair]) -> list[Labels]:
        calls.append(list(pairs))
        return lexicon(pairs)

    sink = DuckDBSink(str(tmp_path / "late.duckdb"), "q", "posts", labeler=recording)
    parent_text = "Climate change is real and we must cut carbon emissions now. " * 100

    replies = [Post(id=f"r{i}", platform="test", author_id=f"u{i}", text="Absolutely agree.",
                    created_at=T0 + timedelta(minutes=1), topic=TOPIC, conversation_id="root",
                    parent_id="root") for i in range(n)]
    root = Post(id="root", platform="test", author_id="u", text=parent_text, created_at=T0,
                topic=TOPIC, conversation_id="root")
    sink.write(stage.label_frame(_source_frame(replies, 0)), 0)
    assert calls == []  # no parent yet: nothing to pair
    sink.write(stage.label_frame(_source_frame([root], n)), 1)
    with connect(tmp_path / "late.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts WHERE agreement IS NOT NULL"
                           ).fetchall() == [(n,)]
    assert [len(c) for c in calls] == [PAIR_CHUNK, PAIR_CHUNK, n - 2 * PAIR_CHUNK]
    texts = {id(p.parent_text) for c in calls for p in c}
    assert len(texts) == 1 and calls[0][0].parent_text == parent_text
