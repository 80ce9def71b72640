"""A topic's pro/anti swapped or reworded after analysts labelled it: `train --from-warehouse`
reads each stance label under the sides it was given under (stored with it by the Label page),
on a real DuckDB file through the CLI's `main` and the real `learned` retrain."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.label_store import make_labels, save_labels
from polarwatch.warehouse import connect

from .test_retrain_relabel import TOPIC, needs_encoder, run, setup

PRO, ANTI = "Supports working from home.", "Wants people back in the office."


def label_under_the_sides_shown(tmp_path: Path) -> list[str]:
    """The warehouse of ``setup`` with 40 correct analyst labels (home posts p0-p19 "pro",
    office posts p20-p39 "anti") given through the Label page's code under today's sides."""
    cfg = setup(tmp_path, n_labels=0)
    for i in range(40):
        post = {"platform": "x", "id": f"p{i}", "topic": "remote_work", "stance": "unclear",
                "stance_conf": 0.5}
        save_labels(tmp_path / "w.duckdb", make_labels(
            post, "random", "ana", {"stance": "pro" if i < 20 else "anti"}, sides=(PRO, ANTI)))
    return cfg


def test_the_label_page_code_stores_the_sides_with_each_stance_label(tmp_path: Path) -> None:
    label_under_the_sides_shown(tmp_path)
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT pro_description, anti_description, count(*) FROM labels "
                           "GROUP BY ALL").fetchall() == [(PRO, ANTI, 40)]


@needs_encoder
def test_after_pro_and_anti_are_swapped_the_retrain_flips_the_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Swapping pro and anti in topics.toml flips the topic's meaning: the labels given before
    are read the other way round, so the retrained (or kept) head and `relabel` call the home
    posts "anti" as topics.toml now defines them, not "pro" as the analyst's old clicks read."""
    cfg = label_under_the_sides_shown(tmp_path)
    (tmp_path / "topics.toml").write_text(TOPIC.replace(PRO, "@@").replace(ANTI, PRO)
                                          .replace("@@", ANTI))
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 0, err
    assert "40 stance label(s) of topic 'remote_work' flipped (pro <-> anti)" in err, err
    rc, out, _ = run(capsys, *cfg, "relabel", "--since", "1h", "--topic", "remote_work")
    assert rc == 0, out
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        home, office = con.execute(
            "SELECT list(stance) FILTER (WHERE CAST(substr(id, 2) AS INT) < 20), "
            "list(stance) FILTER (WHERE CAST(substr(id, 2) AS INT) >= 20) FROM posts").fetchone()
    assert home.count("anti") >= 18 and office.count("pro") >= 18, (home, office)


def test_labels_given_under_other_sides_are_left_out_and_counted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Reworded sides: what the old labels meant is unknown, so none is learned from, and the
    command says how many were left out and why."""
    cfg = label_under_the_sides_shown(tmp_path)
    (tmp_path / "topics.toml").write_text(TOPIC.replace(PRO, "Likes remote jobs."))
    rc, _, err = run(capsys, *cfg, "train", "--from-warehouse", "--topic", "remote_work")
    assert rc == 2, err
    assert ("40 stance label(s) of topic 'remote_work' left out: 40 given under other pro/anti "
            "descriptions than the topic's now (label those posts again on the Label page)"
            ) in err, err
    assert "has 0 analyst stance label(s)" in err, err
