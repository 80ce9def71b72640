"""Labeled data loaders and an on-disk embedding cache for `train_heads.py`.

Reads ``../shared/data`` (never copied into the repository) and caches MiniLM embeddings under
``/tmp/polarwatch-embcache`` keyed by a hash of the texts, so re-runs skip the encoder.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA_DIR = Path(os.environ.get("POLARWATCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CACHE_DIR = Path(os.environ.get("POLARWATCH_EMB_CACHE", "/tmp/polarwatch-embcache"))

# SemEval-2016 Task 6 targets, described the way a polarwatch topic is (pro = TweetEval "favor").
STANCE_TARGETS: dict[str, tuple[str, str]] = {
    "abortion": ("Supports legal abortion and a woman's right to choose.",
                 "Opposes abortion; pro-life, believes the unborn have a right to life."),
    "atheism": ("Supports atheism; rejects belief in God and organized religion.",
                "Opposes atheism; believes in God and defends religious faith."),
    "climate": ("Accepts human-caused climate change and supports action against it.",
                "Doubts or denies human-caused climate change, or opposes climate policy."),
    "feminist": ("Supports feminism and the feminist movement for women's rights and equality.",
                 "Opposes feminism and the feminist movement."),
    "hillary": ("Supports Hillary Clinton and her presidential campaign.",
                "Opposes Hillary Clinton and her presidential campaign."),
}
# SemEval-2016 Task 6's own target names, stored in each topic head (``name``) for matching.
STANCE_TARGET_NAMES = {"abortion": "Legalization of abortion", "atheism": "Atheism",
                       "climate": "Climate change is a real concern",
                       "feminist": "Feminist movement", "hillary": "Hillary Clinton"}
STANCE_NAMES = ("unclear", "anti", "pro")  # TweetEval 0 none, 1 against, 2 favor
EMOTION_NAMES = ("anger", "joy", "optimism", "sadness")
AGREEMENT_NAMES = ("disagree", "unclear", "agree")  # 0 disagree, 1 neutral, 2 agree


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def tweeteval(task: str, split: str) -> tuple[list[str], np.ndarray]:
    """Texts and integer labels of a TweetEval task split ("train" or "val")."""
    base = DATA_DIR / "tweeteval" / task
    texts = [t.replace("#SemST", "").strip() for t in _lines(base / f"{split}_text.txt")]
    labels = np.array([int(x) for x in _lines(base / f"{split}_labels.txt")])
    if len(texts) != len(labels):
        raise ValueError(f"{base}: {len(texts):,} texts but {len(labels):,} labels")
    return texts, labels


@dataclass
class Pairs:
    parents: list[str]
    children: list[str]
    labels: np.ndarray
    groups: list[str]  # source / subreddit


def debagreement_rows() -> list[dict[str, str]]:
    """Every row of DEBAGREEMENT's dev file (``body_parent``, ``body_child``, ``subreddit``, ...)."""
    with (DATA_DIR / "agreement" / "debagreement_dev.csv").open(encoding="utf-8",
                                                                 newline="") as fh:
        return list(csv.DictReader(fh))


def subreddit_posts(rows: list[dict[str, str]] | None = None) -> dict[str, list[str]]:
    """Every distinct post (parent or reply) of DEBAGREEMENT's dev threads, per subreddit, sorted
    (`rows`: ``debagreement_rows()``, read when not given)."""
    texts: dict[str, set[str]] = {}
    for r in rows if rows is not None else debagreement_rows():
        texts.setdefault(r["subreddit"], set()).update((r["body_parent"], r["body_child"]))
    return {sub: sorted(posts) for sub, posts in sorted(texts.items())}


def agreement_pairs() -> tuple[Pairs, Pairs]:
    """(DEBAGREEMENT, SubReddit Covid/Mask) reply pairs; labels 0 disagree, 1 neutral, 2 agree."""
    def read(path: Path, parent: str, child: str, label: str, group: str | None) -> Pairs:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        return Pairs([r[parent] for r in rows], [r[child] for r in rows],
                     np.array([int(r[label]) for r in rows]),
                     [r[group] if group else path.stem for r in rows])

    deb = read(DATA_DIR / "agreement" / "debagreement_dev.csv", "body_parent", "body_child",
               "label", "subreddit")
    subs = [read(DATA_DIR / "agreement" / f"SubReddit-{n}.csv", "quote_text", "response_text",
                 "relation", None) for n in ("CovidVaccine", "MaskMandate")]
    other = Pairs(subs[0].parents + subs[1].parents, subs[0].children + subs[1].children,
                  np.concatenate([subs[0].labels, subs[1].labels]), subs[0].groups + subs[1].groups)
    return deb, other


