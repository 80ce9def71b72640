"""Property tests (hypothesis) at the stream parser and the sink, without Spark: every
generated Kafka value is stored or dead-lettered, nothing raises, and what the producer
accepts the stream accepts too (issue #13)."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.producer import _encode
from polarwatch.config import load_topics
from polarwatch.records import MAX_DEAD_LETTER_BYTES
from polarwatch.validation import validate_post
from polarwatch.warehouse import connect, scalar
from stream.sink import DuckDBSink
from stream.udfs import LabelStage
from tests.strategies import post_dicts, raw_records

REPO = Path(__file__).resolve().parents[2]
STAGE = LabelStage("lexicon", (), tuple(load_topics(REPO / "topics.toml")))
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow])
OFFSETS = itertools.count()
BATCHES = itertools.count()


@pytest.fixture(scope="module")
def sink() -> Iterator[DuckDBSink]:
    with tempfile.TemporaryDirectory() as tmp:
        yield DuckDBSink(Path(tmp) / "props.duckdb", "props", "posts")


def _frame(values: list[bytes]) -> pd.DataFrame:
    """What the Kafka source hands to mapInPandas (values decoded as it decodes them)."""
    now = pd.Timestamp(datetime.now(UTC))
    return pd.DataFrame({
        "kafka_partition": pd.array([0] * len(values), dtype="int32"),
        "kafka_offset": [next(OFFSETS) for _ in values],
        "broker_ts": [now] * len(values),
        "value": [v.decode("utf-8", errors="replace") for v in values]})


def _counts(sink: DuckDBSink) -> tuple[int, int]:
    with connect(sink.path, read_only=True) as con:
        return (int(scalar(con, "SELECT count(*) FROM dead_letters")),
                int(scalar(con, "SELECT count(*) FROM posts")))


@settings(PROPERTY_SETTINGS, max_examples=30)  # each example is a DuckDB transaction
@given(values=st.lists(raw_records(), min_size=1, max_size=8))
def test_every_value_is_stored_or_dead_lettered(sink: DuckDBSink, values: list[bytes]) -> None:
    pdf = _frame(values)
    out = STAGE.label_frame(pdf)
    assert len(out) == len(pdf)
    dead = out["dead_reason"].notna()
    assert (dead ^ out["id"].notna()).all()  # each row is a post or a dead letter
    assert (out.loc[dead, "raw"].str.len() <= MAX_DEAD_LETTER_BYTES).all()
    pa.Table.from_pandas(out, preserve_index=False)  # what Spark's Arrow transfer needs

    before = _counts(sink)
    res = sink.write(out, next(BATCHES))
    # dead letters: the parser's rejects, and ids stored before with other content
    assert res.dead == int(dead.sum()) + res.conflicts
    assert res.posts + res.duplicates + res.dead == len(values)
    after = _counts(sink)
    assert (after[0] - before[0], after[1] - before[1]) == (res.dead, res.posts)


@PROPERTY_SETTINGS
@given(obj=post_dicts())
def test_what_the_producer_sends_the_stream_accepts(obj: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    value, reason = _encode(obj)
    if validate_post(obj, now) is not None or value is None:
        return
    row = STAGE.parse(value.decode(), now)
    assert row["dead_reason"] is None, row["dead_reason"]
    assert row["id"] == obj["id"]
