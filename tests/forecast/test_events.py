"""Event calendar on the spine, causal flag classification against it, the event study and
`polarwatch events`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.event_conversations import event_studies, phase_table, read_conversations
from forecast.run import classify_series, run_forecast
from polarwatch.cli import main
from polarwatch.events import Event, EventError, load_events
from polarwatch.warehouse import connect, init_schema
from scoring.rules import EXTREME_THRESHOLD
from tests.dashboard.conftest import START as SEED_START
from tests.dashboard.conftest import seed_warehouse
from tests.forecast.test_detect import hourly
from tests.forecast.test_forecast import START, cfg_for, seed, window_rows

HOUR = pd.Timedelta(hours=1)


def at(i: int) -> pd.Timestamp:
    return pd.Timestamp(START) + i * HOUR


def index(n: int) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(START), periods=n, freq="h")


def flagged(out: dict) -> dict[int, str]:
    return {i: f for i, f in enumerate(out["flag"]) if f != "none"}


def test_dashboard_and_reports_share_one_event_study() -> None:
    import dashboard.analysis
    import forecast.event_conversations
    import scoring.event_phases

    assert dashboard.analysis.event_study is scoring.event_phases.event_study
    assert forecast.event_conversations.phase_table is scoring.event_phases.phase_table


def test_ramp_before_scheduled_event_is_anticipatory() -> None:
    y = hourly(seed=6)
    y[180:240] *= np.linspace(1.0, 4.0, 60)  # a 2.5-day build-up
    y[240:] *= 4.0
    vote = Event("Senate vote", "t", at(245).to_pydatetime(), "scheduled")
    out = classify_series(index(len(y)), y, 3600, [vote])
    flags = flagged(out)
    first = min(i for i in flags if i >= 180)
    assert flags[first] == "anticipatory" and first < 240
    assert "before the scheduled event 'Senate vote'" in out["explanation"][first]
    assert min(flags) >= 180, flags  # nothing before the ramp
    # causal: the outputs for the first k points do not change when the rest is appended
    part = classify_series(index(first + 1), y[:first + 1], 3600, [vote])
    assert part["flag"] == out["flag"][:first + 1]
    np.testing.assert_array_equal(part["anomaly_score"], out["anomaly_score"][:first + 1])


def test_jump_after_sudden_event_is_reactive_and_without_calendar_a_spike() -> None:
    y = hourly()
    y[200:] *= 2.0
    shooting = Event("Shooting", "t", at(199).to_pydatetime(), "sudden")
    out = classify_series(index(len(y)), y, 3600, [shooting])
    assert out["flag"][200] == "reactive"
    assert "after the sudden event 'Shooting'" in out["explanation"][200]
    plain = classify_series(index(len(y)), y, 3600, [])
    assert plain["flag"][200] == "spike"  # the jump alone, without the calendar: a spike
    assert out["explanation"][10] is None and np.isnan(out["anomaly_score"][10])  # warm-up


def test_jump_in_the_window_of_a_sudden_event_is_reactive() -> None:
    # daily windows: a sudden event at 14:00 and the jump in that day's window (stamped 00:00,
    # its start) react to it, though the window's stamp is before the event
    rng = np.random.default_rng(3)
    y = 100 * np.exp(rng.normal(0, 0.05, 80))
    y[60:] *= 2.0
    days = pd.date_range(pd.Timestamp(START), periods=len(y), freq="D")
    riot = Event("Riot", "t", (days[60] + pd.Timedelta(hours=14)).to_pydatetime(), "sudden")
    out = classify_series(days, y, 86400, [riot])
    assert out["flag"][60] == "reactive", flagged(out)
    assert "the sudden event 'Riot'" in out["explanation"][60]
    before = Event("Riot", "t", (days[61] + pd.Timedelta(hours=1)).to_pydatetime(), "sudden")
    assert "'Riot'" not in (classify_series(days, y, 86400, [before])["explanation"][60] or "")


def test_forecast_crossing_counts_only_ahead_of_a_scheduled_event() -> None:
    rng = np.random.default_rng(4)
    n = 140
    # a steady climb the model learns in its warm-up (so no rise alarm), reaching 7 at ~t 125
    y = 4.5 + 0.02 * np.arange(n) + rng.normal(0, 0.2, n)
    vote = Event("Debate", "t", at(130).to_pydatetime(), "scheduled")
    with_event = classify_series(index(n), y, 3600, [vote], horizon=12, crossing=7.0)
    crossings = [i for i, e in enumerate(with_event["explanation"])
                 if e and "crosses 7 within 12 windows" in e]
    assert crossings and all(i < 130 for i in crossings), with_event["explanation"]
    assert with_event["flag"][crossings[0]] == "anticipatory"
    without = classify_series(index(n), y, 3600, [], horizon=12, crossing=7.0)
    assert not any(e and "crosses" in e for e in without["explanation"])
    assert all(without["flag"][i] == "none" for i in crossings)


def test_run_forecast_stores_causal_classes(tmp_path: Path) -> None:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    rng = np.random.default_rng(11)
    n = 24 * 11
    t = np.arange(n)
    base = 4.0 + 0.3 * np.sin(2 * np.pi * t / 24)
    ramp = base + rng.normal(0, 0.15, n)
    ramp[200:240] += np.linspace(0, 3.5, 40)
    ramp[240:] += 3.5
    jump = base + rng.normal(0, 0.15, n)
    jump[220:] += 3.0
    seed(path, window_rows("abortion", ramp) + window_rows("guns", jump))
    events = [Event("Vote", "abortion", at(244).to_pydatetime(), "scheduled"),
              Event("Shooting", "guns", at(219).to_pydatetime(), "sudden")]
    summary = run_forecast(cfg_for(path), events=events)
    assert summary.anticipatory >= 1 and summary.reactive >= 1
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT topic, timezone('UTC', ts), flag, anomaly_score, explanation "
                           "FROM forecasts WHERE flag NOT IN ('none', 'forecast') "
                           "ORDER BY topic, ts").fetchall()
        n_scored = con.execute("SELECT count(anomaly_score) FROM forecasts").fetchall()[0][0]
    by_topic = {topic: [(pd.Timestamp(ts, tz="UTC"), f, s, e) for tp, ts, f, s, e in rows
                        if tp == topic] for topic in ("abortion", "guns")}
    ts, flag, score, why = next(r for r in by_topic["abortion"] if r[0] >= at(200))
    assert flag == "anticipatory" and ts < at(244) and score >= 0.9999
    assert "before the scheduled event 'Vote'" in why
    ts, flag, _, why = next(r for r in by_topic["guns"] if r[0] >= at(219))
    assert (ts, flag) == (at(220), "reactive") and "after the sudden event 'Shooting'" in why
    incidents = [r for r in by_topic["abortion"] if at(200) <= r[0] < at(244)]
    incidents += [r for r in by_topic["guns"] if at(220) <= r[0] < at(226)]
    assert len(rows) - len(incidents) <= 3, rows  # few false alarms on 2 x 216 scored points
    assert n_scored >= 2 * (n - 48)  # every point after the detector's 2-day warm-up


def test_phase_table_and_event_studies(tmp_path: Path) -> None:
    seeded = seed_warehouse(tmp_path / "pw.duckdb")
    # conv-early starts at hour 20 (score 5.5); conv-hot (9) and conv-calm (2) at hour 45
    vote = Event("Vote", "gun_control", SEED_START + timedelta(hours=30), "scheduled")
    convs = read_conversations(seeded.path, "gun_control", SEED_START, SEED_START
                               + timedelta(days=3))
    table = phase_table(convs, vote, extreme_threshold=EXTREME_THRESHOLD).set_index("phase")
    assert list(table.index) == ["before", "during", "after"]
    assert table.loc["before", "n"] == 1 and table.loc["before", "mean"] == pytest.approx(5.5)
    assert table.loc["during", "n"] == 0 and np.isnan(table.loc["during", "mean"])
    after = table.loc["after"]
    assert after["n"] == 2 and after["mean"] == pytest.approx(5.5)
    assert after["sem"] == pytest.approx(3.5)  # std(9, 2) / sqrt(2)
    assert after["extreme_share"] == 0.5 and after["extreme_sem"] == pytest.approx(0.5 ** 1.5)
    both = event_studies(seeded.path, [vote, Event("Other", "climate_change", SEED_START,
                                                   "sudden")], extreme_threshold=EXTREME_THRESHOLD)
    assert len(both) == 6 and both[both["event"] == "Other"]["n"].sum() == 0


def test_events_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cal = tmp_path / "events.toml"
    base = ["events", "--file", str(cal)]
    add = [*base, "add", "Senate vote", "--topic", "gun_control", "--start",
           "2026-03-04T18:00:00Z", "--kind", "scheduled"]
    assert main(add) == 0
    assert main([*base, "add", "Storm", "--topic", "climate_change", "--start", "2026-03-01",
                 "--end", "2026-03-02T06:00:00+02:00", "--kind", "sudden"]) == 0
    assert main(add) == 2  # a duplicate needs --replace
    assert "already has 'Senate vote'" in capsys.readouterr().err
    assert main([*base, "add", "X", "--topic", "nope", "--start", "2026-03-01", "--kind",
                 "sudden"]) == 2
    assert "unknown topic 'nope'" in capsys.readouterr().err
    assert main([*base, "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("2026-03-01 00:00 → 2026-03-02 04:00 UTC  sudden")
    assert "Senate vote" in out[1]
    assert [e.name for e in load_events(cal)] == ["Storm", "Senate vote"]
    assert main([*base, "remove", "Storm", "--topic", "climate_change"]) == 0
    assert main([*base, "remove", "Storm", "--topic", "climate_change"]) == 2
    assert [e.name for e in load_events(cal)] == ["Senate vote"]


def test_dates_outside_the_calendar_range_and_long_names_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Year 1 and year 9999 are valid ISO dates, but `report` crashed on them (OverflowError in
    the event-study window); a file written by hand is checked the same way."""
    cal = tmp_path / "events.toml"
    base = ["events", "--file", str(cal), "add", "X", "--topic", "gun_control", "--kind"]
    for start in ("9999-12-31", "0001-01-01T00:00:00+05:00", "1999-12-31T23:59:59Z"):
        assert main([*base, "scheduled", "--start", start]) == 2
        assert (f"start: {start.replace('Z', '+00:00')} is outside the dates the calendar "
                "accepts, 2000-01-01 to 2199-12-31") in capsys.readouterr().err
    assert main([*base, "sudden", "--start", "2026-03-01", "--end", "2300-01-01"]) == 2
    assert "end: 2300-01-01 is outside" in capsys.readouterr().err
    assert not cal.exists()
    assert main([*base, "scheduled", "--start", "2199-12-31T23:00:00Z"]) == 0  # the last day
    name = ["events", "--file", str(cal), "add", "--topic", "gun_control", "--kind", "sudden",
            "--start", "2026-03-01"]
    assert main([*name, "x" * 201]) == 2
    assert f"'{'x' * 60}…': the name has 201 characters, more than the 200" in \
        capsys.readouterr().err
    cal.write_text('[[event]]\nname = "far"\ntopic = "gun_control"\nkind = "sudden"\n'
                   'start = 9999-12-31T00:00:00Z\n')
    with pytest.raises(EventError, match="'far' start: 9999-12-31T00:00:00\\+00:00 is outside"):
        load_events(cal)