AGREEMENT_HOLDOUT = 0.25  # share of DEBAGREEMENT held out for validation, never trained on
SPLIT_SEED = 0


def agreement_split(deb: Pairs) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) indices of DEBAGREEMENT: a fixed stratified 75 / 25 split."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(deb.labels))
    tr, ho = train_test_split(idx, test_size=AGREEMENT_HOLDOUT, random_state=SPLIT_SEED,
                              stratify=deb.labels)
    return np.asarray(tr), np.asarray(ho)


class EmbeddingCache:
    """Encodes texts with the shipped encoder, caching each distinct list of texts in /tmp."""

    def __init__(self, encode_fn: Callable[[list[str]], np.ndarray], tag: str = "minilm") -> None:
        self._encode = encode_fn
        self._tag = tag
        CACHE_DIR.mkdir(parents=True, exist_ok=True)

    def __call__(self, texts: Sequence[str], name: str = "texts") -> np.ndarray:
        digest = hashlib.sha1(("\x00".join([self._tag, *texts])).encode()).hexdigest()[:16]
        path = CACHE_DIR / f"{name}-{digest}.npy"
        if path.exists():
            return np.load(path)
        t0 = time.perf_counter()
        log(f"encoding {len(texts):,} texts for {name} (cached afterwards in {path})")
        emb = np.asarray(self._encode(list(texts)), dtype=np.float32)
        np.save(path, emb)
        log(f"  done in {time.perf_counter() - t0:.0f} s")
        return emb


# --------------------------------------------------------------------------------------------
# Stance on many targets: PERSPECTRUM (Chen et al. 2019, CC BY-SA 4.0). Each claim is a topic
# whose pro side is the claim; its perspective sentences support (pro) or undermine (anti) it.

# How an analyst might write the two sides of a claim. The benchmark's phrasing is the first pair
# ("In favour of X" / "Against X"); training draws from all of them.
CLAIM_TEMPLATES: tuple[tuple[str, str], ...] = (
    ("In favour of {c}", "Against {c}"),
    ("{C}", "It is not true that {c}"),
    ("Supports the view that {c}", "Opposes the view that {c}"),
    ("Agrees that {c}", "Disagrees that {c}"),
    ("Argues for: {C}", "Argues against: {C}"),
)

def claim_sides(claim: str, template: int = 0) -> tuple[str, str]:
    """(pro, anti) descriptions of a PERSPECTRUM claim in one of ``CLAIM_TEMPLATES``."""
    claim = claim.strip().rstrip(".")
    low = claim[:1].lower() + claim[1:]
    pro, anti = CLAIM_TEMPLATES[template]
    return (pro.format(c=low, C=claim) + ".", anti.format(c=low, C=claim) + ".")


@dataclass
class Claim:
    id: int
    text: str
    perspectives: list[tuple[str, int]]  # (sentence, 1 anti / 2 pro as in STANCE_NAMES)


def perspectrum(split: str) -> list[Claim]:
    """PERSPECTRUM claims of one split ("train", "dev" or "test") with every perspective
    sentence of their clusters (SUPPORT -> 2 pro, UNDERMINE -> 1 anti)."""
    import json

    base = DATA_DIR / "perspectrum"
    claims = json.loads((base / "perspectrum_with_answers_v1.0.json").read_text(encoding="utf-8"))
    pool = {p["pId"]: p["text"] for p in
            json.loads((base / "perspective_pool_v1.0.json").read_text(encoding="utf-8"))}
    splits = json.loads((base / "dataset_split_v1.0.json").read_text(encoding="utf-8"))
    out = []
    for c in claims:
        if splits.get(str(c["cId"])) != split:
            continue
        rows = [(pool[pid], 2 if cl["stance_label_3"] == "SUPPORT" else 1)
                for cl in c["perspectives"] for pid in cl["pids"] if pid in pool]
        out.append(Claim(int(c["cId"]), c["text"], rows))
    if not out:
        raise ValueError(f"no PERSPECTRUM claims in split {split!r} under {base}")
    return out
