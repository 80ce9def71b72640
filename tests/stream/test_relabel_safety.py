"""`relabel` leaves alone what it must not touch: posts of topics no longer configured, posts
changed while it labelled, and everything when interrupted; it labels outside the write lock."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from polarwatch import cli
from polarwatch.cli import main
from polarwatch.config import load_config
from polarwatch.console import STOP
from polarwatch.warehouse import connect, init_schema
from scoring.extractors.registry import get_extractor
from stream.relabel import relabel

GUN = """
[[topic]]
id = "gun_control"
name = "Gun control"
pro = "Supports stricter gun laws."
anti = "Opposes stricter gun laws."
pro_terms = ["ban assault weapons", "gun control now"]
anti_terms = ["second amendment", "my guns"]
"""
CLIMATE = """
[[topic]]
id = "climate_change"
name = "Climate change"
pro = "Wants climate action."
anti = "Denies the climate crisis."
pro_terms = ["climate action now"]
anti_terms = ["climate hoax"]
"""
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def setup(tmp_path: Path, topics: str) -> Path:
    """A config with `topics`, a warehouse with 3 posts (a root and 2 replies) per topic, all
    stored with stance "pro" by a backend called "before"."""
    (tmp_path / "topics.toml").write_text(topics)
    (tmp_path / "polarwatch.toml").write_text(
        '[warehouse]\npath = "w.duckdb"\nlake_dir = ""\n[extractor]\nbackend = "lexicon"\n'
        'fallback = []\ntopics_file = "topics.toml"\n')
    db = tmp_path / "w.duckdb"
    init_schema(db)
    texts = {"gun_control": ["my guns, second amendment", "ban assault weapons", "my guns!"],
             "climate_change": ["climate hoax", "climate action now", "climate hoax, idiots"]}
    with connect(db) as con:
        for t, (topic, rows) in enumerate(texts.items()):
            for i, text in enumerate(rows):
                con.execute("INSERT INTO posts (id, platform, author_id, text, created_at, "
                            "topic, conversation_id, parent_id, stance, affect, emotion, "
                            "intensity, stance_conf, affect_conf, emotion_conf, backend, "
                            "schema_version) VALUES (?, 'x', 'a', ?, ?, ?, ?, ?, 'pro', 'no', "
                            "'neutral', 0, 0.9, 0.9, 0.9, 'before', 1)",
                            [f"{topic}{i}", text, T0 + timedelta(minutes=10 * t + i), topic,
                             f"c{topic}", None if i == 0 else f"{topic}0"])
    return tmp_path / "polarwatch.toml"


def stored(db: Path, topic: str) -> list[tuple[Any, ...]]:
    with connect(db, read_only=True) as con:
        return con.execute("SELECT id, stance, backend, labelled_by FROM posts WHERE topic = ? "
                           "ORDER BY id", [topic]).fetchall()


def test_posts_of_a_topic_no_longer_configured_are_left_alone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = setup(tmp_path, GUN + CLIMATE)
    (tmp_path / "topics.toml").write_text(GUN)  # climate_change removed after it was stored
    db = tmp_path / "w.duckdb"
    before = stored(db, "climate_change")
    assert main(["--config", str(config), "relabel"]) == 0
    out = capsys.readouterr().out
    assert stored(db, "climate_change") == before  # neither "unclear" nor relabelled
    assert all(row[2] == "lexicon" for row in stored(db, "gun_control"))
    assert "3 posts of topics not in topics.toml were left as they are: climate_change 3" in out
    assert "relabel: 3 posts from" in out


class _Meddling:
    """The lexicon backend, which checks that the warehouse is not locked for writing while it
    labels (a writer can open it) and, on its first call, changes one post's labels the way a
    concurrent relabel would."""

    def __init__(self, db: Path, topics: Any) -> None:
        self.inner = get_extractor("lexicon", topics)
        self.name, self.db, self.calls = "lexicon", db, 0

    def extract(self, batch: Any) -> Any:
        with connect(self.db) as con:  # read-write: fails if relabel held the write lock
            if self.calls == 0:
                con.execute("UPDATE posts SET stance = 'anti', labelled_by = 'someone' "
                            "WHERE id = 'gun_control1'")
        self.calls += 1
        return self.inner.extract(batch)


def test_labels_outside_the_write_and_keeps_a_post_changed_meanwhile(tmp_path: Path) -> None:
    cfg = load_config(setup(tmp_path, GUN + CLIMATE))
    db = tmp_path / "w.duckdb"
    extractor = _Meddling(db, cfg.load_topics())
    run = relabel(cfg, extractor=extractor)  # type: ignore[arg-type]
    assert extractor.calls >= 2  # the posts, then the replies' agreement: both before the write
    assert run.stale == 1
    rows = {r[0]: r for r in stored(db, "gun_control")}
    assert rows["gun_control1"][1:] == ("anti", "before", "someone")  # not overwritten
    assert rows["gun_control0"][2] == "lexicon" and rows["gun_control2"][2] == "lexicon"
    with connect(db, read_only=True) as con:  # both replies scored again, with agreement
        assert con.execute("SELECT count(*) FROM interactions").fetchone()[0] == 4
        assert con.execute("SELECT count(*) FROM posts WHERE parent_id IS NOT NULL AND "
                           "agreement IS NULL").fetchone()[0] == 0
    assert any("left as they are (run relabel again" in line for line in run.lines())


class _Interrupted:
    name = "lexicon"

    def extract(self, batch: Any) -> Any:
        raise KeyboardInterrupt


def test_an_interrupted_relabel_says_nothing_was_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(setup(tmp_path, GUN + CLIMATE))
    db = tmp_path / "w.duckdb"
    before = stored(db, "gun_control")
    with pytest.raises(KeyboardInterrupt):
        relabel(cfg, extractor=_Interrupted())  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert "relabel interrupted while labelling (outside any write): nothing was written" in err
    assert stored(db, "gun_control") == before


def test_a_grandchild_reply_without_an_interaction_keeps_its_stored_agreement(
        tmp_path: Path) -> None:
    """Relabelling a root re-pairs its reply B, and the sink's pairing also picks B's own reply
    C when C has no interaction (an unclear stance): C's agreement was not labelled before the
    write, so the stored one is used (this raised KeyError)."""
    cfg = load_config(setup(tmp_path, GUN))
    db = tmp_path / "w.duckdb"
    with connect(db) as con:  # A = gun_control0 <- B = gun_control1 <- C = gun_control2
        con.execute("UPDATE posts SET created_at = ? WHERE id = 'gun_control1'",
                    [T0 + timedelta(hours=1)])
        con.execute("UPDATE posts SET created_at = ?, parent_id = 'gun_control1', "
                    "stance = 'unclear', agreement = 'agree', agreement_conf = 0.8 "
                    "WHERE id = 'gun_control2'", [T0 + timedelta(hours=2)])
    run = relabel(cfg, until=T0 + timedelta(minutes=30))  # only A is relabelled
    assert run.n_posts == 1 and run.kept_agreement >= 1
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT agreement, agreement_conf, backend FROM posts "
                           "WHERE id = 'gun_control2'").fetchone() == ("agree", 0.8, "before")


class _Terminated:
    """The lexicon backend, which sends this process SIGTERM (as systemd or `kill` would) on
    its first call."""
    name = "lexicon"

    def extract(self, batch: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM was not delivered")


def test_a_terminated_relabel_says_nothing_was_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM ended relabel with exit 143 and no word of what was written (Ctrl-C says it)."""
    cfg = load_config(setup(tmp_path, GUN + CLIMATE))
    db = tmp_path / "w.duckdb"
    before = stored(db, "gun_control")
    previous = signal.signal(signal.SIGTERM, cli._terminate)  # what `polarwatch` installs
    try:
        with pytest.raises(SystemExit) as ended:
            relabel(cfg, extractor=_Terminated())  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGTERM, previous)
        STOP.clear()
    assert ended.value.code == 128 + signal.SIGTERM
    assert ("polarwatch: relabel terminated (SIGTERM) while labelling (outside any write): "
            "nothing was written") in capsys.readouterr().err
    assert stored(db, "gun_control") == before


def test_a_range_before_the_year_1000_is_shown_with_four_digit_years(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The C library's %Y wrote year 1 as "1" ("to 1-01-02 00:00 UTC")."""
    config = setup(tmp_path, GUN)
    assert main(["--config", str(config), "relabel", "--dry-run", "--until", "0001-01-02"]) == 0
    assert "0 posts from the first post to 0001-01-02 00:00 UTC with" in capsys.readouterr().out
    assert main(["--config", str(config), "relabel", "--since", "0999-01-02T03:04:05",
                 "--until", "0999-01-01"]) == 2
    assert ("--since 0999-01-02 03:04:05 is not before --until 0999-01-01 00:00:00 (UTC)"
            in capsys.readouterr().err)
