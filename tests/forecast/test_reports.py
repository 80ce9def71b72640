"""`polarwatch report` on the dashboard's seeded warehouse: topics, embedded PNG charts, active
flags with their drivers, the event table, --topic / --since and the --every loop."""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from dashboard.label_store import save_labels
from forecast.reports import parse_duration, parse_since, report_loop, write_report
from polarwatch.cli import main
from polarwatch.config import Config, load_config
from polarwatch.errors import ConfigError
from polarwatch.events import Event, save_events
from polarwatch.tables import AnalystLabel
from polarwatch.warehouse import connect
from scoring.label_accuracy import wilson_interval
from tests.dashboard.conftest import START, reply_rows, seed_warehouse, store_replies

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    path = seed_warehouse(tmp_path / "pw.duckdb").path  # the dashboard tests' data set
    with connect(path) as con:  # a classified flag in the window of conv-hot / conv-calm
        con.execute("UPDATE forecasts SET flag = 'anticipatory', explanation = 'a sustained "
                    "rise, 9 h before the scheduled event ''Senate vote''', anomaly_score = 1 "
                    "WHERE topic = 'gun_control' AND ts = ?", [START + timedelta(hours=45)])
    events = tmp_path / "events.toml"
    save_events(events, [Event("Senate vote", "gun_control", START + timedelta(hours=30),
                               "scheduled")])
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(events))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    return load_config(REPO / "polarwatch.toml")


def test_report_has_topics_charts_flags_drivers_and_events(cfg: Config, tmp_path: Path) -> None:
    out = write_report(cfg, tmp_path / "report.html")
    text = out.read_text()
    assert "Gun control" in text and "Climate change" in text
    pngs = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert len(pngs) == 2 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    assert "Forecast: next 12 windows" in text
    active = text.split("<h3>Active flags</h3>")[1]  # gun_control comes second (by id)
    assert "anticipatory" in text and "9 h before the scheduled event" in text
    assert "dip" in active  # climate_change's active dip
    drivers = text.split("Conversations driving the flag of 2026-03-02 21:00")[1]
    assert drivers.index("conv-hot") < drivers.index("conv-calm")
    assert "Ban assault weapons now" in drivers
    events = text.split("Events: before / during / after")[1]
    assert events.count("Senate vote") == 3
    assert "5.50 ± 3.50" in events and "50% ± 35%" in events
    assert "<script" not in text  # self-contained, static


