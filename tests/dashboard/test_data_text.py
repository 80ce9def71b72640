"""Pages on data the audit found them wrong on (real DuckDB copies of the seed, every page
through Streamlit's AppTest): a conversation whose replies form a cycle, bidi controls and
right-to-left text in ids, authors and names, windows that all lie in the future, and charts
of one window or of a constant series."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from dashboard.charts import event_study_charts, series_chart
from dashboard.queries import NO_OPENING_POST
from dashboard.safety import for_table, md_text
from polarwatch.display import FSI, PDI, isolated, name_text

from .conftest import START, Seed
from .test_app import run_app, texts
from .test_page_states import _copy

RLO = "\u202e"
RTL_ID = f"h-rtl-id-{RLO}"  # the audit's id: "h-rtl-id-CTU 00:21 10-50-1202 · htua" on the page
ARABIC = "مستخدم"  # "user"
CYCLE = [("a", "c"), ("b", "a"), ("c", "b")]  # a replies to c, b to a, c to b: no opening post


def cycle_statements() -> list[tuple[str, list[object]]]:
    """Conversation cyc3 of gun_control: three scored replies forming a cycle."""
    out: list[tuple[str, list[object]]] = []
    for n, (post, parent) in enumerate(CYCLE):
        at = START + timedelta(hours=44, minutes=n)
        out.append(("INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                    "conversation_id, parent_id, schema_version, stance, affect, agreement, "
                    "emotion, intensity, stance_conf, affect_conf, emotion_conf, backend) VALUES "
                    "(?, 'test', 'u', ?, ?, 'gun_control', 'cyc3', ?, 1, 'pro', 'no', "
                    "'disagree', 'neutral', 0.5, 1, 1, 1, 'test')",
                    [post, f"cycle post {post}", at, parent]))
        out.append(("INSERT INTO interactions (post_id, parent_id, conversation_id, topic, "
                    "created_at, score, rule, platform) VALUES (?, ?, 'cyc3', 'gun_control', ?, "
                    "9.5, 'test|rule', 'test')", [post, parent, at]))
    return out


def bidi_statements() -> list[tuple[str, list[object]]]:
    """conv-hot's h3 renamed to the audit's id, h2 written by an Arabic-named author, h1's
    text Arabic with a stray PDI and an override after it."""
    return [("UPDATE posts SET id = ? WHERE id = 'h3'", [RTL_ID]),
            ("UPDATE interactions SET post_id = ? WHERE post_id = 'h3'", [RTL_ID]),
            ("UPDATE posts SET author_id = ? WHERE id = 'h2'", [ARABIC]),
            ("UPDATE posts SET text = ? WHERE id = 'h1'", [f"{ARABIC} \u2069{RLO} tail"])]


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.toml"


def _thread_html(at: Any) -> str:
    return "\n".join(h.proto.body for h in at.get("html"))


def test_a_reply_cycle_shows_on_the_conversations_page(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, *cycle_statements())
    at = run_app(monkeypatch, path, events_file, "views/conversation.py", conversation="cyc3")
    assert not at.exception
    assert "has no stored posts" not in texts(at)
    thread = _thread_html(at)
    assert thread.index("cycle post a") < thread.index("cycle post b") < thread.index(
        "cycle post c")
    assert "in a reply cycle (replies to c)" in thread
    assert ("This conversation has no opening post: its replies form a cycle (3 posts, each "
            "replying to another of them") in texts(at, "info")
    assert ("Posts", "3") in [(m.label, m.value) for m in at.metric]
    listed = at.dataframe[0].value.set_index("conversation_id")
    assert listed.loc["cyc3", "root_text"] == NO_OPENING_POST["cycle"]


def test_the_topic_page_says_why_a_cycle_has_no_opening_post(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, *cycle_statements(),
                 ("DELETE FROM posts WHERE id = 'e0'", []),  # conv-early's root pruned
                 ("DELETE FROM posts WHERE conversation_id = 'conv-calm'", []))
    at = run_app(monkeypatch, path, events_file, "views/topic.py", topic="gun_control")
    assert not at.exception
    convs = at.dataframe[1].value.set_index("conversation_id")["root_text"]
    assert convs.to_dict() == {"cyc3": NO_OPENING_POST["cycle"],
                               "conv-hot": "Ban assault weapons now, no more excuses",
                               "conv-early": NO_OPENING_POST["not stored"],
                               "conv-calm": NO_OPENING_POST["none stored"]}
    assert convs.notna().all() and "None" not in convs.to_list()


def test_bidi_controls_cannot_reorder_a_thread_s_header(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, *bidi_statements())
    at = run_app(monkeypatch, path, events_file, "views/conversation.py",
                 conversation="conv-hot")
    assert not at.exception
    thread = _thread_html(at)
    assert RLO not in thread.replace(isolated(f"{ARABIC} \u2069{RLO} tail"), "")
    assert "<small>h-rtl-id-\\u202e · u4 · " in thread  # the control shown, not obeyed
    assert f"<small>h2 · {FSI}{ARABIC}{PDI} · 2026-03-02 21:10 UTC</small>" in thread
    # the post's own text keeps its script, isolated: its stray PDI cannot end the isolate
    assert f"{FSI}{ARABIC} \\u2069{RLO} tail{PDI}" in thread
    table = at.dataframe[-1].value  # "As a table": ids shown the same way
    assert RTL_ID not in set(table["id"]) and "h-rtl-id-\\u202e" in set(table["id"])


def test_a_topic_name_with_an_override_is_shown_not_obeyed(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    topics = (Path(__file__).resolve().parents[2] / "topics.toml").read_text(encoding="utf-8")
    custom = tmp_path / "topics.toml"
    custom.write_text(topics.replace('name = "Gun control"', f'name = "Gun {RLO}control"'),
                      encoding="utf-8")
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_TOPICS_FILE", str(custom))
    at = run_app(monkeypatch, seeded_warehouse.path, events_file)
    assert not at.exception
    assert f"#### {md_text(f'Gun {RLO}control')}" in texts(at, "markdown")
    assert "Gun \\\\u202econtrol" in texts(at, "markdown")  # Markdown of "\u202e"
    assert RLO not in texts(at)


def test_names_are_shown_once_and_free_text_is_isolated() -> None:
    assert name_text("Gun control") == "Gun control" and isolated("plain text") == "plain text"
    assert name_text(RTL_ID) == "h-rtl-id-\\u202e"
    assert name_text(ARABIC) == f"{FSI}{ARABIC}{PDI}"
    assert isolated(f"\u2067{ARABIC}") == f"{FSI}\u2067{ARABIC}{PDI}{PDI}"  # left open: closed
    assert isolated(f"{ARABIC}\nline") == f"{FSI}{ARABIC}{PDI}\nline"
    df = for_table(pd.DataFrame({"author_id": [ARABIC], "text": [ARABIC]}))
    assert df.to_dict("records") == [{"author_id": f"{FSI}{ARABIC}{PDI}", "text": ARABIC}]


FUTURE: list[tuple[str, list[object]]] = [("UPDATE topic_windows SET window_start = window_start + INTERVAL 236 YEAR, "
           "window_end = window_end + INTERVAL 236 YEAR", [])]


@pytest.mark.parametrize("page", [None, "views/topic.py", "views/conversation.py"])
def test_windows_that_all_lie_in_the_future_are_not_called_missing(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path, page: str | None) -> None:
    path = _copy(seeded_warehouse, tmp_path, *FUTURE)
    at = run_app(monkeypatch, path, events_file, page)
    assert not at.exception
    assert "No scored windows yet" not in texts(at)
    assert ("No window up to now: all 96 stored windows (2 topics) lie in the future, the "
            "first starting 2262-03-01 00:00 UTC (") in texts(at, "warning")


def test_an_empty_warehouse_still_says_no_window_yet(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        tmp_path: Path) -> None:
    path = _copy(seeded_warehouse, tmp_path, ("DELETE FROM topic_windows", []))
    at = run_app(monkeypatch, path, events_file)
    assert "No scored windows yet — the stream has not aggregated any posts" in texts(at, "info")
    assert "lie in the future" not in texts(at)


def _layers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for layer in spec.get("layer", []):
        out += _layers(layer) if "layer" in layer else [layer]
    return out


def test_one_window_draws_its_point_and_a_constant_series_gets_a_domain() -> None:
    one = pd.DataFrame({"ts": [pd.Timestamp(START)], "value": [2.0]})
    spec = series_chart(one, "posts", "one").to_dict()
    [line] = [lay for lay in _layers(spec) if lay["mark"]["type"] == "line"]
    assert line["mark"]["point"]["filled"] is True
    flat = pd.DataFrame({"ts": pd.date_range(START, periods=24, freq="h"), "value": 2.0})
    spec = series_chart(flat, "posts", "flat").to_dict()
    [line] = [lay for lay in _layers(spec) if lay["mark"]["type"] == "line"]
    assert line["mark"].get("point", False) is False
    assert line["encoding"]["y"]["scale"]["domain"] == [1.8, 2.2]
    study = pd.DataFrame({"day": [-2, 0], "phase": ["before", "during"], "n": [2, 1],
                          "mean": [1.0, 1.0], "sem": [0.0, 0.0], "lo": [1.0, 1.0],
                          "hi": [1.0, 1.0], "extreme_share": [0.0, 0.0]})
    score, extreme = event_study_charts(study, "Vote")
    assert json.dumps(score.to_dict()).count('"domain": [0.9, 1.1]') == 1
    assert extreme.to_dict()["encoding"]["y"]["scale"]["domain"] == [0.0, 1.0]
