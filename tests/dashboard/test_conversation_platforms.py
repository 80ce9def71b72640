"""A conversation is named by its platform and its id there, as a post is: conv-hot on a second
platform (conftest.add_platform_twin) is another conversation in the list, the thread, the
event-study scores and the links between pages (an audit: the ``conversations`` view and the
thread grouped by conversation_id alone, so two platforms' threads were one)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from dashboard import queries

from .conftest import START, TWIN_PLATFORM, TWIN_ROOT, add_platform_twin, seed_warehouse
from .test_app import run_app, texts


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.toml"


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = seed_warehouse(tmp_path_factory.mktemp("twin") / "polarwatch.duckdb").path
    add_platform_twin(path)
    return path


def test_two_platforms_sharing_an_id_are_two_conversations_in_the_list(twin: Path) -> None:
    listed = queries.conversations_in_range(twin, None, START + timedelta(days=1),
                                            START + timedelta(days=3))
    assert list(listed["conversation_id"]) == ["conv-hot", "conv-calm", "conv-hot"]
    rows = list(zip(listed["platform"], listed["conversation_id"], listed["mean_score"],
                    listed["n_interactions"], listed["root_text"], strict=True))
    assert rows == [("test", "conv-hot", 9.0, 4, "Ban assault weapons now, no more excuses"),
                    ("test", "conv-calm", 2.0, 4,
                     "What do people think about universal background checks?"),
                    (TWIN_PLATFORM, "conv-hot", 2.0, 2, TWIN_ROOT)]  # not one of mean 40/6
    scores = queries.conversation_scores(twin, "gun_control", START, START + timedelta(days=3))
    assert sorted(zip(scores["platform"], scores["conversation_id"], strict=True)) == [
        (TWIN_PLATFORM, "conv-hot"), ("test", "conv-calm"), ("test", "conv-early"),
        ("test", "conv-hot")]
    assert queries.conversation_platforms(twin, "conv-hot") == [TWIN_PLATFORM, "test"]
    assert queries.conversation_platforms(twin, "conv-calm") == ["test"]


def test_a_thread_holds_only_its_platforms_posts(twin: Path) -> None:
    mine = queries.thread(twin, TWIN_PLATFORM, "conv-hot")
    assert list(mine["id"]) == ["h0", "h1", "h2"] and list(mine["depth"]) == [0, 1, 1]
    assert list(mine["text"]) == [TWIN_ROOT, "twin h1", "twin h2"]
    assert list(mine["score"].iloc[1:]) == [1, 3]
    theirs = queries.thread(twin, "test", "conv-hot")
    assert list(theirs["id"]) == ["h0", "h1", "h2", "h3", "h4"]
    assert list(theirs["score"].iloc[1:]) == [9, 8, 10, 9]
    assert queries.thread_size(twin, TWIN_PLATFORM, "conv-hot") == 3
    assert queries.thread_size(twin, "test", "conv-hot") == 5


def test_a_link_with_a_platform_opens_that_platforms_thread(
        monkeypatch: pytest.MonkeyPatch, twin: Path, events_file: Path) -> None:
    at = run_app(monkeypatch, twin, events_file, "views/conversation.py",
                 conversation="conv-hot", platform=TWIN_PLATFORM)
    assert not at.exception
    assert at.selectbox(key="conv_pick").value == (TWIN_PLATFORM, "conv-hot")
    assert f"Thread conv\\-hot on {TWIN_PLATFORM}" in texts(at)
    thread = next(h.proto.body for h in at.get("html") if "twin h1" in h.proto.body)
    assert TWIN_ROOT in thread and "Ban assault weapons" not in thread
    assert ("Posts", "3") in [(m.label, m.value) for m in at.metric]
    assert ("Mean interaction score", "2.00") in [(m.label, m.value) for m in at.metric]
    listed = at.dataframe[0].value  # both conversations listed, each with its platform
    assert list(zip(listed["platform"], listed["conversation_id"], strict=True)) == [
        ("test", "conv-hot"), ("test", "conv-early"), ("test", "conv-calm"),
        (TWIN_PLATFORM, "conv-hot")]
    at.selectbox(key="conv_pick").set_value(("test", "conv-hot")).run()
    assert not at.exception
    assert at.query_params["platform"] == "test"
    assert ("Mean interaction score", "9.00") in [(m.label, m.value) for m in at.metric]


def test_an_older_link_without_a_platform_still_opens(
        monkeypatch: pytest.MonkeyPatch, twin: Path, events_file: Path) -> None:
    at = run_app(monkeypatch, twin, events_file, "views/conversation.py",
                 conversation="conv-calm")  # one platform has it: that one
    assert not at.exception
    assert at.selectbox(key="conv_pick").value == ("test", "conv-calm")
    assert at.query_params["platform"] == "test"
    at = run_app(monkeypatch, twin, events_file, "views/conversation.py",
                 conversation="conv-hot")  # two have it: the first, and the choice is said
    assert not at.exception
    assert "2 platforms have a conversation conv\\-hot (other, test)" in texts(at, "info")
    assert at.selectbox(key="conv_pick").value == (TWIN_PLATFORM, "conv-hot")
    assert "conv-hot (test)" in at.selectbox(key="conv_pick").options


def test_the_topic_page_opens_the_picked_platforms_thread(
        monkeypatch: pytest.MonkeyPatch, twin: Path, events_file: Path) -> None:
    at = run_app(monkeypatch, twin, events_file, "views/topic.py", topic="gun_control")
    assert not at.exception
    assert at.selectbox(key="topic_conv_pick").options[:2] == ["conv-hot (test)",
                                                               "conv-early (test)"]
    assert f"conv-hot ({TWIN_PLATFORM})" in at.selectbox(key="topic_conv_pick").options
    at.selectbox(key="topic_conv_pick").set_value((TWIN_PLATFORM, "conv-hot"))
    at.button(key="open_thread").click().run()
    assert not at.exception
    assert at.query_params["conversation"] == "conv-hot"
    assert at.query_params["platform"] == TWIN_PLATFORM
    assert ("Posts", "3") in [(m.label, m.value) for m in at.metric]
