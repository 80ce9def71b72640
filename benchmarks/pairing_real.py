"""Pair once, on real Reddit reply/parent pairs (DEBAGREEMENT dev, ../shared/data).

    .venv/bin/python benchmarks/pairing_real.py [--pairs 300]

Runs the stream's real path without Spark — the labelling stage (`LabelStage.label_frame`) and
the DuckDB sink, which labels each reply's agreement when its parent is stored
(stream/pairing.py) — with the shipped `learned` backend, twice: parents and replies in one
batch, and every reply one batch *before* its parent. Prints how many agreement labels agree
between the two arrivals and with a direct extractor call on (reply, parent), and the labels'
accuracy and macro-F1 against the dataset's gold labels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sklearn.metrics import f1_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from polarwatch.config import load_topics  # noqa: E402
from polarwatch.records import Post, post_to_dict  # noqa: E402
from polarwatch.warehouse import connect  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402
from stream.sink import DuckDBSink  # noqa: E402
from stream.udfs import LabelStage  # noqa: E402

DATA = Path(os.environ.get("POLARWATCH_DATA", Path(__file__).resolve().parents[2] / "shared"
                           / "data")) / "agreement" / "debagreement_dev.csv"
GOLD = {0: "disagree", 1: "unclear", 2: "agree"}
T0 = datetime(2026, 5, 1, tzinfo=UTC)


def thread(i: int, parent: str, reply: str) -> tuple[Post, Post]:
    def post(pid: str, text: str, seconds: int, parent_id: str | None) -> Post:
        return Post(id=pid, platform="reddit", author_id=pid[0], text=text,
                    created_at=T0 + timedelta(minutes=i, seconds=seconds),
                    topic="climate_change", conversation_id=f"p{i}", parent_id=parent_id,
                    lang="en")
    return post(f"p{i}", parent, 0, None), post(f"c{i}", reply, 30, f"p{i}")


def frame(posts: list[Post], offset: int) -> pd.DataFrame:
    """What the Kafka source hands to mapInPandas."""
    return pd.DataFrame({
        "kafka_partition": pd.array([0] * len(posts), dtype="int32"),
        "kafka_offset": list(range(offset, offset + len(posts))),
        "broker_ts": [pd.Timestamp(datetime.now(UTC))] * len(posts),
        "value": [json.dumps(post_to_dict(p), default=str) for p in posts]})


def stored_agreement(stage: LabelStage, path: Path, batches: list[list[Post]]) -> dict[str, str]:
    sink = DuckDBSink(path, "q", "posts", labeler=stage.extract)
    offset = 0
    for batch_id, posts in enumerate(batches):
        sink.write(stage.label_frame(frame(posts, offset)), batch_id)
        offset += len(posts)
    with connect(path, read_only=True) as con:
        return dict(con.execute("SELECT id, agreement FROM posts "
                                "WHERE parent_id IS NOT NULL").fetchall())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=300)
    args = ap.parse_args()
    df = pd.read_csv(DATA).sample(n=args.pairs, random_state=0).reset_index(drop=True)
    pairs = [thread(i, str(r.body_parent), str(r.body_child)) for i, r in enumerate(df.itertuples())]
    stage = LabelStage("learned", ("lexicon",), tuple(load_topics("topics.toml")))
    with tempfile.TemporaryDirectory() as d:
        same = stored_agreement(stage, Path(d) / "same.duckdb", [[x for pc in pairs for x in pc]])
        first = stored_agreement(stage, Path(d) / "first.duckdb",
                                 [[c for _, c in pairs], [p for p, _ in pairs]])
    direct = {lab.post_id: lab.agreement for lab in
              stage.extract([PostPair(c.id, c.text, c.topic, p.text) for p, c in pairs])}
    gold = {f"c{i}": GOLD[int(label)] for i, label in enumerate(df["label"])}
    ids = sorted(gold)
    print(f"{len(ids)} DEBAGREEMENT dev pairs (random_state 0)")
    print(f"same label, one batch vs reply first: {sum(same[k] == first[k] for k in ids)}")
    print(f"same label as a direct extractor call: {sum(same[k] == direct[k] for k in ids)}")
    acc = sum(same[k] == gold[k] for k in ids) / len(ids)
    f1 = f1_score([gold[k] for k in ids], [same[k] for k in ids], average="macro")
    print(f"against the gold labels: accuracy {acc:.3f}, macro-F1 {f1:.3f}")


if __name__ == "__main__":
    main()
