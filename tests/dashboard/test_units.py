"""Dashboard building blocks without Streamlit: queries on the seeded warehouse, the pure
analysis helpers and the event calendar module."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from dashboard import analysis, queries
from polarwatch.events import (
    Event,
    EventError,
    dumps,
    events_path,
    load_events,
    make_event,
    remove,
    save_events,
    upsert,
)
from scoring.rules import EXTREME_THRESHOLD

from .conftest import START, WINDOW_COLUMNS, Seed

# --------------------------------------------------------------------------------------------
# queries


def test_a_window_dated_ahead_is_not_the_latest(seeded_warehouse: Seed, tmp_path: Path) -> None:
    """Issue #25: one post dated 20 h ahead made its window the Overview's "latest window"."""
    import shutil
    from datetime import UTC, datetime, timedelta

    from polarwatch.warehouse import connect

    path = tmp_path / "ahead.duckdb"
    shutil.copy(seeded_warehouse.path, path)
    ahead = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=20)
    with connect(path) as con:
        con.execute(f"INSERT INTO topic_windows ({WINDOW_COLUMNS}) VALUES "
                    f"('gun_control', ?, ?, 1, 1, 9.99, 1, 1, 1, 1, 0, now())",
                    [ahead, ahead + timedelta(hours=1)])
    overview = queries.topics_overview(path).set_index("topic")
    latest = seeded_warehouse.latest["gun_control"]
    assert overview.loc["gun_control", "mean_score"] == pytest.approx(latest["mean_score"])


