"""`polarwatch train --task agreement` on the output of `polarwatch label`: the root posts (no
parent, so nothing to agree with) were listed one line each as "skipped: missing parent_text",
20 of them then "... and N more". Now one line per reason says how many rows, why, and the first
few (post id and line); -v lists every row. A reply whose parent text is missing is not a root:
it keeps its own reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scoring.training import ROOT_POST, TrainReport, read_examples
from tests.scoring.test_label_then_train import needs_encoder, posts_csv, run


@pytest.fixture()
def labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """`polarwatch label` output of 120 gun_control posts, 40 of them replies (lexicon)."""
    src = posts_csv(tmp_path / "posts.csv", n=8)
    out = tmp_path / "labeled.jsonl"
    rc, _, err = run(capsys, "label", str(src), "--backend", "lexicon", "--fallback", "",
                     "-o", str(out))
    assert rc == 0, err
    return out


def _roots(path: Path) -> list[tuple[int, str]]:
    """(line, id) of the rows without a parent."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [(n, r["id"]) for n, r in enumerate(records, 1) if not r["parent_id"]]


def _report(path: Path) -> TrainReport:
    ids: dict[int, str] = {}
    rows, skipped = read_examples(path, "agreement", [], ids)
    return TrainReport("agreement", path.with_suffix(".npz"), len(rows), {}, None, 0.1, 0.0,
                       skipped, {}, ids)


def test_root_posts_are_one_line_with_the_count_why_and_the_first_ids(labelled: Path) -> None:
    roots = _roots(labelled)
    assert len(roots) == 80
    first = ", ".join(f"{pid} (line {line})" for line, pid in roots[:3])
    assert _report(labelled).skipped_lines(labelled) == [
        f"{labelled}: 80 rows skipped: {ROOT_POST}; {first} and 77 more (-v lists them all)"]


def test_every_row_is_listed_on_request(labelled: Path) -> None:
    lines = _report(labelled).skipped_lines(labelled, every=True)
    assert lines[:-1] == [f"{labelled}:{line}: skipped: {ROOT_POST} (id {pid})"
                          for line, pid in _roots(labelled)]
    assert lines[-1].startswith(f"{labelled}: 80 rows skipped: {ROOT_POST}; ")
    assert lines[-1].endswith(" and 77 more")


def test_a_reply_without_its_parent_text_keeps_its_own_reason(labelled: Path) -> None:
    with labelled.open("a", encoding="utf-8") as fh:
        for i in range(2):
            fh.write(json.dumps({"id": f"orphan{i}", "parent_id": "gone", "text": "Agreed!",
                                 "agreement": "agree", "parent_text": None}) + "\n")
        fh.write('{"id": "broken", "text": \n')
    lines = _report(labelled).skipped_lines(labelled)
    assert len(lines) == 3 and lines[0].startswith(f"{labelled}: 80 rows skipped: {ROOT_POST}")
    assert lines[1] == f"{labelled}: 2 rows skipped: missing parent_text; orphan0 (line 121), " \
                       f"orphan1 (line 122)"
    assert re.fullmatch(rf"{re.escape(str(labelled))}: 1 row skipped: malformed JSON.*; line 123",
                        lines[2])


def test_a_file_of_root_posts_only_says_what_an_agreement_head_needs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "roots.csv"  # the column is there, empty: a root's parent_text
    src.write_text("id,text,label,parent_id,parent_text\n"
                   + "".join(f"p{i},Post {i},agree,,\n" for i in range(12)))
    rc, _, err = run(capsys, "train", "--task", "agreement", str(src), "-o",
                     str(tmp_path / "h.npz"))
    assert rc == 2
    assert f"{src}: no row has a parent_text (12 root posts): an agreement head learns from " \
           f"replies" in err, err
    src.write_text("id,text,label\nq,I agree,agree\n")  # no such column: said as before
    rc, _, err = run(capsys, "train", "--task", "agreement", str(src), "-o",
                     str(tmp_path / "h.npz"))
    assert rc == 2 and "missing column(s) parent_text" in err, err


@needs_encoder
def test_train_says_it_in_one_line_and_lists_them_with_v(
        labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = tmp_path / "agreement.npz"
    rc, out, err = run(capsys, "train", "--task", "agreement", str(labelled), "-o", str(head))
    assert rc == 0 and out == "", err
    skipped = [line for line in err.splitlines() if "skipped" in line]
    assert skipped[0].startswith(f"polarwatch: {labelled}: 80 rows skipped: {ROOT_POST}; ")
    assert len(skipped) == 2 and "80 rows skipped -> " in skipped[1], err  # and the summary
    rc, _, err = run(capsys, "-v", "train", "--task", "agreement", str(labelled), "-o", str(head))
    assert rc == 0, err
    listed = [line for line in err.splitlines() if f"{labelled}:" in line and ": skipped: " in line]
    assert len(listed) == 80 and listed[0].endswith(f"(id {_roots(labelled)[0][1]})")
