"""A probe: a bilinear stance head, the post read against the *difference* of the two sides.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bilinear_stance.py [--rank 128] [--seed 0]
        [--epochs 12] [--control] [--project-out] [--test]

The shipped generic head is an MLP over ``stance_features`` = [e, e*t_pro, e*t_anti, cosines]:
the post ``e`` meets each description only dimension by dimension (e_i * t_i), and the side is
made antisymmetric after the fact by reading the post twice (swap mean). Here the side score is
a low-rank bilinear form of the post and the difference of the descriptions,

    s = sum_k tanh((U e + b)_k * (V (t_pro - t_anti))_k) * w_k  (+ the diagonal e.(t_pro-t_anti))

which lets any direction of the post meet any direction of the topic (the diagonal cannot), and
is odd in t_pro - t_anti, so swapping pro and anti negates it: the description flip holds by
construction. "unclear" gets its own logit from features symmetric in the two sides. Logits:
pro +s/2, anti -s/2, unclear g.

Trained on the shipped rows (SemEval train with its shipped descriptions, PERSPECTRUM train in
five phrasings), on the shipped encoder's cached embeddings; the epoch is picked on PERSPECTRUM
dev perspectives whose text is not in train. Prints, per epoch, dev F_avg and the DEBAGREEMENT
community shares read as ``stance_checks.py`` reads them (abstaining as the backend does);
``--test`` prints PERSPECTRUM test once for the picked epoch. ``--control`` trains the shipped
architecture (256 ReLUs over ``stance_features``, swap mean) the same way, for comparison;
``--project-out`` first removes two tone directions from every post vector (``tone_directions``).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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
from benchmarks.stance_checks import COMMUNITY, f_avg  # noqa: E402
from benchmarks.train_heads import embedding_cache  # noqa: E402
from scoring.extractors.decisions import STANCE_UNCLEAR_ABOVE, abstain  # noqa: E402
from scoring.extractors.features import mirror_stance_features, stance_features  # noqa: E402
from scoring.extractors.learned import HEADS_DIR  # noqa: E402

Triples = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # post, pro, anti, label


def perspectrum_triples(enc: EmbeddingCache, split: str, templates: range) -> Triples:
    """Every perspective of `split` with its claim's descriptions in each phrasing (the same
    cache keys as ``train_heads.perspectrum_stance``)."""
    claims = perspectrum(split)
    emb = enc([s for c in claims for s, _ in c.perspectives], f"perspectrum-{split}")
    es, ps, as_, ys = [], [], [], []
    start = 0
    for c in claims:
        n = len(c.perspectives)
        e, y = emb[start:start + n], np.array([lab for _, lab in c.perspectives])
        start += n
        for t in templates:
            t_pro, t_anti = enc(list(claim_sides(c.text, t)), f"perspectrum-claim-{c.id}-{t}")
            es.append(e)
            ps.append(np.broadcast_to(t_pro, e.shape))
            as_.append(np.broadcast_to(t_anti, e.shape))
            ys.append(y)
    return np.vstack(es), np.vstack(ps), np.vstack(as_), np.concatenate(ys)


def semeval_triples(enc: EmbeddingCache, split: str) -> Triples:
    es, ps, as_, ys = [], [], [], []
    for t in STANCE_TARGETS:
        texts, y = tweeteval(f"stance/{t}", split)
        e = enc(texts, f"stance-{t}-{split}")
        t_pro, t_anti = enc(list(STANCE_TARGETS[t]), f"stance-desc-{t}")
        es.append(e)
        ps.append(np.broadcast_to(t_pro, e.shape))
        as_.append(np.broadcast_to(t_anti, e.shape))
        ys.append(np.asarray(y))
    return np.vstack(es), np.vstack(ps), np.vstack(as_), np.concatenate(ys)


class Bilinear:
    def __init__(self, d: int, rank: int) -> None:
        import torch

        nn = torch.nn
        self.u, self.v = nn.Linear(d, rank), nn.Linear(d, rank, bias=False)
        self.w = nn.Parameter(torch.full((rank,), 1.0 / rank ** 0.5))
        self.diag = nn.Parameter(torch.zeros(d))
        self.gate = nn.Sequential(nn.Linear(2 * d + 2, 128), nn.ReLU(), nn.Linear(128, 1))
        self.side_bias = nn.Parameter(torch.zeros(1))  # unclear vs either side, symmetric
        self.params = [*self.u.parameters(), *self.v.parameters(), self.w, self.diag,
                       *self.gate.parameters(), self.side_bias]

    def logits(self, e: Any, tp: Any, ta: Any) -> Any:
        import torch

        d = tp - ta
        s = (torch.tanh(self.u(e) * self.v(d)) * self.w).sum(1) + (e * d * self.diag).sum(1)
        cp, ca = (e * tp).sum(1, keepdim=True), (e * ta).sum(1, keepdim=True)
        g = self.gate(torch.cat([e, e * (tp + ta) / 2, cp + ca, (cp - ca).abs()], 1))[:, 0]
        side = self.side_bias.expand_as(s)
        return torch.stack([g, side - s / 2, side + s / 2], 1)  # unclear, anti, pro

    def train(self, flag: bool) -> None:
        self.gate.train(flag)


class Control:
    """The shipped architecture: 256 ReLUs over stance_features, read swap-averaged."""

    def __init__(self, d: int, mean: np.ndarray, scale: np.ndarray) -> None:
        import torch

        self.net = torch.nn.Sequential(torch.nn.Linear(3 * d + 2, 256), torch.nn.ReLU(),
                                       torch.nn.Linear(256, 3))
        self.mean, self.scale = torch.from_numpy(mean), torch.from_numpy(scale)
        self.params = list(self.net.parameters())

    def _feat(self, e: Any, tp: Any, ta: Any) -> Any:
        import torch

        x = torch.cat([e, e * tp, e * ta, (e * tp).sum(1, keepdim=True),
                       (e * ta).sum(1, keepdim=True)], 1)
        return (x - self.mean) / self.scale

    def logits(self, e: Any, tp: Any, ta: Any) -> Any:
        import torch

        p = torch.softmax(self.net(self._feat(e, tp, ta)), -1)
        q = torch.softmax(self.net(self._feat(e, ta, tp)), -1)
        return torch.log((p + q[:, [0, 2, 1]]) / 2 + 1e-9)

    def train(self, flag: bool) -> None:
        self.net.train(flag)


def proba(model: Any, tr: Triples) -> np.ndarray:
    import torch

    with torch.no_grad():
        e, p, a = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in tr[:3])
        return torch.softmax(model.logits(e, p, a), -1).numpy()


def served(pr: np.ndarray) -> list[str]:
    return [STANCE_NAMES[abstain(row, STANCE_NAMES, STANCE_UNCLEAR_ABOVE)] for row in pr]


def community(enc: EmbeddingCache) -> dict[str, Triples]:
    texts = subreddit_posts()
    out = {}
    for sub in ("democrats", "Republican", "BlackLivesMatter"):
        e = enc(texts[sub], f"probe-community-{sub}")
        t = COMMUNITY[sub]
        t_pro, t_anti = enc([t.pro, t.anti], f"probe-community-topic-{t.id}")
        out[sub] = (e, np.broadcast_to(t_pro, e.shape), np.broadcast_to(t_anti, e.shape),
                    np.zeros(len(e), dtype=int))
    return out


def shares(labels: list[str]) -> str:
    n = len(labels)
    return "/".join(f"{labels.count(k) / n:.0%}" for k in ("pro", "anti", "unclear"))


def tone_directions(enc: EmbeddingCache) -> np.ndarray:
    """Two orthonormal directions of tone, not of any topic: the mean of "pro minus anti"
    description vectors over PERSPECTRUM's train claims in every phrasing ("In favour of" reads
    warmer than "Against" whatever the claim), and a logistic direction of positive vs negative
    tweets (TweetEval sentiment val, neutral left out)."""
    from sklearn.linear_model import LogisticRegression

    diffs = []
    for c in perspectrum("train"):
        for t in range(len(CLAIM_TEMPLATES)):
            t_pro, t_anti = enc(list(claim_sides(c.text, t)), f"perspectrum-claim-{c.id}-{t}")
            diffs.append(t_pro - t_anti)
    frame = np.mean(diffs, 0)
    texts, y = tweeteval("sentiment", "val")
    keep = y != 1
    e = enc([t for t, k in zip(texts, keep, strict=True) if k], "probe-sentiment-val-polar")
    tone = LogisticRegression(C=1.0, max_iter=3000).fit(e, y[keep]).coef_[0]
    q, _ = np.linalg.qr(np.stack([frame, tone], 1))
    log(f"tone directions: cos(frame, sentiment) = "
        f"{frame @ tone / np.linalg.norm(frame) / np.linalg.norm(tone):+.2f}")
    return np.asarray(q.T)


def unproject(e: np.ndarray, q: np.ndarray) -> np.ndarray:
    """`e` without its components along the rows of `q`, back to unit norm."""
    r = e - (e @ q.T) @ q
    return np.asarray(r / np.linalg.norm(r, axis=1, keepdims=True))


def main(argv: list[str] | None = None) -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rank", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--control", action="store_true", help="the shipped architecture instead")
    ap.add_argument("--test", action="store_true", help="print PERSPECTRUM test once at the end")
    ap.add_argument("--project-out", action="store_true",
                    help="remove two tone directions from every post vector first (see below)")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    enc = embedding_cache(adapter=HEADS_DIR / "encoder_adapter.npz")
    parts = [semeval_triples(enc, "train"),
             perspectrum_triples(enc, "train", range(len(CLAIM_TEMPLATES)))]
    train = tuple(np.vstack([p[i] for p in parts]) if i < 3 else np.concatenate([p[i] for p in parts])
                  for i in range(4))
    dev = perspectrum_triples(enc, "dev", range(1))
    seen = {t for c in perspectrum("train") for t, _ in c.perspectives}
    new = np.array([t not in seen for c in perspectrum("dev") for t, _ in c.perspectives])
    comm = community(enc)
    if args.project_out:
        q = tone_directions(enc)
        train = (unproject(train[0], q), *train[1:])
        dev = (unproject(dev[0], q), *dev[1:])
        comm = {k: (unproject(v[0], q), *v[1:]) for k, v in comm.items()}
    d = train[0].shape[1]
    if args.control:
        x = stance_features(*train[:3])
        both = np.vstack([x, mirror_stance_features(x)])
        model: Any = Control(d, both.mean(0).astype(np.float32),
                             (both.std(0) + 1e-6).astype(np.float32))
    else:
        model = Bilinear(d, args.rank)
    log(f"{len(train[3]):,} training rows; {'control' if args.control else f'bilinear rank {args.rank}'}")
    opt = torch.optim.AdamW(model.params, lr=args.lr, weight_decay=args.weight_decay)
    E, P, A = (torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) for x in train[:3])
    Y = torch.from_numpy(train[3].astype(np.int64))
    ce = torch.nn.CrossEntropyLoss()
    best, best_epoch, state = -1.0, 0, None
    gold_dev = [STANCE_NAMES[y] for y in dev[3]]
    for epoch in range(1, args.epochs + 1):
        model.train(True)
        order, losses = torch.randperm(len(Y)), []
        for s in range(0, len(Y), 256):
            b = order[s:s + 256]
            loss = ce(model.logits(E[b], P[b], A[b]), Y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.train(False)
        pred = served(proba(model, dev))
        dev_all = f_avg(gold_dev, pred)
        dev_new = f_avg([g for g, k in zip(gold_dev, new, strict=True) if k],
                        [q for q, k in zip(pred, new, strict=True) if k])
        c = {sub: served(proba(model, tr)) for sub, tr in comm.items()}
        gap = c["democrats"].count("pro") / len(c["democrats"]) - \
            c["Republican"].count("pro") / len(c["Republican"])
        log(f"epoch {epoch}: loss {np.mean(losses):.3f}; PERSPECTRUM dev {dev_all:.3f}, unseen "
            f"text {dev_new:.3f}; pro/anti/unclear r/democrats {shares(c['democrats'])}, "
            f"r/Republican {shares(c['Republican'])} (gap {gap:+.0%}), r/BLM "
            f"{shares(c['BlackLivesMatter'])}")
        if dev_new > best:
            best, best_epoch = dev_new, epoch
            state = [p.detach().clone() for p in model.params]
    assert state is not None
    with torch.no_grad():
        for p, s in zip(model.params, state, strict=True):
            p.copy_(s)
    log(f"picked epoch {best_epoch} (PERSPECTRUM dev, unseen text {best:.3f})")
    if args.test:
        test = perspectrum_triples(enc, "test", range(1))
        if args.project_out:
            test = (unproject(test[0], q), *test[1:])
        pred = served(proba(model, test))
        print(f"PERSPECTRUM test F_avg {f_avg([STANCE_NAMES[y] for y in test[3]], pred):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
