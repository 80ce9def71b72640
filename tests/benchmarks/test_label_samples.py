"""The hand-labelled samples in benchmarks/ are well-formed (no shared data needed)."""

from collections import Counter
from pathlib import Path

import pytest

from benchmarks import community_stance_sample as community
from benchmarks import hostility_sample as hostility


@pytest.mark.parametrize(("module", "n"), [(community, 100), (hostility, 100)])
def test_each_subreddit_has_its_sample_and_every_label_is_known(module, n) -> None:
    labels = hostility.read_labels(module.LABELS, getattr(module, "STANCES", hostility.LABEL_NAMES))
    with module.LABELS.open() as fh:
        subs = Counter(line.split(",")[1] for line in fh.read().splitlines()[1:])
    assert subs == dict.fromkeys(module.SUBREDDITS, n)
    assert len(labels) == n * len(module.SUBREDDITS)


def test_an_unknown_label_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "labels.csv"
    bad.write_text("key,subreddit,label\nabc,democrats,pro\nabd,democrats,sideways\n")
    with pytest.raises(ValueError, match="sideways"):
        hostility.read_labels(bad, community.STANCES)


def test_gold_shares_count_every_stance() -> None:
    assert community.shares(["pro", "pro", "anti", "unclear"]) == {
        "pro": 0.5, "anti": 0.25, "unclear": 0.25}