def test_overview_and_series(seeded_warehouse: Seed) -> None:
    path = seeded_warehouse.path
    overview = queries.topics_overview(path).set_index("topic")
    for topic, latest in seeded_warehouse.latest.items():
        assert overview.loc[topic, "mean_score"] == pytest.approx(latest["mean_score"])
        assert overview.loc[topic, "volume"] == latest["volume"]
        assert len(overview.loc[topic, "recent_scores"]) == 24
    # windows 41..46 of gun_control: 4 + 0.5*((i%6)-2.5)/2.5 averages to 4.0
    assert overview.loc["gun_control", "trend_base"] == pytest.approx(4.0)

    hourly = queries.metric_series(path, "gun_control", "volume", "1 hour")
    assert len(hourly) == 48 and hourly["value"].iloc[0] == 20
    daily = queries.metric_series(path, "gun_control", "volume", "1 day")
    assert list(daily["n_windows"]) == [24, 24]
    assert list(daily["value"]) == [sum(20 + i for i in range(24)),
                                    sum(20 + i for i in range(24, 48))]
    six = queries.metric_series(path, "climate_change", "extreme_share", "6 hours")
    assert len(six) == 8 and six["value"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown metric"):
        queries.metric_series(path, "gun_control", "nope")


def test_window_intervals_stay_in_range_and_widen_when_thin() -> None:
    thin = analysis.window_interval(9.0, 3, 10.0)
    thick = analysis.window_interval(9.0, 3000, 10.0)
    assert 0.0 <= thin[0] < 5.0 and 9.5 < thin[1] <= 10.0  # 3 interactions: barely known
    assert thick[1] - thick[0] < 0.25 and thick[0] < 9.0 < thick[1]
    for value, n, upper in ((10.0, 1, 10.0), (0.0, 2, 10.0), (1.0, 1, 1.0), (0.0, 5, 1.0)):
        lo, hi = analysis.window_interval(value, n, upper)
        assert 0.0 <= lo <= value <= hi <= upper
    assert analysis.fmt_uncertain("mean_score", 9.0, 3) == "9.00 (3.6–9.9)"
    assert analysis.fmt_uncertain("volume", 30, 30) == "30"
    frame = pd.DataFrame({"value": [9.0, 9.0], "n": [3, 3000]})
    widths = analysis.with_intervals(frame, "mean_score").eval("hi - lo")
    assert widths[0] > 20 * widths[1]


def test_stored_window_is_the_default_view(tmp_path: Path) -> None:
    """Daily windows (polarwatch.toml [aggregate] window = "1 day"): the topic page offers
    1 day first, then coarser windows, never the hourly view the data does not have."""
    from polarwatch.warehouse import connect, init_schema

    path = tmp_path / "daily.duckdb"
    init_schema(path)
    with connect(path) as con:
        for i in range(10):
            ws = START + timedelta(days=i)
            con.execute("INSERT INTO topic_windows (topic, window_start, window_end, volume, "
                        "n_interactions, mean_score, n_conversations, updated_at) VALUES "
                        "('t', ?, ?, 5, 3, 6.0, 1, ?)", [ws, ws + timedelta(days=1), ws])
    assert queries.native_window(path) == "1 day"
    assert queries.window_choices("1 day") == ["1 day", "1 week"]
    assert queries.window_choices("1 hour")[0] == "1 hour"
    daily = queries.metric_series(path, "t", "mean_score", "1 day")
    assert len(daily) == 10 and (daily["n"] == 3).all()
    weekly = queries.metric_series(path, "t", "mean_score", "1 week")  # weeks start on Monday
    assert weekly["n_windows"].sum() == 10 and len(weekly) <= 3
    with pytest.raises(ValueError, match="unknown window"):
        queries.metric_series(path, "t", "mean_score", "1; DROP TABLE posts")


def test_flags_active_and_resolved(seeded_warehouse: Seed) -> None:
    flags = queries.flags(seeded_warehouse.path).set_index("topic")
    assert flags.loc["gun_control", "flag"] == "spike"
    assert not flags.loc["gun_control", "active"]
    assert flags.loc["climate_change", "flag"] == "dip"
    assert flags.loc["climate_change", "active"]
    assert flags.loc["climate_change", "ts"] == seeded_warehouse.dip_ts


def test_thread_is_depth_first_with_labels(seeded_warehouse: Seed) -> None:
    posts = queries.thread(seeded_warehouse.path, "test", "conv-hot")
    assert list(posts["id"]) == ["h0", "h1", "h2", "h3", "h4"]
    assert list(posts["depth"]) == [0, 1, 2, 2, 1]
    assert pd.isna(posts["score"].iloc[0]) and list(posts["score"].iloc[1:]) == [9, 8, 10, 9]
    assert posts.set_index("id").loc["h3", "explanation"].startswith("reply disagrees")
    assert queries.thread(seeded_warehouse.path, "test", "missing").empty


def test_thread_is_capped_in_posts_and_depth(seeded_warehouse: Seed) -> None:
    """One conversation cannot make the page unbounded: the first posts in thread order, and
    replies no deeper than the cap."""
    path = seeded_warehouse.path
    assert list(queries.thread(path, "test", "conv-hot", max_posts=3)["id"]) == ["h0", "h1", "h2"]
    assert list(queries.thread(path, "test", "conv-hot", max_depth=1)["id"]) == ["h0", "h1", "h4"]
    assert queries.thread_size(path, "test", "conv-hot") == 5


def test_conversations_in_range(seeded_warehouse: Seed) -> None:
    path = seeded_warehouse.path
    day2 = queries.conversations_in_range(path, "gun_control", START + timedelta(days=1),
                                          START + timedelta(days=2))
    assert list(day2["conversation_id"]) == ["conv-hot", "conv-calm"]
    day1 = queries.conversations_in_range(path, None, START, START + timedelta(days=1))
    assert list(day1["conversation_id"]) == ["conv-early"]
    assert queries.latest_conversation_start(path) > START + timedelta(hours=45)


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="make demo"):
        queries.topics_overview(tmp_path / "nope.duckdb")


# --------------------------------------------------------------------------------------------
# analysis


def test_formatting_and_trend() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert analysis.fmt_age(now - timedelta(seconds=7), now) == "7 s ago"
    assert analysis.fmt_age(now - timedelta(minutes=10), now) == "10 min ago"
    assert analysis.fmt_age(now - timedelta(hours=5), now) == "5 h ago"
    assert analysis.fmt_value("volume", 1234.0) == "1,234"
    assert analysis.fmt_value("extreme_share", 0.25) == "25%"
    assert analysis.fmt_value("mean_score", float("nan")) == "—"
    assert analysis.trend_arrow(5.0, 4.0) == "↑"
    assert analysis.trend_arrow(3.0, 4.0) == "↓"
    assert analysis.trend_arrow(4.1, 4.0) == "→"
    assert analysis.trend_arrow(None, 4.0) == ""


def test_flag_class_and_explanation() -> None:
    row = {"flag": "spike", "metric": "mean_score", "y": 8.75, "forecast": 4.0, "lower": 3.0,
           "upper": 5.0, "model": "ets"}
    assert analysis.flag_class(row) == "spike"
    assert analysis.flag_class({**row, "flag_class": "reactive"}) == "reactive"
    text = analysis.explain_flag(row)
    assert text == ("mean_score 8.75 is 3.75 above the prediction band [3.00, 5.00]; "
                    "forecast was 4.00 (ets)")
    assert "below the prediction band" in analysis.explain_flag({**row, "y": 1.0})
    # the forecast stage's stored sentence (the report's too) wins over the band summary
    why = "dip: the value fell below what the model expects; point test: ..."
    assert analysis.explain_flag({**row, "explanation": why}) == why


