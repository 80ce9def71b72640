"""Pages on warehouses in the states the audit found them in (real DuckDB copies of the seed):
a topic with no scored window, hostile topic ids and flag values, a flat trend, links to topics
that have no stored window, a topic without posts, a conversation dated 2200, dead letters from
ingest, a broken event calendar."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboard.safety import md_text
from polarwatch.warehouse import connect

from .conftest import START, Seed
from .test_app import link_labels, run_app, sidebar_text, texts

PAGES = ["views/overview.py", "views/topic.py", "views/conversation.py", "views/alerts.py",
         "views/label.py", "views/dead_letters.py"]


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.toml"


def _copy(seed: Seed, tmp_path: Path, *statements: tuple[str, list[object]]) -> Path:
    """A copy of the seeded warehouse with `statements` run on it."""
    path = tmp_path / "copy.duckdb"
    shutil.copy(seed.path, path)
    with connect(path) as con:
        for sql, params in statements:
            con.execute(sql, params)
    return path


# climate_change as a new topic whose replies all have an unclear stance: every window's
# polarization and conversation shares NULL, no forecast yet
UNSCORED: list[tuple[str, list[object]]] = [("UPDATE topic_windows SET mean_score = NULL, extreme_share = NULL, "
             "hostility_share = NULL, pro_share = NULL, anti_share = NULL, n_interactions = 0 "
             "WHERE topic = 'climate_change'", []),
            ("DELETE FROM forecasts WHERE topic = 'climate_change'", [])]


def test_a_topic_without_scored_windows_renders_on_every_page(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, *UNSCORED)
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    cards = [m for m in at.metric if m.label.startswith("Polarization")]
    assert [m.value for m in cards] == [
        f"{seeded_warehouse.latest['gun_control']['mean_score']:.2f}", "—"]
    assert ("Extreme share", "—") in [(m.label, m.value) for m in at.metric]
    for page in PAGES:
        at = run_app(monkeypatch, path, events_file, page, topic="climate_change")
        assert not at.exception, page


def test_topic_page_says_why_its_chart_is_blank_and_that_no_forecast_ran(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, *UNSCORED)
    at = run_app(monkeypatch, path, events_file, "views/topic.py", topic="climate_change")
    assert not at.exception
    text = texts(at)
    assert ("No window of Climate change has a value for mean_score yet (48 window(s) of 1 hour "
            "stored): no reply in them has an interaction score") in text
    assert not at.get("vega_lite_chart")  # no empty chart
    assert "no forecast for mean_score yet (run `polarwatch forecast`" in text
    assert "No flags: no forecast has been made for this topic yet" in text
    assert "stayed inside" not in text and "the forecaster models" not in text


HOSTILE_ID = "**x** <b>y</b> [z](http://198.51.100.7/id) ![i](http://198.51.100.7/i.png)"
HOSTILE_FLAG = "spike](http://198.51.100.7/f) ![f](http://198.51.100.7/f.png) [x"


def test_topic_ids_and_flag_values_reach_markdown_escaped(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    """A topic id only the warehouse knows (in the card's link) and a stored flag value (in its
    badge) are text, not a link, an image or HTML."""
    latest = START + timedelta(hours=47)
    path = _copy(seeded_warehouse, tmp_path,
                 ("INSERT INTO topic_windows SELECT * REPLACE (? AS topic) FROM topic_windows "
                  "WHERE topic = 'gun_control'", [HOSTILE_ID]),
                 ("UPDATE forecasts SET flag = ? WHERE topic = 'gun_control' AND ts = ?",
                  [HOSTILE_FLAG, latest]))
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    links = link_labels(at)
    assert f"Open {md_text(HOSTILE_ID)}" in links and "Open Gun control" in links
    text = texts(at)
    assert f":gray-badge[{md_text(HOSTILE_FLAG)} · mean\\_score · 03-02 23:00]" in text
    for markup in ("![i](", "![f](", "<b>", "[z]("):
        assert markup not in text + "\n".join(links), markup


def test_a_flat_trend_shows_a_neutral_change(monkeypatch: pytest.MonkeyPatch,
                                            seeded_warehouse: Seed, events_file: Path,
                                            tmp_path: Path) -> None:
    """Latest window 5.00, the six before it 5.00: arrow →, and a grey "0.00" with no arrow
    (not a red "↑ +0.00")."""
    path = _copy(seeded_warehouse, tmp_path,
                 ("UPDATE topic_windows SET mean_score = 5.0 WHERE topic = 'gun_control' AND "
                  "window_start >= ?", [START + timedelta(hours=40)]))
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    [flat] = [m for m in at.metric if m.label == "Polarization →"]
    assert (flat.value, flat.proto.delta) == ("5.00", "0.00")
    assert "direction: NONE" in str(flat.proto) and "color: GRAY" in str(flat.proto)
    [rise] = [m for m in at.metric if m.label == "Polarization ↑"]  # the other card keeps its
    assert "direction: UP" in str(rise.proto) and "color: GRAY" not in str(rise.proto)


def test_a_link_to_a_topic_without_windows_says_what_it_shows_instead(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="<b>nonexistent</b>")
    assert not at.exception
    assert (f"The link asks for topic {md_text('<b>nonexistent</b>')}, which is neither in "
            f"topics.toml nor in the warehouse. Showing Gun control instead."
            ) in texts(at, "warning")
    at.selectbox(key="topic_pick").set_value("climate_change").run()  # a choice ends it
    assert "The link asks for topic" not in texts(at, "warning")
    # a configured topic whose only windows are dated in 2200: not silently another topic
    path = _copy(seeded_warehouse, tmp_path,
                 ("UPDATE topic_windows SET window_start = window_start + INTERVAL 174 YEAR, "
                  "window_end = window_end + INTERVAL 174 YEAR WHERE topic = 'climate_change'",
                  []))
    for page in ("views/topic.py", "views/label.py"):
        at = run_app(monkeypatch, path, events_file, page, topic="climate_change")
        assert not at.exception
        assert ("The link asks for topic climate\\_change, which is in topics.toml but has no "
                "stored window up to now") in texts(at, "warning"), page


def test_label_page_for_a_topic_without_posts(monkeypatch: pytest.MonkeyPatch,
                                              seeded_warehouse: Seed,
                                              events_file: Path) -> None:
    """climate_change has windows but no stored posts (as after keep_days pruned them)."""
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/label.py",
                 topic="climate_change")
    assert not at.exception
    assert "No stored posts for Climate change: nothing to label." in texts(at, "info")
    assert "Every stored post of this topic has a label." not in texts(at)


def test_a_conversation_dated_2200_does_not_hide_today_s(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    future = datetime(2200, 1, 1, tzinfo=UTC)
    path = _copy(seeded_warehouse, tmp_path,
                 ("INSERT INTO interactions (post_id, parent_id, conversation_id, topic, "
                  "created_at, score, rule, platform) VALUES ('f1', 'f0', 'conv-future', "
                  "'gun_control', ?, 9, 'test|rule', 'test')", [future]))
    at = run_app(monkeypatch, path, events_file, "views/conversation.py")
    assert not at.exception
    listed = at.dataframe[0].value
    assert list(listed["conversation_id"]) == ["conv-hot", "conv-early", "conv-calm"]
    assert set(listed["topic"]) == {"Gun control"}  # names, as on every other page


def test_sidebar_counts_every_dead_letter(monkeypatch: pytest.MonkeyPatch,
                                         seeded_warehouse: Seed, events_file: Path,
                                         tmp_path: Path) -> None:
    rows = [("dead", 0, 0, "record: too big", "ingest"), ("dead", 0, 1, "text: bad", "ingest"),
            ("posts", 0, 9, "malformed JSON: x", "stream")]
    path = _copy(seeded_warehouse, tmp_path, *[
        ("INSERT INTO dead_letters (source_topic, kafka_partition, kafka_offset, reason, raw, "
         "source, seen_at) VALUES (?, ?, ?, ?, '', ?, now())", list(row)) for row in rows])
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    assert "3 dead letters (2 rejected at ingest, 1 by the stream)" in sidebar_text(at)
    path = _copy(seeded_warehouse, tmp_path, (  # a row another writer stored counts too
        "INSERT INTO dead_letters (source_topic, kafka_partition, kafka_offset, reason, raw, "
        "source, seen_at) VALUES ('x', 0, 0, 'r: x', '', 'other_src', now())", []))
    at = run_app(monkeypatch, path, events_file)
    assert "1 dead letter (0 rejected at ingest, 0 by the stream, 1 from other\\_src)" in \
        sidebar_text(at)


def test_a_broken_calendar_is_reported_once(monkeypatch: pytest.MonkeyPatch,
                                           seeded_warehouse: Seed, events_file: Path) -> None:
    events_file.write_text('[[event]]\nname = "Vote"\ntopic = "gun_control"\n'
                           'start = "not a date"\nkind = "scheduled"\n', encoding="utf-8")
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    assert not at.exception
    errors = [e.value for e in at.error if "Event calendar not loaded" in e.value]
    assert len(errors) == 1, errors


def test_a_missing_warehouse_gets_no_snapshot_files(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, events_file: Path) -> None:
    """Readers on snapshots (as `polarwatch dashboard` runs them) create nothing next to a
    warehouse that does not exist; every page says it is missing."""
    from dashboard.snapshot import SNAPSHOT_ENV

    monkeypatch.setenv(SNAPSHOT_ENV, "5")
    where = tmp_path / "wh"
    where.mkdir()
    for page in PAGES:
        at = run_app(monkeypatch, where / "missing.duckdb", events_file, page)
        assert not at.exception, page
        assert "No data yet" in texts(at, "info") + sidebar_text(at), page
    assert list(where.iterdir()) == []
