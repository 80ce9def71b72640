"""A probe: teach the generic stance head that an agreeing reply takes its parent's side.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/pair_stance.py [--pair-weight 1.0] [--seed 0]
        [--out /tmp/pair_stance]

On real reply pairs the shipped head picks the rule table's half (same side or opposite) at
random: `stance_checks.py --only pairs` gives 0.48 balanced. People labelled those pairs' agreement,
not their stance, but agreement says how the two stances relate: an agreeing reply is on its
parent's side, a disagreeing one on the other. This trains the generic head (the shipped
architecture: 256 ReLUs over `stance_features`, read swap-averaged as served) in torch on the
shipped rows (SemEval train, PERSPECTRUM train in five phrasings) plus that relation on the
SubReddit CovidVaccine / MaskMandate pairs (agree / disagree only, two topics written here, two
phrasings each): for an agreeing pair the loss is -log P(same side | both take one), for a
disagreeing pair -log P(opposite side | both take one). No stance label of a Reddit post is used.
The epoch is picked on PERSPECTRUM dev perspectives not in train; DEBAGREEMENT's first 75 % of
pairs (the agreement head's training part; stance never trained on DEBAGREEMENT) is printed as a
diagnostic. Writes a heads directory (the shipped heads with this `stance.npz`) for
``stance_checks.py --heads OUT``; ``--pair-weight 0`` is the control.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    CLAIM_TEMPLATES,
    STANCE_NAMES,
    STANCE_TARGETS,
    EmbeddingCache,
    agreement_pairs,
    agreement_split,
    log,
    perspectrum,
)
from benchmarks.stance_checks import COMMUNITY, f_avg, side_consistency  # noqa: E402
from benchmarks.train_heads import (  # noqa: E402
    embedding_cache,
    perspectrum_stance,
    semeval_stance,
    to_head,
)
from scoring.extractors.features import mirror_stance_features, stance_features  # noqa: E402
from scoring.extractors.learned import HEADS_DIR, Head  # noqa: E402

# Two phrasings per SubReddit topic (the first is stance_checks.PAIR_TOPICS').
PAIR_SIDES = {"SubReddit-CovidVaccine": [("Supports COVID-19 vaccines.", "Opposes COVID-19 vaccines."),
                                         ("In favour of vaccination against COVID-19.",
                                          "Against vaccination against COVID-19.")],
              "SubReddit-MaskMandate": [("Supports mask mandates.", "Opposes mask mandates."),
                                        ("In favour of requiring masks in public.",
                                         "Against requiring masks in public.")]}
MIRROR = [0, 2, 1]  # STANCE_NAMES with pro and anti swapped


def pair_rows(enc: EmbeddingCache, pairs: Any, sides: dict[str, list[tuple[str, str]]],
              idx: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parent and reply `stance_features` under every phrasing of their topic, and 1 for an
    agreeing pair, 0 for a disagreeing one (neutral pairs dropped)."""
    keep = [i for i in idx if pairs.labels[i] != 1]
    ep = enc([pairs.parents[i] for i in keep], f"{name}-parents")
    ec = enc([pairs.children[i] for i in keep], f"{name}-replies")
    xp, xc, y = [], [], []
    for group in sorted({pairs.groups[i] for i in keep}):
        rows = [k for k, i in enumerate(keep) if pairs.groups[i] == group]
        for pro, anti in sides[group]:
            t_pro, t_anti = enc([pro, anti], f"pair-topic-{group}")
            xp.append(stance_features(ep[rows], t_pro, t_anti))
            xc.append(stance_features(ec[rows], t_pro, t_anti))
            y.append(np.array([pairs.labels[keep[k]] == 2 for k in rows], dtype=np.float32))
    return np.vstack(xp), np.vstack(xc), np.concatenate(y)


