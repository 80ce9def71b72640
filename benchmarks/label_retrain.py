"""Does teaching a topic work? A simulated analyst labels 30, 60 and 100 posts of a topic the
model never saw, through the Label page's code path, and the topic's stance head is retrained
from those labels through the product's path (issue 21's "Done when").

    HF_HUB_OFFLINE=1 python benchmarks/label_retrain.py [--semeval atheism hillary]
        [--claims 5] [--labels 30 60 100] [--random-share 0.3]

Sources (``../shared/data``):

- **SemEval-2016, a target left out of training.** The shipped generic stance head and the
  shipped ``stance_<target>`` heads were trained on all five targets, so the backend here uses a
  generic head refitted on the *other four* targets' training tweets (as
  ``benchmarks/topic_heads.py``'s leave-one-target-out, C = 1) and no topic heads: nothing that
  serves the topic saw it. The posts are the target's TweetEval train + val tweets (no test
  split is stored). Caveat: the shipped encoder adapter was fine-tuned on every target's train
  tweets with their gold labels, so the serving head's figure is optimistic, not zero-shot.
- **PERSPECTRUM dev claims** with the most perspectives, each claim a topic ("In favour of
  <claim>." / "Against <claim>."), shipped heads (no topic head matches these descriptions).
  A claim has at most 108 perspectives, so a checkpoint runs on a claim only while at least
  ``MIN_HELD_OUT`` of its posts stay unlabelled; held-out predictions are pooled over claims.
- **DEBAGREEMENT** (agreement, no retrain path): the 25 % of the dev threads the shipped
  agreement head never trained on (``heads_data.agreement_split``), each reply stored with its
  parent; the analyst labels the reply's agreement.

The analyst takes posts exactly as the page does (``dashboard.label_store.next_post``: the
random share by quota, the rest least confident first), answers with the gold label and stores
it (``make_labels`` / ``save_labels``). At each checkpoint the script prints

- the accuracy the Topic page reports (``dashboard.analysis.label_accuracy``: random labels only,
  Wilson 95 % interval) against the true accuracy of the serving labels on *every* post, and the
  accuracy on every labelled post (random + least confident: what the page must not use);
- for stance, ``stream.retrain.train_from_warehouse`` (what ``polarwatch train --from-warehouse``
  runs): its cross-validated F_avg on the labels, new head against the serving one, and whether
  it would ship; then the serving head and the retrained head (loaded by the backend from a
  ``topic_heads_dir``, as the stream would, shipped or not) scored on the posts **nobody
  labelled**. Every checkpoint retrains from the general model (a fresh heads directory).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    AGREEMENT_NAMES,
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    agreement_pairs,
    agreement_split,
    perspectrum,
    tweeteval,
)
from dashboard import label_store  # noqa: E402
from dashboard.analysis import label_accuracy  # noqa: E402
from polarwatch.config import Topic, load_config  # noqa: E402
from polarwatch.errors import SchemaError  # noqa: E402
from polarwatch.records import SCHEMA_VERSION, Labels  # noqa: E402
from polarwatch.warehouse import connect, init_schema  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402
from scoring.retrain import f_avg, write_head  # noqa: E402

MIN_HELD_OUT = 30  # unlabelled posts a PERSPECTRUM claim must keep at a checkpoint
LOTO_C = 1.0  # the leave-one-target-out generic head's C (benchmarks/topic_heads.py's)
T0 = datetime(2016, 1, 1, tzinfo=UTC)


@dataclass
class Source:
    topic: Topic
    texts: list[str]
    gold: list[str]
    heads_dir: Path | None = None  # None: the shipped heads
    parents: list[str] | None = None  # agreement: each text is a reply to its parent
    groups: list[int] | None = None  # PERSPECTRUM: the paraphrase cluster of each post


@dataclass
class Checkpoint:
    """One topic after n labels: what the page says and what a retrain does."""

    n: int
    page: Any  # TaskAccuracy of the random sample (None before the first)
    drawn_random: Any  # TaskAccuracy of the labels drawn as random only (the old estimate)
    true_accuracy: float
    on_labelled: float
    held_gold: list[str]
    held_serving: list[str]
    held_retrained: list[str]
    held_unseen: list[bool]  # held-out posts none of whose paraphrases were labelled
    cv_new: float | None = None
    cv_serving: float | None = None
    shipped: bool = False
    candidate: str = ""
    why_not: str = ""  # why there was no retrain

    def after(self) -> list[str]:
        """The held-out labels of the head the topic uses after the retrain's decision."""
        return self.held_retrained if self.shipped else self.held_serving