def test_cli_topic_since_and_every(cfg: Config, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "gun.html"
    assert main(["report", "--topic", "gun_control", "--since", "1d", "-o", str(out)]) == 0
    assert capsys.readouterr().err.strip().endswith(f"report written: {out}")
    text = out.read_text()
    assert "Gun control" in text and "Climate change" not in text
    assert "newest window 2026-03-02 23:00" in text and "since 2026-03-01 23:00" in text
    assert main(["report", "--topic", "nope", "-o", str(out)]) == 2
    assert "no windows for topic(s) nope" in capsys.readouterr().err

    waits: list[float] = []
    caplog.set_level(logging.INFO, logger="forecast")
    caplog.clear()
    (tmp_path / "r").mkdir()  # a missing directory is refused, as `label` refuses it
    paths = report_loop(cfg, output=tmp_path / "r" / "report-%Y%m%d.html", every="1h",
                        count=2, sleep=waits.append)
    assert len(paths) == 2 and len(waits) == 1
    assert caplog.messages == [f"report written: {p}" for p in paths]
    assert 3500 < waits[0] <= 3600 and paths[0].exists() and "%" not in paths[0].name


def test_report_help_documents_cron(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "0 * * * *" in capsys.readouterr().out


def test_time_options_are_checked_when_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    """--since, --every and detect --refractory are refused before anything runs (exit 2)."""
    for args, says in ((["report", "--since", "yesterday-ish"], "--since: expected 2026-03-01"),
                       (["report", "--since", "0s"], "--since: 0s is 0: a duration back must "
                                                     "be above 0"),  # pandas: 0001-01-01
                       (["report", "--since", "0.0000001s"], "--since: 0.0000001s is under a "
                                                             "microsecond"),
                       (["report", "--every", "60"], "--every: expected a positive duration"),
                       (["detect", "x.csv", "--refractory", "6"], "--refractory: expected a")):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.parametrize("every", ["99999999d", "3651d"])
def test_an_every_longer_than_ten_years_is_refused_when_parsed(
        every: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--every 99999999d wrote one report, then its sleep raised OverflowError (a traceback,
    exit 1); now it is refused before anything runs, as the config's durations are."""
    with pytest.raises(SystemExit) as exit_:
        main(["report", "--every", every, "--count", "2"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in err
    assert f"--every: {every} is longer than 3650 days" in err.strip().splitlines()[-1]


def test_durations() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("1.5d") == timedelta(hours=36)
    with pytest.raises(ConfigError, match="30m, 1h or 7d"):
        parse_duration("soon")
    since = parse_since("2026-03-01", None)
    assert since is not None and since.isoformat() == "2026-03-01T00:00:00+00:00"
    assert parse_since(None, None) is None
    with pytest.raises(ConfigError, match="--since"):
        parse_since("yesterday-ish", None)


def test_names_and_explanations_are_escaped(cfg: Config, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = "<script>alert(1)</script>"
    events = tmp_path / "hostile.toml"
    save_events(events, [Event(f"Vote {hostile}", "gun_control", START + timedelta(hours=30),
                               "scheduled")])
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(events))
    with connect(cfg.warehouse_path) as con:
        con.execute("UPDATE forecasts SET explanation = ? WHERE topic = 'gun_control' AND "
                    "flag = 'anticipatory'", [f"rise {hostile}"])
    text = write_report(cfg, tmp_path / "report.html").read_text()
    assert "<script" not in text
    assert text.count("Vote &lt;script&gt;alert(1)&lt;/script&gt;") == 3  # one row per phase
    assert "rise &lt;script&gt;alert(1)&lt;/script&gt;" in text


def _label(post: str, topic: str, value: str, model: str, sample: str = "random"
           ) -> AnalystLabel:
    return AnalystLabel("test", post, topic, "stance", value, sample, model, 0.9, "ana",
                        START)


def _beyond(random: list[str], topic: str, n: int) -> list[str]:
    """`n` post ids that come after every post of `random` in the Label page's random order:
    labels drawn for their low confidence that the random walk has not reached."""
    import duckdb

    def rank(post: str) -> int:
        return int(duckdb.execute("SELECT hash(? || chr(31) || ? || chr(31) || ?)",
                                  ["test", post, topic]).fetchall()[0][0])

    last = max(rank(p) for p in random)
    return [p for p in (f"x{i}" for i in range(200)) if rank(p) > last][:n]


def test_each_topic_shows_its_measured_label_accuracy(cfg: Config, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Accuracy with its Wilson interval and the number of random labels behind it, per topic;
    "not validated" below [dashboard] min_validation_labels, "unreliable" below the floor;
    labels drawn for their low confidence beyond the random walk are not counted."""
    monkeypatch.setenv("POLARWATCH_DASHBOARD_MIN_VALIDATION_LABELS", "3")
    monkeypatch.setenv("POLARWATCH_DASHBOARD_MIN_STANCE_ACCURACY", "0.7")
    cfg = load_config(REPO / "polarwatch.toml")
    save_labels(cfg.warehouse_path, [
        _label("g1", "gun_control", "pro", "pro"), _label("g2", "gun_control", "anti", "anti"),
        _label("g3", "gun_control", "anti", "pro"),  # the model is right on 2 of 3
        *(_label(p, "gun_control", "anti", "pro", "informative")  # not counted
          for p in _beyond(["g1", "g2", "g3"], "gun_control", 2)),
        _label("c1", "climate_change", "pro", "pro")])
    text = write_report(cfg, tmp_path / "report.html").read_text()
    gun = text.split("<h2>Gun control")[1]
    climate = text.split("<h2>Climate change")[1].split("<h2>Gun control")[0]
    lower, upper = wilson_interval(2, 3)
    assert (f"Unreliable: stance accuracy 0.67 (95 % interval {lower:.2f}–{upper:.2f}, 3 random "
            f"labels) is below the floor 0.70") in gun
    assert "<td>stance</td><td>3</td><td>0.67</td>" in gun
    assert "Not validated: 1 of the 3 random stance labels needed" in climate
    assert "<td>stance</td><td>1</td><td>1.00</td><td>0.21–1.00</td>" in climate
    summary = text.split("<h2>Current state</h2>")[1].split("<section>")[0]
    assert "<td>unreliable</td>" in summary and "<td>not validated</td>" in summary

    monkeypatch.setenv("POLARWATCH_DASHBOARD_MIN_STANCE_ACCURACY", "0.6")
    text = write_report(load_config(REPO / "polarwatch.toml"), tmp_path / "r2.html").read_text()
    assert "Validated: stance accuracy 0.67" in text.split("<h2>Gun control")[1]


def test_a_topic_whose_sides_are_a_coin_flip_is_marked(cfg: Config, tmp_path: Path) -> None:
    """Climate change: 120 replies whose sides do not follow their agreement; gun control: 10
    seeded replies, too few to tell, so its section says nothing about sides."""
    coin = [("agree", "pro"), ("agree", "anti"), ("disagree", "pro"), ("disagree", "anti")] * 30
    store_replies(cfg.warehouse_path, reply_rows("climate_change", coin))
    text = write_report(cfg, tmp_path / "report.html").read_text()
    climate = text.split("<h2>Climate change")[1].split("<h2>Gun control")[0]
    gun = text.split("<h2>Gun control")[1]
    assert ("<p class='unreliable'>Sides look random: of the stored replies that agree with "
            "their parent, 50% of 60 are on its side; of those that disagree, 50% of 60 are on the "
            "other side") in climate
    assert "Sides" not in gun


def test_a_file_without_labels_reports_every_topic_not_validated(cfg: Config,
                                                                 tmp_path: Path) -> None:
    with connect(cfg.warehouse_path) as con:  # as a file from before the labels table
        con.execute("DROP TABLE labels")
    text = write_report(cfg, tmp_path / "report.html").read_text()
    assert text.count("Not validated: 0 of the 30 random stance labels needed") == 2
    assert text.count("No random labels yet.") == 2


def test_a_routine_burst_is_listed_with_why_it_raised_no_flag(cfg: Config, tmp_path: Path) -> None:
    why = "routine, not flagged: mean_score was as far out within an hour of this time of day"
    with connect(cfg.warehouse.path) as con:
        con.execute("UPDATE forecasts SET episode_event = 'routine', explanation = ? "
                    "WHERE topic = 'gun_control' AND metric = 'mean_score' AND ts = ?",
                    [why, START + timedelta(hours=20)])
    text = write_report(cfg, tmp_path / "report.html").read_text()
    sections = text.split("<h3>Routine bursts, not flagged</h3>")
    assert len(sections) == 3  # one per topic
    assert sum(why in s.split("</table>")[0] for s in sections[1:]) == 1
    assert text.count("No routine bursts in the range.") == 1


def test_a_topic_the_forecast_skipped_says_why_it_has_no_forecast(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `forecast` skipped a topic ("1 observed point(s), at least 10 are needed") the
    report said "No forecast (run `polarwatch forecast`)", which running it does not change."""
    import numpy as np

    from forecast.models import MIN_POINTS
    from polarwatch.warehouse import init_schema
    from tests.forecast.test_forecast import seed, window_rows

    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("gun_control", np.array([5.0]))
         + window_rows("climate_change", 4.0 + np.sin(np.arange(30.0))))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    config = ["--config", str(REPO / "polarwatch.toml")]

    def forecast_notes(html: Path) -> dict[str, str]:
        text = html.read_text()
        return {topic: re.sub(r"\s+", " ", text.split(f"<h2>{name}")[1].split("<h3>Active")[0])
                for topic, name in (("gun_control", "Gun control"),
                                    ("climate_change", "Climate change"))}

    assert main([*config, "report", "-o", str(tmp_path / "before.html")]) == 0
    before = forecast_notes(tmp_path / "before.html")
    too_few = (f"No forecast: 1 window(s) with a mean_score value, at least {MIN_POINTS} are "
               f"needed (`polarwatch forecast` skips the topic until then).")
    assert too_few in before["gun_control"]
    assert "<h3>Forecast</h3>" in before["gun_control"]  # not "next 0 windows"
    assert "No forecast (run `polarwatch forecast`)." in before["climate_change"]  # not run yet

    assert main([*config, "forecast"]) == 0
    assert main([*config, "report", "-o", str(tmp_path / "after.html")]) == 0
    after = forecast_notes(tmp_path / "after.html")
    assert too_few in after["gun_control"] and "run `polarwatch forecast`" not in after["gun_control"]
    assert "No forecast" not in after["climate_change"]


def test_a_symlinked_output_is_written_through(cfg: Config, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`report -o link.html` replaced the link with a regular file (as root, `-o /dev/null`
    replaced /dev/null); now the file it points to is written and the link stays."""
    target = tmp_path / "shared" / "target.html"
    target.parent.mkdir()
    target.write_text("original")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    assert main(["report", "-o", str(link)]) == 0
    assert link.is_symlink() and "<h2>Gun control" in target.read_text()
    assert [p.name for p in target.parent.iterdir()] == ["target.html"]  # no temp file left
    capsys.readouterr()


@pytest.mark.parametrize("kind", ["fifo", "link to fifo", "directory", "directory/", "empty"])
def test_an_output_that_is_no_regular_file_is_refused_before_rendering(
        cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """`-o DIR` failed only after rendering and left a 155 KB `.DIR.tmp`; `-o ''` raised
    ValueError. A FIFO stands in for /dev/null (never test with a real device)."""
    import os
    import stat

    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "fifo")
    (out / "link.html").symlink_to(out / "fifo")
    (out / "dir").mkdir()
    path = {"fifo": str(out / "fifo"), "link to fifo": str(out / "link.html"),
            "directory": str(out / "dir"), "directory/": f"{out / 'dir'}/", "empty": ""}[kind]

    def no_gather(*args: object, **kwargs: object) -> None:
        raise AssertionError("gathered before the output was checked")

    monkeypatch.setattr("forecast.reports.report.gather", no_gather)
    assert main(["report", "--forecast", "-o", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polarwatch: error: -o ") and err.count("\n") == 1, err
    assert stat.S_ISFIFO((out / "fifo").lstat().st_mode) and (out / "link.html").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["dir", "fifo", "link.html"]
    assert list((out / "dir").iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("where", ["missing directory", "/proc"])
def test_an_output_no_file_can_be_written_to_is_refused_before_rendering(
        cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], where: str) -> None:
    """`report -o /proc/x.html` failed only after the report was built, naming a temporary
    file (`/proc/.x.html.1a2b3c4d.tmp`); `-o nodir/x.html` made the directory, where `label`
    refuses a mistyped one. Both are now one line before anything is read."""
    path = {"missing directory": str(tmp_path / "nodir" / "x.html"),
            "/proc": "/proc/polarwatch-report.html"}[where]

    def no_gather(*args: object, **kwargs: object) -> None:
        raise AssertionError("gathered before the output was checked")

    monkeypatch.setattr("forecast.reports.report.gather", no_gather)
    assert main(["report", "-o", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".tmp" not in err, err
    assert err.startswith(f"polarwatch: error: -o {path}: "), err
    says = {"missing directory": f"directory {tmp_path / 'nodir'} does not exist; create it "
                                 f"first (mkdir -p {tmp_path / 'nodir'})",
            "/proc": "no file can be written in /proc ("}[where]
    assert says in err and not (tmp_path / "nodir").exists()


def test_since_count_and_repeated_topics(cfg: Config, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """--since 9999999d raised OverflowError; --count without --every was ignored; a topic
    given twice was rendered twice."""
    out = tmp_path / "r.html"
    with pytest.raises(SystemExit) as exit_:
        main(["report", "-o", str(out), "--since", "9999999d"])
    assert exit_.value.code == 2
    assert "--since: 9999999d reaches back 9,999,999 days, before 1677-09-21" in \
        capsys.readouterr().err
    with pytest.raises(ConfigError, match="reaches back"):  # also from the newest window
        parse_since("200000d", START)
    assert main(["report", "-o", str(out), "--count", "3"]) == 2
    assert "--count 3 needs --every" in capsys.readouterr().err and not out.exists()
    assert main(["report", "-o", str(out), "--topic", "gun_control", "--topic",
                 "gun_control"]) == 0
    assert out.read_text().count("<h2>Gun control") == 1


def test_forecast_and_report_help_name_the_metric_key(capsys: pytest.CaptureFixture[str]) -> None:
    from forecast.series import METRICS

    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[default: [forecast] metric; env: POLARWATCH_FORECAST_METRIC]" in text
    assert all(m in text for m in METRICS)
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    assert "[forecast] metric ($POLARWATCH_FORECAST_METRIC)" in \
        " ".join(capsys.readouterr().out.split())


def test_stance_labels_given_under_the_sides_swapped_are_read_flipped(
        cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The analysts labelled while gun control's pro and anti were the other way round, and
    agreed with the model then; the topic was swapped since, and the posts are no longer
    stored, so each is compared with the model's label when it was shown, flipped as well (a
    review: flipping the analyst's label alone measured 0.00)."""
    monkeypatch.setenv("POLARWATCH_DASHBOARD_MIN_VALIDATION_LABELS", "3")
    cfg = load_config(REPO / "polarwatch.toml")
    topic = cfg.topic("gun_control")
    save_labels(cfg.warehouse_path, [
        dataclasses.replace(_label(p, "gun_control", value, model),
                            pro_description=topic.anti, anti_description=topic.pro)
        for p, value, model in [("g1", "pro", "pro"), ("g2", "anti", "anti"),
                                ("g3", "pro", "pro")]])
    gun = write_report(cfg, tmp_path / "report.html").read_text().split("<h2>Gun control")[1]
    assert "Validated: stance accuracy 1.00 (95 % interval 0.44–1.00) on 3 random" in gun
    with connect(cfg.warehouse_path) as con:  # a file from before migration 11: as given
        con.execute("ALTER TABLE labels DROP COLUMN pro_description")
        con.execute("ALTER TABLE labels DROP COLUMN anti_description")
    gun = write_report(cfg, tmp_path / "r2.html").read_text().split("<h2>Gun control")[1]
    assert "Validated: stance accuracy 1.00" in gun  # no sides recorded: as given