class Served:
    """The head as the backend reads it: the mean of its answers with the descriptions as given
    and swapped (``features.features_proba``), on standardized features."""

    def __init__(self, n_in: int, mean: np.ndarray, scale: np.ndarray, dropout: float = 0.0
                 ) -> None:
        import torch

        self.net = torch.nn.Sequential(torch.nn.Linear(n_in, 256), torch.nn.ReLU(),
                                       torch.nn.Dropout(dropout), torch.nn.Linear(256, 3))
        self.mean, self.scale = torch.from_numpy(mean), torch.from_numpy(scale)
        self.mirror = torch.from_numpy(np.array(mirror_stance_features(
            np.arange(n_in)[None, :])[0]))

    def proba(self, x: Any) -> Any:
        import torch

        p = torch.softmax(self.net((x - self.mean) / self.scale), -1)
        q = torch.softmax(self.net((x[:, self.mirror] - self.mean) / self.scale), -1)
        return (p + q[:, MIRROR]) / 2

    def predict(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.proba(torch.from_numpy(x)).numpy()

    def head(self) -> Head:
        """The trained net as a shipped head file's arrays (``train_heads.to_head``)."""
        import torch

        first, last = (m for m in self.net if isinstance(m, torch.nn.Linear))
        fitted = SimpleNamespace(
            classes_=range(len(STANCE_NAMES)),
            coefs_=[m.weight.detach().numpy().T for m in (first, last)],
            intercepts_=[m.bias.detach().numpy() for m in (first, last)])
        return to_head(fitted, STANCE_NAMES, {
            "features": "stance_features", "model": "mlp 256 torch",
            "trained_on": "stance/* + perspectrum train + reply-pair sides",
            "mean": self.mean.numpy(), "scale": self.scale.numpy()})


def side_agreement(model: Served, xp: np.ndarray, xc: np.ndarray, y: np.ndarray) -> float:
    """Balanced share of pairs whose argmax sides (where both take one) match their agreement
    (``stance_checks.side_consistency``; `y` 1 agree, 0 disagree)."""
    names = np.array(STANCE_NAMES)
    return side_consistency([2 if v else 0 for v in y], list(names[model.predict(xp).argmax(1)]),
                            list(names[model.predict(xc).argmax(1)]))["balanced"]


def train(args: argparse.Namespace) -> Served:
    import torch

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    enc = embedding_cache(adapter=HEADS_DIR / "encoder_adapter.npz")
    xs, ys, _ = semeval_stance(enc, list(STANCE_TARGETS), "train", swap=False)
    xp_, yp_ = perspectrum_stance(enc, "train", range(len(CLAIM_TEMPLATES)), swap=False)
    x, y = np.vstack([xs, xp_]).astype(np.float32), np.concatenate([ys, yp_])
    both = np.vstack([x, mirror_stance_features(x)])
    mean, scale = both.mean(0), both.std(0) + 1e-6
    xd, yd = perspectrum_stance(enc, "dev", range(1), swap=False)
    seen = {t for c in perspectrum("train") for t, _ in c.perspectives}
    new = np.array([t not in seen for c in perspectrum("dev") for t, _ in c.perspectives])
    deb, other = agreement_pairs()
    tr, _ = agreement_split(deb)
    pp, pc, py = pair_rows(enc, other, PAIR_SIDES, range(len(other.labels)), "pairs-subreddit")
    sides = {sub: [(t.pro, t.anti)] for sub, t in COMMUNITY.items()}
    dp, dc, dy = pair_rows(enc, deb, sides, tr, "pairs-debagreement-train")
    log(f"{len(y):,} stance rows, {len(py):,} reply-pair rows (weight {args.pair_weight}), "
        f"seed {args.seed}")
    model = Served(x.shape[1], mean.astype(np.float32), scale.astype(np.float32),
                   args.dropout)
    opt = torch.optim.AdamW(model.net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    nll = torch.nn.NLLLoss()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    PP, PC, PY = (torch.from_numpy(a.astype(np.float32)) for a in (pp, pc, py))
    steps = len(y) // 256
    best, best_epoch, state = -1.0, 0, None
    for epoch in range(1, args.epochs + 1):
        order, porder = torch.randperm(len(y)), torch.randint(0, len(py), (steps, args.pairs_per_step))
        sup_loss, pair_loss = [], []
        model.net.train()
        for s in range(steps):
            b = order[s * 256:(s + 1) * 256]
            loss = nll(torch.log(model.proba(X[b]) + 1e-9), Y[b])
            sup_loss.append(loss.item())
            if args.pair_weight > 0:
                k = porder[s]
                qp, qc = model.proba(PP[k]), model.proba(PC[k])
                same = qp[:, 1] * qc[:, 1] + qp[:, 2] * qc[:, 2]
                opp = qp[:, 1] * qc[:, 2] + qp[:, 2] * qc[:, 1]
                p_same = same / (same + opp + 1e-9)
                pl = torch.nn.functional.binary_cross_entropy(p_same.clamp(1e-6, 1 - 1e-6),
                                                              PY[k])
                pair_loss.append(pl.item())
                loss = loss + args.pair_weight * pl
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.net.eval()
        pred = np.array(STANCE_NAMES)[model.predict(xd).argmax(1)]
        gold = np.array(STANCE_NAMES)[yd]
        dev_new = f_avg(list(gold[new]), list(pred[new]))
        log(f"epoch {epoch}: loss {np.mean(sup_loss):.3f} + pairs "
            f"{np.mean(pair_loss) if pair_loss else float('nan'):.3f}; PERSPECTRUM dev "
            f"{f_avg(list(gold), list(pred)):.3f}, unseen text {dev_new:.3f}; sides vs agreement: "
            f"SubReddit {side_agreement(model, pp, pc, py):.3f}, DEBAGREEMENT 75 % "
            f"{side_agreement(model, dp, dc, dy):.3f}")
        if dev_new > best:
            best, best_epoch = dev_new, epoch
            state = {k: v.clone() for k, v in model.net.state_dict().items()}
    assert state is not None
    model.net.load_state_dict(state)
    log(f"picked epoch {best_epoch} (PERSPECTRUM dev, unseen text {best:.3f})")
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pair-weight", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs-per-step", type=int, default=64,
                    help="reply-pair rows beside each step's 256 stance rows")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=Path("/tmp/pair_stance"))
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = train(args)
    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(HEADS_DIR, args.out)
    model.head().save(args.out / "stance.npz")
    log(f"wrote {args.out} (the shipped heads with this stance.npz); check it with "
        f"benchmarks/stance_checks.py --heads {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
