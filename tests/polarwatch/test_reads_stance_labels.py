"""What a retrain learns from: only usable analyst labels count, and each kind of label left
out is reported with its count (`train --from-warehouse` on a real DuckDB file)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.reads import CONFLICT, GONE, OTHER_SIDES, OTHER_TOPIC, read_stance_label_set
from polarwatch.warehouse import connect, init_schema
from scoring.retrain import usable_labels

TOPICS = """
[[topic]]
id = "climate_change"
name = "Climate change"
pro = "Wants climate action."
anti = "Denies the climate crisis."
[[topic]]
id = "gun_control"
name = "Gun control"
pro = "Supports stricter gun laws."
anti = "Opposes stricter gun laws."
"""
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def warehouse(tmp_path: Path) -> Path:
    """40 climate posts and 40 gun-control posts, no labels yet."""
    (tmp_path / "topics.toml").write_text(TOPICS)
    (tmp_path / "polarwatch.toml").write_text(
        '[warehouse]\npath = "w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "learned"\n'
        'fallback = []\ntopics_file = "topics.toml"\nlearned_topic_heads_dir = "heads"\n')
    db = tmp_path / "w.duckdb"
    init_schema(db)
    with connect(db) as con:
        for i in range(80):
            topic = "climate_change" if i < 40 else "gun_control"
            con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                        "conversation_id, parent_id, stance, affect, emotion, intensity, "
                        "stance_conf, affect_conf, emotion_conf, backend, schema_version) VALUES "
                        "(?, 'x', 'a', ?, ?, ?, 'c', NULL, 'unclear', 'no', 'neutral', 0, 0, 0, "
                        "0, 'lexicon', 1)", [f"p{i}", f"text {i}", T0 + timedelta(minutes=i),
                                             topic])
    return db


def label(db: Path, rows: list[tuple[str, str, str, str]]) -> None:
    """(post id, topic, value, labeller) stance labels, all at the same instant."""
    with connect(db) as con:
        for post, topic, value, who in rows:
            con.execute("INSERT INTO labels (platform, post_id, topic, task, value, sample, "
                        "labeller, labelled_at) VALUES ('x', ?, ?, 'stance', ?, 'random', ?, ?)",
                        [post, topic, value, who, T0])


def test_each_kind_of_left_out_label_is_counted(tmp_path: Path) -> None:
    db = warehouse(tmp_path)
    label(db, [(f"p{i}", "climate_change", "pro" if i % 2 else "anti", "ana") for i in range(6)]
          + [(f"gone{i}", "climate_change", "pro", "ana") for i in range(4)]  # not stored
          + [(f"p{i}", "climate_change", "pro", "ana") for i in range(40, 43)]  # gun posts
          + [(f"p{i}", "climate_change", v, who) for i in range(10, 12)  # same instant
             for v, who in (("pro", "alice"), ("anti", "bob"))]
          + [("p20", "climate_change", "pro", "alice"), ("p20", "climate_change", "pro", "bob")])
    texts, labels, left, _ = read_stance_label_set(db, "climate_change")
    assert left == {GONE: 4, OTHER_TOPIC: 3, CONFLICT: 2}
    assert len(texts) == len(labels) == 7  # 6 + p20 (two analysts, one value)


def test_invalid_values_do_not_count_towards_the_minimum() -> None:
    with pytest.raises(Exception, match=r"has 24 analyst stance label\(s\).*not counted: 10 "
                                        r"label\(s\) that are not a stance \{'maybe': 10\}"):
        usable_labels(["pro"] * 12 + ["anti"] * 12 + ["maybe"] * 10, "climate_change")
    classes, left_out, invalid = usable_labels(["pro"] * 20 + ["anti"] * 12 + ["maybe"] * 3,
                                               "climate_change")
    assert classes == ["pro", "anti"] and left_out == {} and invalid == {"maybe": 3}


def test_train_from_warehouse_reports_labels_of_posts_no_longer_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = warehouse(tmp_path)
    label(db, [(f"gone{i}", "climate_change", "pro" if i % 2 else "anti", "ana")
               for i in range(40)])
    rc = main(["--config", str(tmp_path / "polarwatch.toml"), "train", "--from-warehouse",
               "--topic", "climate_change"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "40 stance label(s) of topic 'climate_change' left out: 40 for posts no longer " \
           "stored" in err
    assert "has 0 analyst stance label(s)" in err


def test_each_label_is_read_under_the_sides_it_was_given_under(tmp_path: Path) -> None:
    """A label stores the topic's pro/anti it was given under: read under today's sides, one
    given under them swapped is flipped, one under other descriptions is left out and counted,
    one from before the sides were stored (NULL) is kept as it is."""
    db = warehouse(tmp_path)
    now, swapped = ("Wants climate action.", "Denies the climate crisis."), \
        ("Denies the climate crisis.", "Wants climate action.")
    given = [("p0", "pro", now), ("p1", "anti", now), ("p2", "unclear", now),
             ("p3", "pro", swapped), ("p4", "anti", swapped), ("p5", "unclear", swapped),
             ("p6", "pro", ("Something else.", "Denies the climate crisis.")),
             ("p7", "anti", None)]
    with connect(db) as con:
        for post, value, sides in given:
            pro, anti = sides or (None, None)
            con.execute("INSERT INTO labels (platform, post_id, topic, task, value, sample, "
                        "labeller, labelled_at, pro_description, anti_description) VALUES "
                        "('x', ?, 'climate_change', 'stance', ?, 'random', 'ana', ?, ?, ?)",
                        [post, value, T0, pro, anti])
    texts, labels, left, flipped = read_stance_label_set(db, "climate_change", now)
    assert dict(zip(texts, labels, strict=True)) == {
        "text 0": "pro", "text 1": "anti", "text 2": "unclear", "text 3": "anti",
        "text 4": "pro", "text 5": "unclear", "text 7": "anti"}
    assert left == {OTHER_SIDES: 1} and flipped == 2
    # under the swapped sides, the same labels read the other way round
    _, labels, left, flipped = read_stance_label_set(db, "climate_change", swapped)
    assert labels == ["anti", "pro", "unclear", "pro", "anti", "unclear", "anti"]
    assert left == {OTHER_SIDES: 1} and flipped == 2
    # without sides (nothing to compare with) every label is read as given
    _, labels, left, flipped = read_stance_label_set(db, "climate_change")
    assert labels == ["pro", "anti", "unclear", "pro", "anti", "unclear", "pro", "anti"]
    assert left == {} and flipped == 0


def test_a_file_from_before_the_sides_were_stored_reads_its_labels_as_given(
        tmp_path: Path) -> None:
    """A file not yet upgraded to migration 11 (no pro_description / anti_description) is read
    as it is, read-only: every label kept as given."""
    db = warehouse(tmp_path)
    label(db, [("p0", "climate_change", "pro", "ana"), ("p1", "climate_change", "anti", "ana")])
    with connect(db) as con:
        con.execute("ALTER TABLE labels DROP COLUMN pro_description")
        con.execute("ALTER TABLE labels DROP COLUMN anti_description")
        con.execute("DELETE FROM schema_version WHERE version >= 11")
    texts, labels, left, flipped = read_stance_label_set(
        db, "climate_change", ("Denies the climate crisis.", "Wants climate action."))
    assert labels == ["pro", "anti"] and left == {} and flipped == 0