def loto_heads(target: str, tmp: Path) -> Path:
    """A heads directory whose generic stance head never saw `target`: the shipped affect,
    agreement and emotion heads and adapter, and a stance head refitted on the other four
    targets' training tweets (each also with pro and anti swapped, as the shipped one)."""
    from sklearn.linear_model import LogisticRegression

    from scoring.extractors.learned import HEADS_DIR, Head, shipped_encoder, stance_features

    out = tmp / f"heads-without-{target}"
    out.mkdir()
    for name in ("affect.npz", "agreement.npz", "emotion.npz", "encoder_adapter.npz"):
        shutil.copy(HEADS_DIR / name, out / name)
    enc = shipped_encoder(cache_size=0)
    xs, ys = [], []
    for t, (pro, anti) in STANCE_TARGETS.items():
        if t == target:
            continue
        texts, y = tweeteval(f"stance/{t}", "train")
        e, (t_pro, t_anti) = enc.encode(texts), enc.encode([pro, anti])
        xs += [stance_features(e, t_pro, t_anti), stance_features(e, t_anti, t_pro)]
        ys += [y, np.choose(y, [0, 2, 1])]
    clf = LogisticRegression(C=LOTO_C, max_iter=3000, class_weight="balanced")
    clf.fit(np.vstack(xs), np.concatenate(ys))
    shipped = Head.load(HEADS_DIR / "stance.npz")
    arrays: dict[str, Any] = {
        "classes": np.array([STANCE_NAMES[int(c)] for c in clf.classes_]),
        "W0": clf.coef_.T.astype(np.float32), "b0": clf.intercept_.astype(np.float32),
        **{k: np.array(shipped.meta_str(k)) for k in ("encoder_variant", "encoder_adapter")},
        "source": np.array(f"SemEval-2016 train without {target}")}
    Head(arrays, name="stance").save(out / "stance.npz")
    return out


def semeval(target: str, tmp: Path) -> Source:
    pro, anti = STANCE_TARGETS[target]
    texts, gold = [], []
    for split in ("train", "val"):
        t, y = tweeteval(f"stance/{target}", split)
        texts += t
        gold += [STANCE_NAMES[int(v)] for v in y]
    topic = Topic(target, STANCE_TARGET_NAMES[target], pro=pro, anti=anti)
    return Source(topic, texts, gold, heads_dir=loto_heads(target, tmp))


def claims(n: int) -> list[Source]:
    out = []
    clusters = perspective_clusters()
    for c in sorted(perspectrum("dev"), key=lambda c: -len(c.perspectives))[:n]:
        claim = c.text.strip().rstrip(".")
        topic = Topic(f"claim{c.id}", claim[:60], pro=f"In favour of {claim}.",
                      anti=f"Against {claim}.")
        assert len(clusters[c.id]) == len(c.perspectives)
        out.append(Source(topic, [t for t, _ in c.perspectives],
                          [STANCE_NAMES[s] for _, s in c.perspectives], groups=clusters[c.id]))
    return out


def perspective_clusters() -> dict[int, list[int]]:
    """Per claim, the cluster index of each perspective in ``heads_data.perspectrum``'s order:
    a cluster holds paraphrases of one perspective."""
    import json

    from benchmarks.heads_data import DATA_DIR

    base = DATA_DIR / "perspectrum"
    pool = {p["pId"] for p in
            json.loads((base / "perspective_pool_v1.0.json").read_text(encoding="utf-8"))}
    return {int(c["cId"]): [k for k, cl in enumerate(c["perspectives"]) for pid in cl["pids"]
                            if pid in pool]
            for c in json.loads((base / "perspectrum_with_answers_v1.0.json")
                                .read_text(encoding="utf-8"))}


def debagreement() -> Source:
    deb, _ = agreement_pairs()
    _, held = agreement_split(deb)
    topic = Topic("reddit", "DEBAGREEMENT held-out threads", pro="agrees", anti="disagrees")
    return Source(topic, [deb.children[i] for i in held],
                  [AGREEMENT_NAMES[int(deb.labels[i])] for i in held],
                  parents=[deb.parents[i] for i in held])


