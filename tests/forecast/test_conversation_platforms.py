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
