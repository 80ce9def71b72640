"""Event studies and a flag's drivers name a conversation by its platform and its id there, as
a post is: conv-hot on a second platform (tests.dashboard.conftest.add_platform_twin) is
another conversation (an audit: both read the ``conversations`` view, which grouped by
conversation_id alone, so the two threads were one conversation of mean 40/6)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from forecast.event_conversations import event_studies, read_conversations
from forecast.reports.gather import drivers
from polarwatch.events import Event
from polarwatch.warehouse import connect
from scoring.rules import EXTREME_THRESHOLD
from tests.dashboard.conftest import (
    START,
    TWIN_PLATFORM,
    TWIN_ROOT,
    add_platform_twin,
    seed_warehouse,
)


@pytest.fixture
def twin(tmp_path: Path) -> Path:
    path = seed_warehouse(tmp_path / "pw.duckdb").path
    add_platform_twin(path)
    return path


def test_event_studies_count_each_platforms_conversation(twin: Path) -> None:
    vote = Event("Vote", "gun_control", START + timedelta(hours=30), "scheduled")
    table = event_studies(twin, [vote], extreme_threshold=EXTREME_THRESHOLD).set_index("phase")
    after = table.loc["after"]  # conv-hot (9) and conv-calm (2) here, conv-hot there (2)
    assert (after["n"], after["mean"]) == (3, pytest.approx(13 / 3))
    assert after["extreme_share"] == pytest.approx(1 / 3)
    convs = read_conversations(twin, "gun_control", START, START + timedelta(days=3))
    assert sorted(zip(convs["platform"], convs["conversation_id"], convs["mean_score"],
                      strict=True)) == [
        (TWIN_PLATFORM, "conv-hot", 2.0), ("test", "conv-calm", 2.0),
        ("test", "conv-early", 5.5), ("test", "conv-hot", 9.0)]


def test_drivers_list_each_platforms_conversation(twin: Path) -> None:
    found = drivers(twin, "gun_control", START + timedelta(hours=45),
                    START + timedelta(hours=46))
    assert list(found["conversation_id"]) == ["conv-hot", "conv-calm", "conv-hot"]
    rows = list(zip(found["platform"], found["conversation_id"], found["n_in_window"],
                    found["window_score"], found["mean_score"], found["root_text"],
                    strict=True))
    assert rows == [("test", "conv-hot", 4, 9.0, 9.0, "Ban assault weapons now, no more excuses"),
                    ("test", "conv-calm", 4, 2.0, 2.0,
                     "What do people think about universal background checks?"),
                    (TWIN_PLATFORM, "conv-hot", 2, 2.0, 2.0, TWIN_ROOT)]


def test_readers_of_a_file_whose_view_is_older_read_each_platform(tmp_path: Path) -> None:
    """A reader opens the file read-only and upgrades nothing: on a file whose view was made
    before migration 12 (no platform column; the dashboard or `report` before the stream ran
    again) `report` ended in 'Binder Error: Column "platform" does not exist'. The readers now
    select from the view's query, not the view."""
    from dashboard import queries
    from polarwatch.migrations import VIEWS_BEFORE_12

    path = seed_warehouse(tmp_path / "pw.duckdb").path
    add_platform_twin(path)
    with connect(path) as con:
        con.execute(VIEWS_BEFORE_12["conversations"])
        con.execute("DELETE FROM schema_version WHERE version >= 12")
    found = drivers(path, "gun_control", START + timedelta(hours=45),
                    START + timedelta(hours=46))
    assert list(zip(found["platform"], found["conversation_id"], strict=True)) == [
        ("test", "conv-hot"), ("test", "conv-calm"), (TWIN_PLATFORM, "conv-hot")]
    convs = read_conversations(path, "gun_control", START, START + timedelta(days=3))
    assert len(convs) == 4 and set(convs["platform"]) == {"test", TWIN_PLATFORM}
    listed = queries.conversations_in_range(path, None, START + timedelta(days=1),
                                            START + timedelta(days=3))
    assert list(listed["platform"]) == ["test", "test", TWIN_PLATFORM]
    assert len(queries.conversation_scores(path, "gun_control", START,
                                           START + timedelta(days=3))) == 4
    assert queries.latest_conversation_start(path) is not None
    with connect(path, read_only=True) as con:  # the file itself was not upgraded
        assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(11,)]