def test_event_study_days_and_phases() -> None:
    ev = Event("vote", "t", datetime(2026, 3, 10, 12, tzinfo=UTC), "scheduled",
               datetime(2026, 3, 10, 14, tzinfo=UTC))
    at = [datetime(2026, 3, 7, 13, tzinfo=UTC),   # 71 h before → day -3
          datetime(2026, 3, 10, 11, tzinfo=UTC),  # 1 h before → day -1
          datetime(2026, 3, 10, 10, tzinfo=UTC),  # day -1
          datetime(2026, 3, 10, 13, tzinfo=UTC),  # during → day 0
          datetime(2026, 3, 11, 15, tzinfo=UTC),  # 25 h after end → day +2
          datetime(2026, 3, 20, tzinfo=UTC)]      # too late: dropped
    convs = pd.DataFrame({"first_at": at, "mean_score": [2.0, 4.0, 6.0, 9.0, 8.0, 1.0]})
    study = analysis.event_study(convs, ev, extreme_threshold=EXTREME_THRESHOLD)
    assert list(study["day"]) == [-3, -1, 0, 2]
    assert list(study["phase"]) == ["before", "before", "during", "after"]
    assert list(study["n"]) == [1, 2, 1, 1]
    minus1 = study.set_index("day").loc[-1]
    assert minus1["mean"] == 5.0 and minus1["sem"] == pytest.approx(1.0)  # std 1.414/√2
    assert list(study["extreme_share"]) == [0.0, 0.0, 1.0, 1.0]
    assert analysis.phase_summary(study) == {"before": pytest.approx(4.0), "during": 9.0,
                                             "after": 8.0}
    assert analysis.event_study(convs.iloc[:0], ev, extreme_threshold=EXTREME_THRESHOLD).empty


# --------------------------------------------------------------------------------------------
# events.toml


def test_events_round_trip_and_validation(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cal" / "events.toml"
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(path))
    assert events_path() == path
    assert load_events(path) == []
    vote = make_event({"name": 'Senate "vote"', "topic": "gun_control", "kind": "scheduled",
                       "start": "2026-03-04T18:00:00Z", "end": "2026-03-04T22:00:00+00:00"},
                      topics=["gun_control"])
    storm = make_event({"name": "storm", "topic": "climate_change", "kind": "sudden",
                        "start": datetime(2026, 3, 1, 6, tzinfo=UTC)})
    save_events(path, [vote, storm])
    assert load_events(path) == [storm, vote]  # sorted by start
    assert path.read_text().startswith("# polarwatch event calendar")

    moved = make_event({"name": "Senate vote", "topic": "gun_control", "kind": "scheduled",
                        "start": "2026-03-05T18:00:00Z"})
    edited = upsert(load_events(path), moved, replacing=("gun_control", 'Senate "vote"'))
    assert [e.name for e in edited] == ["storm", "Senate vote"]
    assert remove(edited, ("climate_change", "storm")) == [moved]
    with pytest.raises(EventError, match="two events named"):
        upsert([storm], storm, replacing=("x", "y"))

    bad = [({"name": "", "topic": "t", "kind": "sudden", "start": "2026-01-01"}, "'name'"),
           ({"name": "a", "topic": "t", "kind": "maybe", "start": "2026-01-01"}, "'kind'"),
           ({"name": "a", "topic": "t", "kind": "sudden", "start": "soon"}, "expected a date"),
           ({"name": "a", "topic": "t", "kind": "sudden", "start": "2026-01-02",
             "end": "2026-01-01"}, "before start"),
           ({"name": "a", "topic": "x", "kind": "sudden", "start": "2026-01-01"},
            "unknown topic"),
           ({"name": "a", "topic": "t", "kind": "sudden", "start": "2026-01-01",
             "where": "?"}, "unknown key")]
    for raw, message in bad:
        with pytest.raises(EventError, match=message):
            make_event(raw, topics=["t"])
    path.write_text("[[event]]\nname = 'a'\ntopic = 't'\nkind = 'sudden'\n"
                    "start = 2026-01-01T00:00:00\n")
    with pytest.raises(EventError, match="no UTC offset"):
        load_events(path)


def test_shipped_events_file_parses() -> None:
    repo = Path(__file__).resolve().parents[2]
    assert load_events(repo / "events.toml") == []
    assert "[[event]]" in dumps([])  # the format comment documents the table
