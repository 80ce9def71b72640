"""A simulated analyst on the Label page's code path (issue 21).

The posts of one SemEval-2016 stance target (TweetEval train + val texts, ``../shared/data``)
are labelled by a backend (the lexicon by default) and stored as a topic in a temp warehouse.
The analyst then takes posts exactly as the page does (``dashboard.label_store.next_post``:
the random share by quota, the rest least confident first), answers with the gold stance, and
stores it with ``save_labels``. After each checkpoint it prints the accuracy the Topic page
would report (``dashboard.analysis.label_accuracy`` on the random labels, with its Wilson
interval) against the true accuracy of the backend on every post of the target.

    python benchmarks/label_simulation.py --target atheism --labels 30 60 100
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboard import label_store
from dashboard.analysis import label_accuracy
from polarwatch.config import Topic
from polarwatch.records import SCHEMA_VERSION
from polarwatch.warehouse import connect, init_schema
from scoring.extractors.base import PostPair
from scoring.extractors.registry import get_extractor

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tweeteval" / "stance"
GOLD = {"0": "unclear", "1": "anti", "2": "pro"}  # mapping.txt: none, against, favor
TOPICS = {  # the target as a topic: what pro and anti mean
    "atheism": Topic("atheism", "Atheism", pro="for atheism, against religion",
                     anti="for religion and belief in God", keywords=("god", "religion")),
    "hillary": Topic("hillary", "Hillary Clinton", pro="supports Hillary Clinton",
                     anti="opposes Hillary Clinton", keywords=("hillary", "clinton")),
    "climate": Topic("climate", "Climate change", pro="climate change is a real concern",
                     anti="climate change is not a concern", keywords=("climate",)),
    "feminist": Topic("feminist", "Feminism", pro="supports the feminist movement",
                      anti="opposes the feminist movement", keywords=("feminism",)),
    "abortion": Topic("abortion", "Legalization of abortion", pro="for legal abortion",
                      anti="against legal abortion", keywords=("abortion",)),
}


def load(target: str) -> tuple[list[str], list[str]]:
    texts, gold = [], []
    for split in ("train", "val"):
        folder = DATA / target
        texts += (folder / f"{split}_text.txt").read_text().splitlines()
        gold += [GOLD[g.strip()] for g in (folder / f"{split}_labels.txt").read_text()
                 .splitlines()]
    return texts, gold


def build(path: Path, topic: Topic, texts: list[str], backend: str) -> list[str]:
    """Store the posts with the backend's labels; returns the model's stance per post."""
    init_schema(path)
    labels = get_extractor(backend, [topic]).extract(
        [PostPair(str(i), t, topic.id) for i, t in enumerate(texts)])
    start = datetime(2016, 1, 1, tzinfo=UTC)
    rows = [(str(i), "semeval", "a", t, start + timedelta(minutes=i), topic.id, str(i),
             lab.stance, lab.affect, lab.emotion, lab.intensity, lab.stance_conf,
             lab.affect_conf, lab.emotion_conf, lab.backend, SCHEMA_VERSION)
            for i, (t, lab) in enumerate(zip(texts, labels, strict=True))]
    with connect(path) as con:
        con.executemany(
            "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
            "conversation_id, stance, affect, emotion, intensity, stance_conf, affect_conf, "
            "emotion_conf, backend, schema_version) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return [lab.stance for lab in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="atheism", choices=sorted(TOPICS))
    parser.add_argument("--backend", default="lexicon")
    parser.add_argument("--random-share", type=float, default=0.3)
    parser.add_argument("--labels", type=int, nargs="+", default=[30, 60, 100])
    args = parser.parse_args()
    topic = TOPICS[args.target]
    texts, gold = load(args.target)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sim.duckdb"
        model = build(path, topic, texts, args.backend)
        true_acc = sum(m == g for m, g in zip(model, gold, strict=True)) / len(gold)
        print(f"target {args.target}: {len(texts)} posts, backend {args.backend}, random share "
              f"{args.random_share}; true stance accuracy on every post {true_acc:.3f}")
        print("labels  random  page accuracy [95 % interval]  macro-F1  "
              "accuracy on all labelled posts")
        done, seen = 0, set[tuple[str, str]]()
        for checkpoint in sorted(args.labels):
            while done < checkpoint:
                # stance only: a post would stay queued for its other tasks, as the page's
                # session skips it once labelled
                picked = label_store.next_post(path, topic.id, args.random_share, skip=seen)
                if picked is None:
                    break
                post, sample = picked
                seen.add((post["platform"], post["id"]))
                label_store.save_labels(path, label_store.make_labels(
                    post, sample, "simulated", {"stance": gold[int(post["id"])]}))
                done += 1
            stance = label_accuracy(label_store.random_labels(path), topic.id).get("stance")
            with connect(path, read_only=True) as con:
                labelled = [int(r[0]) for r in con.execute(
                    "SELECT post_id FROM labels WHERE task = 'stance'").fetchall()]
            on_labelled = sum(model[i] == gold[i] for i in labelled) / max(len(labelled), 1)
            if stance is None or stance.accuracy is None:
                print(f"{done:6d}  {0:6d}  —")
                continue
            print(f"{done:6d}  {stance.n:6d}  {stance.accuracy:.3f} [{stance.lower:.3f}, "
                  f"{stance.upper:.3f}]        {stance.macro_f1:.3f}     {on_labelled:.3f}")


if __name__ == "__main__":
    main()
