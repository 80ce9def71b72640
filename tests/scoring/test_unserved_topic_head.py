"""An analyst retrains a topic (`train --from-warehouse`, writing `stance_<id>.npz`), then rewords
its pro/anti in topics.toml with the same meaning; the matcher no longer serves the head (its
sides match the head's nearly as well either way round) and `label` changed stance labels
without a word. Now the backend says, once at load, which topic, why and the command that
refits the head. Real warehouse, real `train` and `label` commands, real MiniLM encoder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from scoring.extractors.topic_match import HEAD_MATCH_MIN, Matching, match_topic_heads
from tests.scoring.test_topic_match import _described
from tests.stream.test_retrain_relabel import HOME, OFFICE, TOPIC, needs_encoder, run, setup

# Same meaning, words of both sides in each: 0.664 as named, 0.652 crossed (base encoder),
# above HEAD_MATCH_MIN but within SIDES_MARGIN of each other.
SIDES_BLURRED = ('pro = "Happy to work from home rather than the office."\n'
                 'anti = "Wants work done at the office, not from home."\n')
# Too short to resemble the head's descriptions: similarity 0.557, below HEAD_MATCH_MIN.
UNLIKE = 'pro = "Likes remote work."\nanti = "Dislikes remote work."\n'
FIX = "`polarwatch train --from-warehouse --topic remote_work` refits the head"


def _reword(folder: Path, sides: str) -> None:
    old = 'pro = "Supports working from home."\nanti = "Wants people back in the office."\n'
    assert old in TOPIC
    (folder / "topics.toml").write_text(TOPIC.replace(old, sides))


def _label(capsys: pytest.CaptureFixture[str], cfg: list[str], folder: Path
           ) -> tuple[list[str], list[dict[str, Any]]]:
    """`polarwatch label` of 8 remote-work posts: its warning lines, and the labels."""
    src, out = folder / "posts.csv", folder / "labels.jsonl"
    with src.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "topic"])
        w.writerows([f"q{i}", text.format("today"), "remote_work"]
                    for i, text in enumerate(HOME + OFFICE))
    rc, stdout, err = run(capsys, *cfg, "label", str(src), "-o", str(out))
    assert rc == 0 and stdout == "", err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return [line for line in err.splitlines() if "stance_remote_work" in line
            and "not used" in line], rows


class _Head:  # match_topic_heads only reads a head's name (in the reason it gives)
    def __init__(self, name: str) -> None:
        self.name = name


@needs_encoder
def test_a_reworded_topic_whose_own_head_no_longer_serves_it_is_warned_about_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = setup(tmp_path)
    head = tmp_path / "heads" / "stance_remote_work.npz"
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 0 and head.is_file(), err

    warned, rows = _label(capsys, cfg, tmp_path)  # the descriptions it was trained on
    assert warned == [] and len(rows) == 8
    assert all("stance head stance_remote_work@" in r["explanation"] for r in rows), rows[0]

    _reword(tmp_path, SIDES_BLURRED)
    warned, rows = _label(capsys, cfg, tmp_path)
    assert len(warned) == 1, warned
    assert "topic 'remote_work': its own stance head" in warned[0]
    assert ("the topic's sides cannot be told apart from the descriptions it was trained on "
            "(similarity 0.664 as named, 0.652 crossed: less than 0.03 apart)") in warned[0]
    assert "stance (generic, description-conditioned) serves it until" in warned[0]
    assert FIX in warned[0]
    assert all("stance_remote_work" not in r["explanation"] for r in rows)  # the generic head

    _reword(tmp_path, UNLIKE)
    warned, _ = _label(capsys, cfg, tmp_path)
    assert len(warned) == 1 and FIX in warned[0], warned
    assert (f"its descriptions are too unlike the topic's (similarity 0.557, below the minimum "
            f"{HEAD_MATCH_MIN:.2f})") in warned[0]

    # the fix the warning gives: the head is fit on the current descriptions and serves again
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 0 and f"wrote {head}" in err, err
    warned, rows = _label(capsys, cfg, tmp_path)
    assert warned == [] and all("stance head stance_remote_work@" in r["explanation"]
                                for r in rows)


def test_the_matcher_says_why_each_head_it_passed_over_does_not_serve() -> None:
    """The reasons the backend's warning quotes, one per rule of `match_topic_heads`."""
    made: list[Any] = [_Head(f"stance_{n}") for n in ("near", "far", "cl", "bl")]
    near, far, clinton, blurred = made
    topic = _described([1, 0, 0], [0, 1, 0])
    named = _described([1, 0, 0], [0, 1, 0])
    named = type(named)(None, named.pro, named.anti, "", frozenset({"clinton"}))
    heads: list[tuple[Any, Any]] = [
        (near, _described([1, 0, 0], [0, 1, 0])),  # the same sides: similarity 1
        (far, _described([1, 0.3, 0], [0, 1, 0.3])),  # the same sides, less alike
        (clinton, named),  # names a person the topic does not
        (blurred, _described([1, 1, 0.2], [1, 1, -0.2])),  # each side like both of the topic's
    ]
    matching = match_topic_heads(topic, heads, 0.5)
    assert isinstance(matching, Matching) and matching.best is not None
    assert matching.best.head is near and matching.why_not(near) is None
    assert matching.why_not(far) == ("stance_near matches the topic better (similarity 1.000, "
                                     "this head 0.958)")
    assert matching.why_not(clinton) == ("the topic's name and descriptions name none of "
                                         "clinton, which the head's descriptions name")
    assert "sides cannot be told apart" in (matching.why_not(blurred) or "")
    low = match_topic_heads(topic, heads[3:], 0.99)
    assert low.best is None and "below the minimum 0.99" in (low.why_not(blurred) or "")
