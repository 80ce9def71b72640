"""`polarwatch train` wrote a head whose holdout macro-F1 was no better than guessing (the same
text labelled three ways: 0.167 among 3 classes) or that lacked a class (no `anti` row) with no
word on stderr. Now a head that guesses is written with a warning giving the figure and the
fix, a missing class a task cannot do without (stance pro/anti, affect yes/no, agreement
agree/disagree) is refused with exit 2 before training, and another missing class is a
warning."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from scoring.training_report import TrainReport, conflicting_inputs, missing_required
from tests.scoring.test_label_then_train import needs_encoder, run


def _csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label", "topic"])
        w.writerows([(text, label, "gun_control") for text, label in rows])
    return path


@needs_encoder
def test_the_same_text_labelled_three_ways_is_written_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _csv(tmp_path / "same.csv",
                [("Gun control again", ("pro", "anti", "unclear")[i % 3]) for i in range(60)])
    head = tmp_path / "same.npz"
    rc, out, err = run(capsys, "train", "--task", "stance", str(data), "-o", str(head))
    assert rc == 0 and head.is_file() and out == "", err
    warning = [line for line in err.splitlines() if line.startswith("polarwatch: warning:")]
    assert len(warning) == 1, err
    # one text is no holdout: its copies on both sides scored 0.167 before (scoring/training.py)
    assert "holdout macro-F1 n/a (no holdout: 1 distinct texts, fewer than 50; 59 rows " \
           "repeat another row's text)" in err
    assert "1 of the 60 rows' texts carry two labels or more" in warning[0]
    assert "give each text one label" in warning[0]


@needs_encoder
def test_a_head_without_anti_is_refused_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _csv(tmp_path / "noanti.csv",
                [(f"We need background checks now {i}", "pro") if i % 2 else
                 (f"Went to the range {i}", "unclear") for i in range(60)])
    head = tmp_path / "noanti.npz"
    rc, _, err = run(capsys, "train", "--task", "stance", str(data), "-o", str(head))
    assert rc == 2 and not head.exists(), err
    assert err.splitlines() == [
        f"polarwatch: error: {data}: no usable row is labelled 'anti' ({{'unclear': 30, "
        f"'pro': 30}}): a stance head without it could never answer it; add rows labelled "
        f"anti (at least 3 each)"]


@needs_encoder
def test_a_good_head_without_unclear_is_written_with_one_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _csv(tmp_path / "polar.csv",
                [(f"We need background checks now {i}", "pro") if i % 2 else
                 (f"The second amendment is not up for debate {i}", "anti") for i in range(60)])
    rc, _, err = run(capsys, "train", "--task", "stance", str(data),
                     "-o", str(tmp_path / "polar.npz"))
    assert rc == 0 and "holdout macro-F1 1.000" in err, err
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"polarwatch: warning: {tmp_path / 'polar.npz'}: the stance head never answers "
        f"'unclear': no row is labelled so; add rows labelled 'unclear' (at least a few each) "
        f"if posts can be"]


def _report(score: float | None, counts: dict[str, int], task: str = "stance",
            conflicting: int = 0) -> TrainReport:
    from scoring.training import TASKS

    return TrainReport(task, Path("h.npz"), sum(counts.values()), counts, score, 0.1, 0.0,
                       conflicting=conflicting, all_classes=TASKS[task])


def test_the_warnings_follow_chance_and_the_classes_a_task_may_lack() -> None:
    three = {"pro": 20, "anti": 20, "unclear": 20}
    assert len(_report(0.0, three).warnings()) == 1
    assert len(_report(1 / 3, three).warnings()) == 1  # exactly chance: still a guess
    assert _report(0.34, three).warnings() == []
    assert _report(None, three).warnings() == []  # no holdout below 50 rows: no figure
    assert "2 of the 60 rows' texts carry two labels" in _report(None, three,
                                                                  conflicting=2).warnings()[0]
    # the shipped affect and emotion heads lack unclear / neutral: no warning for that
    assert _report(0.9, {"yes": 30, "no": 30}, "affect").warnings() == []
    assert _report(0.9, {"anger": 9, "joy": 9, "optimism": 9, "sadness": 9},
                   "emotion").warnings() == []
    assert "never answers 'sadness'" in _report(
        0.9, {"anger": 9, "joy": 9, "optimism": 9}, "emotion").warnings()[0]


def test_required_classes_and_conflicting_inputs() -> None:
    assert missing_required("stance", {"pro": 3, "unclear": 4}) == ["anti"]
    assert missing_required("affect", {"yes": 3, "unclear": 4}) == ["no"]
    assert missing_required("agreement", {"agree": 3, "disagree": 3}) == []
    assert missing_required("emotion", {"joy": 3, "anger": 3}) == []
    rows = [{"text": "a", "topic": "t", "label": "pro"}, {"text": "a", "topic": "t", "label": "anti"},
            {"text": "a", "topic": "u", "label": "pro"}, {"text": "b", "topic": "t", "label": "pro"},
            {"text": "b", "topic": "t", "label": "pro"}]
    assert conflicting_inputs(rows, ("text", "topic")) == 1
    assert conflicting_inputs(rows, ("text",)) == 1