def test_a_symlinked_calendar_is_edited_through_the_link(tmp_path: Path) -> None:
    """`events --file link add …` replaced the link with a regular file and left the real
    calendar unchanged."""
    real = tmp_path / "config-repo" / "events.toml"
    real.parent.mkdir()
    link = tmp_path / "events.toml"
    link.symlink_to(real)
    base = ["events", "--file", str(link)]
    assert main([*base, "add", "Vote", "--topic", "gun_control", "--start",
                 "2026-03-06T12:00:00Z", "--kind", "scheduled"]) == 0
    assert link.is_symlink() and [e.name for e in load_events(real)] == ["Vote"]
    assert main([*base, "remove", " Vote ", "--topic", "gun_control"]) == 0  # stripped as add does
    assert link.is_symlink() and load_events(real) == []
    assert sorted(p.name for p in real.parent.iterdir()) == ["events.toml"]


@pytest.mark.parametrize(("text", "says"), [
    ("event = [1, 2]\n", "event #1 must be a table ([[event]] with name, topic, start, kind), "
                         "got 1"),
    ('[[events]]\nname = "a"\ntopic = "gun_control"\nstart = 2026-01-01\nkind = "sudden"\n',
     "unknown top-level key(s) or table(s) events; the calendar holds [[event]] tables only "
     "(is [[events]] a typo of [[event]]?)"),
    ('foo = 1\n', "unknown top-level key(s) or table(s) foo; the calendar holds [[event]] "
                  "tables only\n"),
    ('[[event]]\nname = 123\ntopic = "gun_control"\nstart = 2026-01-01\nkind = "sudden"\n',
     "event #1: 'name' must be a string, got an integer (123); quote it"),
    ('[[event]]\nname = "x"\ntopic = true\nstart = 2026-01-01\nkind = "sudden"\n',
     "event #1 'x': 'topic' must be a string, got a boolean (True); quote it"),
    ('[[event]]\nname = "x"\ntopic = "nosuch"\nstart = 2026-01-01\nkind = "sudden"\n',
     "event #1 'x': unknown topic 'nosuch' (known: gun_control, climate_change); an event on "
     "another topic applies to nothing"),
    ('[[event]]\nname = "x"\ntopic = "gun_control"\nstart = 2000-01-01T03:00:00+05:00\n'
     'kind = "sudden"\n', "start: 2000-01-01T03:00:00+05:00 (= 1999-12-31T22:00:00Z) is outside "
                          "the dates the calendar accepts"),
])
def test_a_bad_calendar_file_is_one_line_wherever_it_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        text: str, says: str) -> None:
    """A non-table entry raised TypeError; `[[events]]`, `name = 123`, `topic = true` and an
    unknown topic were read silently (an empty calendar, "123", "True", an event on nothing)."""
    from tests.forecast.test_reports import REPO

    cal = tmp_path / "events.toml"
    cal.write_text(text)
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("gun_control", np.full(20, 3.0)))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(cal))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    config = ["--config", str(REPO / "polarwatch.toml")]
    # an event on an unknown topic is listed, marked (test_events_unknown_topic.py)
    listed = [] if "unknown topic" in says else [["events", "list"]]
    for argv in (*listed, ["forecast"], ["report", "-o", str(tmp_path / "r.html")]):
        assert main([*config, *argv]) == 2, argv
        err = [line for line in capsys.readouterr().err.splitlines()
               if "streamlit" not in line]  # (imported by the dashboard's test fixtures)
        assert len(err) == 1 and err[0].startswith(f"polarwatch: error: {cal}"), err
        assert says in err[0] + "\n", err
    assert not (tmp_path / "r.html").exists()


def test_a_calendar_that_is_a_fifo_or_directory_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`events --file FIFO list` blocked for ever waiting for a writer; `add` would have
    replaced the FIFO with a regular file."""
    import os

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for path, kind in ((tmp_path / "fifo", "a FIFO (named pipe)"), (tmp_path / "dir",
                                                                     "a directory")):
        for sub in (["list"], ["add", "V", "--topic", "gun_control", "--start", "2026-03-01",
                               "--kind", "sudden"]):
            assert main(["events", "--file", str(path), *sub]) == 2
            assert f"{path} is {kind}, not a regular file" in capsys.readouterr().err
    assert (tmp_path / "fifo").is_fifo() and (tmp_path / "dir").is_dir()
