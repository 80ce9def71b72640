"""Hand-labelled sample of real Reddit posts for measuring affect (hostility toward the other side).

Selection: every distinct post text (``body_parent`` and ``body_child``, stripped) of the
DEBAGREEMENT dev rows (``../shared/data/agreement/debagreement_dev.csv``, never copied into the
repository) whose subreddit is ``democrats`` or ``Republican``, skipping texts under 20 characters
and "[deleted]"/"[removed]". Each text is keyed by ``sha1(text.encode()).hexdigest()[:12]``; per
subreddit the keys are sorted and the first 100 taken (200 posts in all, deterministic).

Labelling: by one annotator (an AI assistant reading each post under the three definitions below,
written 2026-12-03), single pass, no adjudication. Labels are in ``hostility_labels.csv``
(``key,subreddit,label``; no post text). Exactly one label per post:

- ``other_side``: hostile toward people holding the opposing political view as a group or as its
  representatives (insulting, demeaning or dehumanising Republicans, conservatives, Trump
  supporters, MAGA, Democrats, liberals, leftists, "the left", "the right", or their politicians
  as stand-ins for that side; wishing harm; contempt for the other side's voters). Tie-break:
  would a reader of the other party feel attacked as a group? If yes, ``other_side``.
- ``other_target``: rude, angry, insulting or profane but not aimed at the opposing side (at the
  conversation partner personally without reference to their side, at their own side, at a third
  party such as the media in general, a company or a criminal; or just swearing/upset).
- ``none``: not hostile.

Usage: ``--print`` lists ``key<TAB>subreddit<TAB>text`` for labelling; ``--threshold`` picks the
`learned` backend's affect bar (``AFFECT_YES_AT``) on one subreddit's posts and scores it on the
other's, both ways; without flags it checks that every selected key is labelled and prints counts
per subreddit and label.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.heads_data import debagreement_rows  # noqa: E402

LABELS = Path(__file__).resolve().parent / "hostility_labels.csv"
SUBREDDITS = ("democrats", "Republican")
PER_SUBREDDIT = 100
MIN_CHARS = 20
LABEL_NAMES = ("other_side", "other_target", "none")


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def select(subreddits: tuple[str, ...] = SUBREDDITS,
           per_subreddit: int = PER_SUBREDDIT) -> list[tuple[str, str, str]]:
    """(key, subreddit, text) of the selected posts, sorted by subreddit order then key."""
    texts: dict[str, dict[str, str]] = {sub: {} for sub in subreddits}
    for row in debagreement_rows():
        sub = row["subreddit"]
        if sub not in texts:
            continue
        for col in ("body_parent", "body_child"):
            text = (row[col] or "").strip()
            if len(text) < MIN_CHARS or text in ("[deleted]", "[removed]"):
                continue
            texts[sub].setdefault(text_key(text), text)
    out: list[tuple[str, str, str]] = []
    for sub in subreddits:
        for key in sorted(texts[sub])[:per_subreddit]:
            out.append((key, sub, texts[sub][key]))
    return out


def read_labels(path: Path = LABELS, names: tuple[str, ...] = LABEL_NAMES) -> dict[str, str]:
    with path.open(encoding="utf-8", newline="") as fh:
        labels = {row["key"]: row["label"] for row in csv.DictReader(fh)}
    bad = {k: v for k, v in labels.items() if v not in names}
    if bad:
        raise ValueError(f"{path}: unknown labels {bad}")
    return labels


def load_sample() -> list[tuple[str, str, str, str]]:
    """(key, subreddit, text, label) for every labelled selected post."""
    labels = read_labels()
    return [(k, sub, text, labels[k]) for k, sub, text in select() if k in labels]


def f1_other_side(gold: list[str], hostile: list[bool]) -> tuple[float, float, float, int]:
    """(precision, recall, F1, posts called hostile) for "hostile to the other side"."""
    tp = sum(1 for g, h in zip(gold, hostile, strict=True) if h and g == "other_side")
    called, positive = sum(hostile), sum(1 for g in gold if g == "other_side")
    p, r = tp / max(called, 1), tp / max(positive, 1)
    return p, r, 2 * p * r / max(p + r, 1e-9), called


def threshold_study() -> int:
    """The affect bar picked on one subreddit (grid 0.20..0.90), scored on the other."""
    from benchmarks.stance_checks import COMMUNITY_TOPICS
    from scoring.extractors.decisions import AFFECT_YES_AT
    from scoring.extractors.learned import LearnedExtractor

    sample = load_sample()
    ext = LearnedExtractor(COMMUNITY_TOPICS)
    head = ext.heads["affect"]
    p_yes = head.predict_proba(ext.encoder.encode([t for _, _, t, _ in sample]))[
        :, head.classes.index("yes")]
    grid = [round(0.20 + 0.05 * i, 2) for i in range(15)]
    rows = {sub: [(g, float(p)) for (_, s, _, g), p in zip(sample, p_yes, strict=True)
                  if s == sub] for sub in SUBREDDITS}

    def score(sub: str, bar: float) -> tuple[float, float, float, int]:
        return f1_other_side([g for g, _ in rows[sub]], [p >= bar for _, p in rows[sub]])

    for fit, test in (SUBREDDITS, SUBREDDITS[::-1]):
        best = max(grid, key=lambda bar: (score(fit, bar)[2], -bar))
        print(f"picked on r/{fit}: {best:.2f} (F1 {score(fit, best)[2]:.3f}); on r/{test}: "
              + ", ".join(f"bar {bar:.2f} P {p:.2f} R {r:.2f} F1 {f:.3f} ({n} hostile)"
                          for bar in (0.5, best) for p, r, f, n in [score(test, bar)]))
    for bar in (0.5, AFFECT_YES_AT):
        p, r, f, n = f1_other_side([g for *_, g in sample], [float(x) >= bar for x in p_yes])
        print(f"all 200 at bar {bar:.2f}: {n} hostile, precision {p:.2f}, recall {r:.2f}, "
              f"F1 {f:.3f}")
    return 0


def report(selection: list[tuple[str, str, str]], path: Path, names: tuple[str, ...],
           subreddits: tuple[str, ...], argv: list[str]) -> int:
    """``--print``: the selection to label; else the labels per subreddit, 1 if any is missing."""
    if "--print" in argv:
        for key, sub, text in selection:
            print(f"{key}\t{sub}\t{' '.join(text.split())}")
        return 0
    labels = read_labels(path, names)
    missing = [key for key, _, _ in selection if key not in labels]
    counts = Counter((sub, labels[key]) for key, sub, _ in selection if key in labels)
    print(f"{len(selection)} selected posts, {len(labels)} labels in {path.name}")
    for sub in subreddits:
        n = max(sum(counts[(sub, name)] for name in names), 1)
        print(f"r/{sub:<17} " + "  ".join(f"{name} {counts[(sub, name)]} "
                                         f"({counts[(sub, name)] / n:.0%})" for name in names))
    if missing:
        print(f"{len(missing)} selected posts have no label: {' '.join(missing)}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if "--threshold" in argv:
        return threshold_study()
    return report(select(), LABELS, LABEL_NAMES, SUBREDDITS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