def config(tmp: Path, topic: Topic) -> Path:
    """A polarwatch.toml (learned backend, one topic) next to a fresh warehouse."""
    tmp.mkdir(parents=True)
    (tmp / "topics.toml").write_text(
        f'[[topic]]\nid = "{topic.id}"\nname = {_toml(topic.name)}\npro = {_toml(topic.pro)}\n'
        f'anti = {_toml(topic.anti)}\n')
    (tmp / "polarwatch.toml").write_text(
        '[warehouse]\npath = "w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "learned"\n'
        'fallback = []\ntopics_file = "topics.toml"\nlearned_topic_heads_dir = "heads"\n')
    init_schema(tmp / "w.duckdb")
    return tmp / "polarwatch.toml"


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def store(path: Path, src: Source, labels: list[Labels]) -> None:
    """The posts with the serving labels (a reply's parent under another topic, unlabelled)."""
    rows, parents = [], []
    for i, (text, lab) in enumerate(zip(src.texts, labels, strict=True)):
        parent = None if src.parents is None else f"q{i}"
        rows.append((str(i), "sim", "a", text, T0 + timedelta(minutes=i), src.topic.id,
                     parent or str(i), parent, lab.stance, lab.affect, lab.agreement,
                     lab.emotion, lab.intensity, lab.stance_conf, lab.affect_conf,
                     lab.agreement_conf, lab.emotion_conf, lab.backend, lab.explanation,
                     SCHEMA_VERSION))
        if parent is not None and src.parents is not None:
            parents.append((parent, "sim", "b", src.parents[i], T0 + timedelta(minutes=i),
                            "parents", parent, None, "unclear", "no", None, "neutral", 0.0,
                            0.0, 0.0, None, 0.0, "sim", None, SCHEMA_VERSION))
    with connect(path) as con:
        con.executemany(
            "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
            "conversation_id, parent_id, stance, affect, agreement, emotion, intensity, "
            "stance_conf, affect_conf, agreement_conf, emotion_conf, backend, explanation, "
            "schema_version) VALUES (" + ", ".join("?" * 20) + ")", rows + parents)


def label_until(path: Path, src: Source, task: str, n: int, random_share: float,
                done: list[int]) -> None:
    """The analyst labels posts as the page draws them until `done` holds `n` of them."""
    while len(done) < n:  # one task only: a post stays queued for its others, so it is
        # skipped once labelled, as the page's session skips it
        picked = label_store.next_post(path, src.topic.id, random_share,
                                       skip={("sim", str(i)) for i in done})
        if picked is None:
            return
        post, sample = picked
        i = int(post["id"])
        label_store.save_labels(path, label_store.make_labels(
            post, sample, "simulated", {task: src.gold[i]}))
        done.append(i)


def drawn_random(path: Path) -> Any:
    """The labels drawn as random only: what the page counted before the random sample kept
    the posts the least-confident share labelled first."""
    with connect(path, read_only=True) as con:
        return con.execute("SELECT topic, task, value, model_value FROM labels "
                           "WHERE sample = 'random'").df()


def run(src: Source, task: str, checkpoints: list[int], random_share: float, tmp: Path
        ) -> list[Checkpoint]:
    from scoring.extractors.learned import LearnedExtractor
    from scoring.extractors.registry import get_extractor
    from stream.retrain import train_from_warehouse

    cfg_path = config(tmp, src.topic)
    path = tmp / "w.duckdb"
    options = {"heads_dir": src.heads_dir} if src.heads_dir else {}
    serving = get_extractor("learned", [src.topic], **options)
    assert isinstance(serving, LearnedExtractor)
    labels = serving.extract([PostPair(str(i), t, src.topic.id,
                                       None if src.parents is None else src.parents[i])
                              for i, t in enumerate(src.texts)])
    model = [str(getattr(lab, task)) for lab in labels]
    store(path, src, labels)
    print(f"{src.topic.id}: {len(src.texts)} posts, serving stance head: "
          f"{serving.stance_heads[src.topic.id]}", file=sys.stderr, flush=True)
    true_acc = float(np.mean([m == g for m, g in zip(model, src.gold, strict=True)]))
    done: list[int] = []
    out = []
    for n in checkpoints:
        if len(src.texts) - n < (MIN_HELD_OUT if task == "stance" else 1):
            break
        label_until(path, src, task, n, random_share, done)
        page = label_accuracy(label_store.random_labels(path), src.topic.id).get(task)
        drawn = label_accuracy(drawn_random(path), src.topic.id).get(task)
        held = sorted(set(range(len(src.texts))) - set(done))
        seen = {src.groups[i] for i in done} if src.groups else set()
        cp = Checkpoint(len(done), page, drawn, true_acc,
                        float(np.mean([model[i] == src.gold[i] for i in done])),
                        [src.gold[i] for i in held], [model[i] for i in held], [],
                        [not src.groups or src.groups[i] not in seen for i in held])
        if task == "stance":
            cfg = load_config(cfg_path, env={})
            ship = tmp / f"ship{n}" / f"stance_{src.topic.id}.npz"
            try:
                result = train_from_warehouse(cfg, src.topic.id, ship, extractor=serving)
            except SchemaError as exc:  # too few labels of a side: say so, go on
                cp.why_not = str(exc).split(": ", 1)[-1]
                out.append(cp)
                continue
            r = result.result
            assert r.fitted is not None
            cand = tmp / f"candidate{n}"
            write_head(r.fitted, cand / f"stance_{src.topic.id}.npz")
            retrained = get_extractor("learned", [src.topic], topic_heads_dir=cand, **options)
            assert isinstance(retrained, LearnedExtractor)
            assert retrained.stance_heads[src.topic.id].startswith(f"stance_{src.topic.id}")
            cp.held_retrained = [lab.stance for lab in retrained.extract(
                [PostPair(str(i), src.texts[i], src.topic.id) for i in held])]
            cp.cv_new, cp.cv_serving = r.new_f_avg, r.current_f_avg
            cp.shipped, cp.candidate = result.written, r.candidate
        out.append(cp)
    return out


