"""`polarwatch report` on names and series the audit broke it with: "$" in topic and event
names (matplotlib's mathtext), bidi controls and right-to-left text in names, ids and posts, a
topic with one window, a constant series and a long topic name (real matplotlib figures and
real reports written from the dashboard's seeded warehouse)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from forecast.reports import write_report
from forecast.reports.charts import figure
from forecast.reports.gather import TopicData
from polarwatch.cli import main
from polarwatch.config import Config, load_config
from polarwatch.display import FSI, PDI
from polarwatch.events import Event, save_events
from polarwatch.warehouse import connect
from tests.dashboard.conftest import START, seed_warehouse

REPO = Path(__file__).resolve().parents[2]
TAX = "Tax $100% or $50%"  # an unbalanced "$": mathtext's ParseException
WAGE = "Min wage $15 vs $7.25"  # a balanced pair: italic math, "15 vs " run together
EVENT = "Carbon tax raised from $40% to $50%"
RLO, ARABIC = "\u202e", "مستخدم"


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gun: str, climate: str,
            events: list[Event]) -> Config:
    path = seed_warehouse(tmp_path / "pw.duckdb").path
    topics = (REPO / "topics.toml").read_text(encoding="utf-8")
    topics = topics.replace('name = "Gun control"', f'name = "{gun}"')
    (tmp_path / "topics.toml").write_text(topics.replace('name = "Climate change"',
                                                         f'name = "{climate}"'),
                                          encoding="utf-8")
    save_events(tmp_path / "events.toml", events)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_TOPICS_FILE", str(tmp_path / "topics.toml"))
    return load_config(REPO / "polarwatch.toml")


def test_dollar_signs_in_topic_and_event_names_are_drawn_as_text(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, monkeypatch, TAX, WAGE, [
        Event(EVENT, "climate_change", START + timedelta(hours=30), "sudden"),
        Event(WAGE, "gun_control", START + timedelta(hours=20), "scheduled")])
    with connect(cfg.warehouse_path) as con:  # a flag class from a foreign writer: in the legend
        con.execute("UPDATE forecasts SET flag = 'dip $5 or $6%' WHERE flag = 'dip'")
    assert main(["report", "-o", str(tmp_path / "r.html")]) == 0  # was a ParseException, exit 1
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert f"<h2>{TAX} <span" in text and f"<h2>{WAGE} <span" in text
    assert text.count('<img src="data:image/png;base64,') == 2
    from forecast.reports.gather import gather

    data, _, facts = gather(cfg)
    for d in data:
        fig = figure(d, facts["metric"], facts["threshold"])
        ax = fig.axes[0]
        legend = ax.get_legend()
        assert legend is not None
        drawn = [ax.title, *ax.texts, *legend.get_texts()]
        with_dollar = [t for t in drawn if "$" in t.get_text()]
        assert {t.get_text() for t in with_dollar} >= {f"{d.name}: mean_score"} | (
            {"dip $5 or $6%", f"{EVENT} (sudden)"} if d.topic == "climate_change" else set())
        assert all(not t.get_parse_math() and not t.get_usetex() for t in with_dollar)
        fig.canvas.draw()  # rendering, not only building: no mathtext parse


def test_bidi_controls_in_names_and_ids_are_shown_and_posts_isolated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _config(tmp_path, monkeypatch, f"Gun {RLO}control", ARABIC,
                  [Event(f"Vote {RLO}today", "gun_control", START + timedelta(hours=30),
                         "scheduled")])
    with connect(cfg.warehouse_path) as con:  # conv-hot drives the active flag of 21:00
        con.execute("UPDATE forecasts SET flag = 'spike' WHERE topic = 'gun_control' AND ts = ?",
                    [START + timedelta(hours=45)])
        for table in ("posts", "interactions"):
            con.execute(f"UPDATE {table} SET conversation_id = ? WHERE conversation_id = "
                        f"'conv-hot'", [f"conv-{RLO}hot"])
        con.execute("UPDATE posts SET text = ? WHERE id = 'h0'", [f"{ARABIC}\u2069{RLO} x"])
    text = write_report(cfg, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<h2>Gun \\u202econtrol <span" in text
    assert f"<h2>{FSI}{ARABIC}{PDI} <span" in text
    assert "<td>conv-\\u202ehot</td>" in text and "<td>Vote \\u202etoday</td>" in text
    assert f"<td>{FSI}{ARABIC}\\u2069{RLO} x{PDI}</td>" in text  # the post as typed, isolated
    assert text.count(RLO) == 1  # only inside that isolated post


def _topic(values: list[float], name: str = "Gun control",
           forecasts: pd.DataFrame | None = None) -> TopicData:
    ts = pd.date_range(START, periods=len(values), freq="h", tz="UTC")
    windows = pd.DataFrame({"ts": ts, "window_end": ts + pd.Timedelta(hours=1),
                            "mean_score": values, "extreme_share": values,
                            "hostility_share": 0.0, "volume": 3})
    empty = pd.DataFrame(columns=["ts", "y", "forecast", "lower", "upper", "flag", "model"])
    return TopicData("gun_control", name, windows,
                     empty if forecasts is None else forecasts, pd.DataFrame(columns=["flag"]))


def test_one_window_draws_its_point_on_an_axis_around_it() -> None:
    ax = figure(_topic([4.0]), "mean_score", 7.0).axes[0]
    [line] = [ln for ln in ax.get_lines() if ln.get_label() == "mean_score"]
    assert line.get_marker() == "o"
    left, right = ax.get_xlim()  # matplotlib date units: days
    assert right - left == pytest.approx(2 / 24)  # one window either side, not 2025-2029


def test_a_constant_series_gets_an_axis_around_its_value() -> None:
    for metric, value, limits in (("extreme_share", 0.0, (0.0, 1.0)),
                                  ("extreme_share", 0.5, (0.45, 0.55)),
                                  ("volume", 3.0, (2.7, 3.3))):
        fig = figure(_topic([value] * 24), metric, 7.0)
        ax = fig.axes[0]
        assert ax.get_ylim() == pytest.approx(limits), metric
        fig.canvas.draw()
        ticks = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert len(ticks) >= 3 and not any(t.startswith(("−", "-")) for t in ticks), ticks


def test_a_long_topic_name_is_shortened_to_fit_the_chart() -> None:
    name = "A very long topic name about many things " * 10
    fig = figure(_topic([1.0, 2.0, 3.0], name=name), "mean_score", 7.0)
    title = fig.axes[0].title
    lines = title.get_text().split("\n")
    assert len(lines) == 2 and lines[1].endswith("…: mean_score")
    assert name.startswith(lines[0]) and len(lines[0]) > 40
    fig.canvas.draw()
    box = title.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width  # nothing cut at either edge
