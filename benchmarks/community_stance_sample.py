"""Hand-labelled stance of real Reddit posts: what the community check should find.

The issue's community check (``stance_checks.py``) compares label *shares* between subreddits;
it cannot say whether a post's label is right, nor whether its targets are reachable. This
sample gives each of 300 real posts a stance by hand:

- Selection: ``hostility_sample.select`` over r/democrats, r/Republican and r/BlackLivesMatter
  (DEBAGREEMENT dev, distinct texts of at least 20 characters, the first 100 per subreddit by
  SHA-1 key; the 200 r/democrats and r/Republican posts are the hostility sample's).
- Topics, as the issue writes them (``stance_checks.COMMUNITY``): r/democrats and r/Republican
  on "US party politics" (pro = "Sides with Democrats.", anti = "Sides with Republicans."),
  r/BlackLivesMatter on "Black Lives Matter" (pro = "Supports Black Lives Matter.", anti =
  "Opposes Black Lives Matter.").
- Labels (``community_stance_labels.csv``: ``key,subreddit,label``; no post text), one per post:
  ``pro`` / ``anti`` when the post, read alone, takes that side: supports it, or attacks the
  other side (a post mocking Trump sides with Democrats; a post defending protesters or
  attacking police brutality supports Black Lives Matter); ``unclear`` when it takes neither
  (questions, off-topic remarks, intra-party disputes, sarcasm whose target is unknown).
  Labelled 2026-12-05 by one annotator (an AI assistant reading each post under these
  definitions), single pass, no adjudication, no parent posts read.

Usage: without flags, checks that every selected post is labelled and prints the gold shares per
subreddit; ``--print`` lists ``key<TAB>subreddit<TAB>text`` for labelling; ``--teach`` trains
a topic head on the labels as an analyst would (:func:`teach`). The backend is scored on the
sample by ``stance_checks.py --only sample``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.hostility_sample import read_labels, report, select  # noqa: E402

LABELS = Path(__file__).resolve().parent / "community_stance_labels.csv"
SUBREDDITS = ("democrats", "Republican", "BlackLivesMatter")
PER_SUBREDDIT = 100
STANCES = ("pro", "anti", "unclear")


def load_sample() -> list[tuple[str, str, str, str]]:
    """(key, subreddit, text, gold stance) for every labelled selected post."""
    labels = read_labels(LABELS, STANCES)
    return [(k, sub, text, labels[k]) for k, sub, text in select(SUBREDDITS, PER_SUBREDDIT)
            if k in labels]


def shares(labels: list[str]) -> dict[str, float]:
    c = Counter(labels)
    return {k: c[k] / max(len(labels), 1) for k in STANCES}


def teach() -> int:
    """What an analyst's labels buy: ``retrain_stance`` (the product's "teach a topic") on the
    whole sample per topic, 5-fold cross-validated against the head serving the topic now."""
    from benchmarks.stance_checks import COMMUNITY, COMMUNITY_TOPICS
    from scoring.extractors.learned import LearnedExtractor
    from scoring.retrain import retrain_stance

    sample, ext = load_sample(), LearnedExtractor(COMMUNITY_TOPICS)
    for subs in (SUBREDDITS[:2], SUBREDDITS[2:]):
        rows = [(text, gold) for _, sub, text, gold in sample if sub in subs]
        r = retrain_stance([t for t, _ in rows], [g for _, g in rows], COMMUNITY[subs[0]], ext)
        print(f"{COMMUNITY[subs[0]].name} ({r.n_labels} labels {r.counts}): taught head "
              f"F_avg {r.new_f_avg:.3f} ({r.candidate}, cross-validated), serving head "
              f"{r.current_f_avg:.3f}")
    return 0


def main(argv: list[str]) -> int:
    if "--teach" in argv:
        return teach()
    return report(select(SUBREDDITS, PER_SUBREDDIT), LABELS, STANCES, SUBREDDITS, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
