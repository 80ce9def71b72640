"""Topics described in other words: does `learned` still pick the right stance head?

    .venv/bin/python benchmarks/topic_heads.py [--skip-loto]

1. Head matching (``scoring.extractors.learned.match_topic_head``): the similarity of each topic's
   pro/anti descriptions to each topic head's. Set A (paraphrases of the five SemEval targets)
   and NEGATIVES (unrelated and near-miss topics: Trump, Bernie Sanders, carbon tax, prayer in
   schools, women in combat, ...) choose the threshold: the midpoint between the lowest
   similarity of a paraphrase to its own head and the highest similarity of anything to a head it
   must not take. Set B, written separately and never used to choose, reports how it holds.
2. Stance F_avg on the SemEval validation tweets (pooled over the five targets) with the shipped
   descriptions, with set B (head matching on), and with set B and matching off (the generic
   head, i.e. what a user got before).
3. Leave-one-target-out F_avg of the generic description-conditioned head, refitted here like
   ``train_heads.py`` does (pro/anti swap augmentation, C = 1) on the shipped
   (adapted) encoder and on the frozen base encoder, which never saw any SemEval tweet.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import (  # noqa: E402
    STANCE_NAMES,
    STANCE_TARGET_NAMES,
    STANCE_TARGETS,
    log,
    tweeteval,
)
from polarwatch.config import Topic, load_topics  # noqa: E402
from scoring.extractors.base import PostPair  # noqa: E402

if TYPE_CHECKING:
    from scoring.extractors.learned import LearnedExtractor

REPO = Path(__file__).resolve().parents[1]

PARAPHRASES_A: dict[str, tuple[str, str, str]] = {
    "abortion": ("Abortion",
                 "Pro-choice: abortion should stay legal and be the pregnant woman's decision.",
                 "Pro-life: abortion is wrong and unborn children should be protected."),
    "atheism": ("Atheism and religion",
                "Atheist view: there is no god and religion does more harm than good.",
                "Religious believer: faith in God matters and atheism is wrong."),
    "climate": ("Global warming",
                "Global warming is caused by humans and we must act to stop it.",
                "Skeptical that humans cause global warming; against climate regulations."),
    "feminist": ("Feminism",
                 "Pro-feminist: backs the fight for women's equality.",
                 "Anti-feminist: criticizes feminists and the women's movement."),
    "hillary": ("Hillary 2016",
                "Backs Hillary Clinton for president.",
                "Against Hillary Clinton becoming president."),
}
PARAPHRASES_B: dict[str, tuple[str, str, str]] = {
    "abortion": ("Reproductive rights",
                 "In favour of access to abortion and reproductive rights.",
                 "Against abortion, wants to protect the life of the unborn child."),
    "atheism": ("Belief in God",
                "Argues against religion and belief in any god.",
                "Defends belief in God, prayer and Christian or other faith."),
    "climate": ("Climate change",
                "Believes climate change is real, man-made and urgent to address.",
                "Thinks climate change is exaggerated or a hoax."),
    "feminist": ("Women's movement",
                 "Supports the feminist cause and gender equality for women.",
                 "Against feminists and feminist ideas."),
    "hillary": ("Clinton campaign",
                "Wants Hillary Clinton to win the election.",
                "Criticizes Hillary Clinton and does not want her elected."),
}
NEGATIVES: dict[str, tuple[str, str, str]] = {
    "trump": ("Donald Trump",
              "Supports Donald Trump and his presidential campaign.",
              "Opposes Donald Trump and his campaign."),
    "bernie": ("Bernie Sanders",
               "Supports Bernie Sanders for president.", "Opposes Bernie Sanders."),
    "carbon_tax": ("Carbon tax",
                   "Supports a carbon tax to cut emissions.", "Opposes a carbon tax."),
    "school_prayer": ("School prayer",
                      "Supports prayer and religious teaching in public schools.",
                      "Opposes religion in public schools; wants church and state separate."),
    "women_in_combat": ("Women in combat",
                        "Supports women serving in combat roles in the military.",
                        "Opposes women in combat roles."),
    "vaccines": ("Vaccines",
                 "Supports vaccination and vaccine mandates.",
                 "Opposes vaccine mandates; skeptical of vaccines."),
    "death_penalty": ("Death penalty",
                      "Supports the death penalty.", "Opposes capital punishment."),
    "immigration": ("Immigration",
                    "Supports more immigration and taking in refugees.",
                    "Opposes immigration; wants stricter border control."),
    "same_sex_marriage": ("Same-sex marriage",
                          "Supports same-sex marriage.", "Opposes same-sex marriage."),
    "nuclear": ("Nuclear power",
                "Supports nuclear power as clean energy.", "Opposes nuclear power."),
    "brexit": ("Brexit",
               "Supports Brexit: the United Kingdom leaving the European Union.",
               "Opposes Brexit; wants the United Kingdom to remain in the European Union."),
}


Sims = dict[str, dict[str, tuple[float, bool]]]  # topic -> head -> (similarity, eligible)


def similarities(ext: LearnedExtractor, described: dict[str, tuple[str, str, str]]) -> Sims:
    """Per topic and head: ``head_similarity`` and whether the head is eligible at all (the
    proper-noun guard passes and the sides are not better matched crossed)."""
    from scoring.extractors.learned import load_heads
    from scoring.extractors.topic_match import describe, head_similarity, match_topic_head

    _, topic_heads = load_heads(ext.heads_dir)
    enc, heads = ext._matcher(topic_heads)
    out: Sims = {}
    for name, (title, pro, anti) in described.items():
        topic = describe(enc, title, pro, anti)
        out[name] = {}
        for head, desc in heads:
            sim, _ = head_similarity(topic, desc)
            match = match_topic_head(topic, [(head, desc)], min_similarity=-1.0)
            ok = match is not None and not match.crossed
            out[name][head.meta_str("trained_on").removeprefix("stance/")] = (sim, ok)
    return out


def choose_threshold(pos: Sims, neg: Sims) -> tuple[float, float, float]:
    """(threshold, lowest own-head similarity, highest similarity of an eligible head that must
    not be taken)."""
    own = min(sims[name][0] for name, sims in pos.items())
    wrong = max([s for name, sims in pos.items() for h, (s, ok) in sims.items() if h != name and ok]
                + [s for sims in neg.values() for s, ok in sims.values() if ok])
    return round((own + wrong) / 2, 2), own, wrong


def semeval_f_avg(described: dict[str, tuple[str, str, str]], head_match_min: float | None,
                  swap: bool = False) -> tuple[float, dict[str, str]]:
    """Pooled F_avg on SemEval val with these descriptions; ``swap``: every topic's pro and anti
    the other way round, scored against the gold labels flipped."""
    from sklearn.metrics import f1_score

    from scoring.extractors.learned import LearnedExtractor

    topics = [Topic(id=t, name=n, pro=a if swap else p, anti=p if swap else a)
              for t, (n, p, a) in described.items()]
    flip = {"pro": "anti", "anti": "pro"} if swap else {}
    ext = LearnedExtractor(topics, head_match_min=head_match_min)
    gold, pred = [], []
    for t in described:
        texts, y = tweeteval(f"stance/{t}", "val")
        pred += [lab.stance for lab in ext.extract([PostPair(f"{t}{i}", x, t)
                                                    for i, x in enumerate(texts)])]
        gold += [flip.get(STANCE_NAMES[int(v)], STANCE_NAMES[int(v)]) for v in y]
    f = float(f1_score(gold, pred, labels=["pro", "anti"], average=None, zero_division=0).mean())
    return f, ext.stance_heads


def loto(adapter: bool, per_target_preds: bool = False) -> tuple[float, dict[str, Any]]:
    """Leave-one-target-out F_avg of the generic head (refit per left-out target): pooled, and
    per target its F_avg (or, with ``per_target_preds``, its predicted labels on val)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    from scoring.extractors.encoder import CachedEncoder
    from scoring.extractors.learned import HEADS_DIR, stance_features

    c = 1.0  # the middle of train_heads.py's grid for this head (0.3, 1, 3); not searched here
    enc = CachedEncoder(cache_size=0, runtime="auto",
                        adapter=HEADS_DIR / "encoder_adapter.npz" if adapter else None)
    data = {(t, s): (enc.encode(tweeteval(f"stance/{t}", s)[0]), tweeteval(f"stance/{t}", s)[1])
            for t in STANCE_TARGETS for s in ("train", "val")}
    desc = {t: enc.encode(list(d)) for t, d in STANCE_TARGETS.items()}
    preds, gold = [], []
    per: dict[str, Any] = {}
    for held in STANCE_TARGETS:
        xs, ys = [], []
        for t in STANCE_TARGETS:
            if t == held:
                continue
            e, y = data[t, "train"]
            xs += [stance_features(e, *desc[t]), stance_features(e, desc[t][1], desc[t][0])]
            ys += [y, np.choose(y, [0, 2, 1])]
        clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
        clf.fit(np.vstack(xs), np.concatenate(ys))
        e, y = data[held, "val"]
        p = clf.predict(stance_features(e, *desc[held]))
        per[held] = ([STANCE_NAMES[int(k)] for k in p] if per_target_preds else
                     float(f1_score(y, p, labels=[1, 2], average=None, zero_division=0).mean()))
        preds.append(p)
        gold.append(y)
    pooled = float(f1_score(np.concatenate(gold), np.concatenate(preds), labels=[1, 2],
                            average=None, zero_division=0).mean())
    return pooled, per


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-loto", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from scoring.extractors.learned import LearnedExtractor
    from scoring.extractors.topic_match import HEAD_MATCH_MIN

    ext = LearnedExtractor(load_topics(REPO / "topics.toml"))
    print("Shipped topics:", ext.stance_heads)
    sim_a, sim_b = similarities(ext, PARAPHRASES_A), similarities(ext, PARAPHRASES_B)
    sim_n = similarities(ext, NEGATIVES)
    threshold, own, wrong = choose_threshold(sim_a, sim_n)
    print(f"\nThreshold from set A + negatives: lowest own-head similarity {own:.3f}, highest "
          f"similarity of an eligible head it must not take {wrong:.3f} -> {threshold:.2f} "
          f"(shipped HEAD_MATCH_MIN = {HEAD_MATCH_MIN})")
    print("\n| described as | topic | own head similarity | most similar other head | "
          "head chosen |\n|---|---|---:|---|---|")
    for label, sims in (("set A", sim_a), ("set B", sim_b), ("negative", sim_n)):
        for name, row in sims.items():
            others = {h: v for h, v in row.items() if h != name}
            best = max(others, key=lambda h: others[h][0])
            own_s = f"{row[name][0]:.3f}" if name in row else ""
            ok = {h: v[0] for h, v in row.items() if v[1] and v[0] >= HEAD_MATCH_MIN}
            chosen = max(ok, key=lambda h: ok[h]) if ok else "generic"
            guard = "" if others[best][1] else ", not eligible"
            print(f"| {label} | {name} | {own_s} | {best} ({others[best][0]:.3f}{guard}) | "
                  f"{chosen} |")
    print("\n| descriptions | head selection | SemEval val F_avg (pooled, n=294) |\n|---|---|---:|")
    shipped = {t: (STANCE_TARGET_NAMES[t], *d) for t, d in STANCE_TARGETS.items()}
    for label, described, th, swap in (("shipped (the heads' own)", shipped, None, False),
                                       ("set B (other words)", PARAPHRASES_B, None, False),
                                       ("set B (other words)", PARAPHRASES_B, 2.0, False),
                                       ("shipped, pro and anti swapped", shipped, None, True),
                                       ("set B, pro and anti swapped", PARAPHRASES_B, None, True)):
        f, heads = semeval_f_avg(described, th, swap)
        how = "exact match only (before)" if th == 2.0 else "exact or by similarity"
        if swap:
            label += " (gold flipped)"
        print(f"| {label} | {how} | {f:.3f} |", flush=True)
        log(f"{label}, {how}: {heads}")
    if not args.skip_loto:
        print("\n| encoder | generic head leave-one-target-out F_avg (pooled) | per target |\n"
              "|---|---:|---|")
        for adapter in (True, False):
            pooled, per = loto(adapter)
            name = ("shipped (adapter saw all 5 targets' train tweets)" if adapter
                    else "frozen base (never saw SemEval)")
            print(f"| {name} | {pooled:.3f} | "
                  + ", ".join(f"{k} {v:.2f}" for k, v in per.items()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
