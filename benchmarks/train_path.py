"""The `polarwatch train` path on real labels: holdout and validation macro-F1 of the heads it fits.

For each SemEval-2016 stance target and for TweetEval emotion, the train split is written to a
CSV with the dataset's own label spellings (``favor``/``against``/``none``), trained through
``scoring.training.train_head`` exactly as ``polarwatch train`` does, and the saved head is
scored on the matching validation split. The encoder is the shipped one behind a per-text disk
cache (``/tmp/polarwatch-embcache``), so only the first run pays for encoding and a rerun times
the fit alone.

Reproduce: ``PYTHONPATH=$PWD python benchmarks/train_path.py`` (needs ``../shared/data`` and the
``learned`` extra).
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    CACHE_DIR,
    EMOTION_NAMES,
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    log,
    tweeteval,
)

STANCE_SPELLING = ("none", "against", "favor")  # TweetEval 0, 1, 2 as the datasets write them


class TextCache:
    """The shipped encoder with one cached vector per distinct text (an .npz in CACHE_DIR)."""

    def __init__(self, encoder: Any, path: Path) -> None:
        self.encoder, self.path = encoder, path
        self.variant = getattr(encoder, "variant", "fp32-seq256")
        self.adapter = getattr(encoder, "adapter", "")
        self.vectors: dict[str, np.ndarray] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                self.vectors = dict(zip(data["texts"].tolist(), data["vectors"], strict=True))
        self.dirty = False

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        new = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if new:
            log(f"encoding {len(new):,} new texts")
            for t, v in zip(new, np.asarray(self.encoder.encode(new)), strict=True):
                self.vectors[t] = v
            self.dirty = True
        return np.stack([self.vectors[t] for t in texts])

    def save(self) -> None:
        if self.dirty:
            texts = list(self.vectors)
            np.savez(self.path, texts=np.array(texts), vectors=np.stack([self.vectors[t]
                                                                           for t in texts]))


def macro_f1(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, labels=list(labels), average="macro", zero_division=0))


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from polarwatch.config import Topic
    from scoring.extractors.learned import Head, shipped_encoder, stance_features
    from scoring.training import train_head

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    enc = TextCache(shipped_encoder(cache_size=0), CACHE_DIR / "train_path_texts.npz")
    cases: list[tuple[str, list[Topic]]] = [
        (f"stance/{t}", [Topic(id=t, name=STANCE_TARGET_NAMES[t], pro=pro, anti=anti)])
        for t, (pro, anti) in STANCE_TARGETS.items()]
    cases.append(("emotion", []))
    print("| data | train rows | holdout macro-F1 | C | validation macro-F1 | seconds (fit) |\n"
          "|---|---:|---:|---:|---:|---:|")
    val_scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, topics in cases:
            task = "stance" if topics else "emotion"
            texts, y = tweeteval(name, "train")
            spell = STANCE_SPELLING if topics else EMOTION_NAMES
            data = Path(tmp) / f"{name.replace('/', '_')}.csv"
            with data.open("w", encoding="utf-8", newline="") as fh:
                out = csv.writer(fh)
                out.writerow(["text", "label", *(["topic"] if topics else [])])
                for text, label in zip(texts, y, strict=True):
                    out.writerow([text, spell[int(label)], *([topics[0].id] if topics else [])])
            enc.encode(texts)  # warm the cache so the timing below is the fit
            t0 = time.perf_counter()
            report = train_head(task, data, topics, Path(tmp) / "head.npz", encoder=enc)
            seconds = time.perf_counter() - t0
            head = Head.load(report.output)
            v_texts, v_y = tweeteval(name, "val")
            x = enc.encode(v_texts)
            if topics:
                t_pro, t_anti = enc.encode([topics[0].pro, topics[0].anti])
                x = stance_features(x, t_pro, t_anti)
            pred = [head.classes[k] for k in head.predict_proba(x).argmax(1)]
            names = STANCE_NAMES if topics else EMOTION_NAMES
            val = macro_f1([names[int(v)] for v in v_y], pred, names)
            val_scores.append(val)
            print(f"| {name} | {report.n_rows:,} | {report.holdout_macro_f1:.3f} | {report.c:g} "
                  f"| {val:.3f} | {seconds:.1f} |", flush=True)
    enc.save()
    print(f"| mean | | | | {np.mean(val_scores):.3f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