def _acc(m: Any) -> str:
    return (f"{m.accuracy:.3f} [{m.lower:.2f}, {m.upper:.2f}] (n={m.n})"
            if m is not None and m.accuracy is not None else "—")


def show(name: str, cps: list[Checkpoint], task: str) -> None:
    for cp in cps:
        line = (f"| {name} | {cp.n} | {_acc(cp.page)} | {cp.true_accuracy:.3f} | "
                f"{_acc(cp.drawn_random)} | {cp.on_labelled:.3f}")
        if task == "stance":
            line += f" | {len(cp.held_gold)} | {f_avg(cp.held_gold, cp.held_serving):.3f}"
            if cp.held_retrained:
                line += (f" | **{f_avg(cp.held_gold, cp.held_retrained):.3f}** | "
                         f"{f_avg(cp.held_gold, cp.after()):.3f} | "
                         f"{cp.cv_new:.3f} vs {cp.cv_serving:.3f}: "
                         f"{'ships' if cp.shipped else 'kept'} ({cp.candidate})")
            else:
                line += f" | — | {f_avg(cp.held_gold, cp.held_serving):.3f} | {cp.why_not}"
        print(line + " |", flush=True)


def pooled(name: str, runs: list[list[Checkpoint]], checkpoints: list[int]) -> None:
    """F_avg over every topic's held-out posts at each checkpoint (topics that reached it and
    were retrained), and over those none of whose paraphrases were labelled."""
    for n in checkpoints:
        cps = [cp for cps in runs for cp in cps if cp.n == n and cp.held_retrained]
        if not cps:
            continue
        for unseen in (False, True):
            keep = [[u or not unseen for u in cp.held_unseen] for cp in cps]
            if unseen and all(all(k) for k in keep):
                continue

            def pick(xs: list[list[str]], keep: list[list[bool]] = keep) -> list[str]:
                return [x for x_cp, k_cp in zip(xs, keep, strict=True)
                        for x, k in zip(x_cp, k_cp, strict=True) if k]

            gold = pick([cp.held_gold for cp in cps])
            print(f"| {name} pooled, {len(cps)} topics"
                  f"{', held-out posts with no labelled paraphrase' if unseen else ''} | {n} | "
                  f"| | | | {len(gold)} | {f_avg(gold, pick([cp.held_serving for cp in cps])):.3f}"
                  f" | **{f_avg(gold, pick([cp.held_retrained for cp in cps])):.3f}** | "
                  f"{f_avg(gold, pick([cp.after() for cp in cps])):.3f} | "
                  f"{sum(cp.shipped for cp in cps)} of {len(cps)} ship |", flush=True)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--semeval", nargs="*", default=["atheism", "hillary"],
                    choices=sorted(STANCE_TARGETS))
    ap.add_argument("--claims", type=int, default=5, help="PERSPECTRUM dev claims")
    ap.add_argument("--agreement", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--labels", type=int, nargs="+", default=[30, 60, 100])
    ap.add_argument("--random-share", type=float, default=0.3)
    args = ap.parse_args()
    cps_sorted = sorted(args.labels)
    print("| source | labels | page accuracy [95 %] (random sample) | true accuracy, every "
          "post | labels drawn as random only | accuracy on every labelled post | held-out "
          "posts | F_avg serving head | "
          "F_avg retrained head | F_avg after the decision | CV F_avg on the labels, new vs "
          "serving: decision |\n|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        runs = []
        for target in args.semeval:
            src = semeval(target, tmp)
            cps = run(src, "stance", cps_sorted, args.random_share, tmp / f"s-{target}")
            show(f"SemEval {target} (left out)", cps, "stance")
            runs.append(cps)
        pooled("SemEval", runs, cps_sorted)
        runs = []
        for src in claims(args.claims):
            cps = run(src, "stance", cps_sorted, args.random_share, tmp / src.topic.id)
            show(f"PERSPECTRUM {src.topic.id}", cps, "stance")
            runs.append(cps)
        pooled("PERSPECTRUM", runs, cps_sorted)
        if args.agreement:
            src = debagreement()
            show("DEBAGREEMENT (agreement)",
                 run(src, "agreement", cps_sorted, args.random_share, tmp / "deb"), "agreement")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
