"""The report's chart stops its observed line (and the model's band) at missing windows instead
of drawing a straight line across them: posts from 2000, 2013 and the last 30 hours were one
13-year diagonal of values never observed, and an outage of hours was bridged the same way.
Checked on the data matplotlib draws (the line's and the band's vertices), not on pixels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from forecast.reports.charts import figure
from forecast.reports.gather import TopicData, gather
from polarwatch.config import load_config
from polarwatch.warehouse import connect
from tests.dashboard.conftest import START, seed_warehouse

REPO = Path(__file__).resolve().parents[2]
HOUR = 1 / 24  # matplotlib date units are days


def _line(fig: Figure, label: str = "mean_score") -> tuple[np.ndarray, np.ndarray, Line2D]:
    ax = fig.axes[0]
    [line] = [ln for ln in ax.get_lines() if ln.get_label() == label]
    x = mdates.date2num(pd.to_datetime(line.get_xdata()))
    return np.asarray(x, dtype=float), np.asarray(line.get_ydata(), dtype=float), line


def _segments(x: np.ndarray, y: np.ndarray) -> list[tuple[float, float]]:
    """Each straight piece the line draws: consecutive points both with a value."""
    return [(x[i], x[i + 1]) for i in range(len(x) - 1)
            if not np.isnan(y[i]) and not np.isnan(y[i + 1])]


def test_posts_years_apart_are_points_not_a_diagonal() -> None:
    recent = pd.date_range("2026-12-05 00:00", periods=30, freq="h", tz="UTC")
    ts = pd.DatetimeIndex([pd.Timestamp("2000-01-01", tz="UTC"),
                           pd.Timestamp("2013-06-01", tz="UTC")]).append(recent)
    values = [2.0, 2.0] + [1.0 + 0.01 * i for i in range(30)]
    windows = pd.DataFrame({"ts": ts, "window_end": ts + pd.Timedelta(hours=1),
                            "mean_score": values, "extreme_share": 0.0,
                            "hostility_share": 0.0, "volume": 3})
    empty = pd.DataFrame(columns=["ts", "y", "forecast", "lower", "upper", "flag", "model"])
    d = TopicData("gun_control", "Gun control", windows, empty, pd.DataFrame(columns=["flag"]))
    x, y, line = _line(figure(d, "mean_score", 7.0))
    pieces = _segments(x, y)
    assert len(pieces) == 29  # the 30 recent hours, and nothing else
    assert max(b - a for a, b in pieces) == pytest.approx(HOUR)
    assert sum(~np.isnan(y)) == 32  # every observed window is still drawn
    # the two lone windows get a marker each (a line of one point draws nothing)
    every = line.get_markevery()
    assert isinstance(every, list)
    lone = [x[int(i)] for i in every]
    assert lone == pytest.approx(list(mdates.date2num(ts[:2].to_pydatetime())))
    assert line.get_marker() == "o"


def test_an_outage_of_hours_breaks_the_line_and_the_band(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = seed_warehouse(tmp_path / "pw.duckdb").path  # 48 hourly windows, forecasts on them
    missing = [START + timedelta(hours=h) for h in (20, 21, 22)]
    with connect(path) as con:  # the stream was down for three hours: no windows, no fit
        for table in ("topic_windows", "forecasts"):
            column = "window_start" if table == "topic_windows" else "ts"
            con.execute(f"DELETE FROM {table} WHERE topic = 'gun_control' AND {column} IN "
                        f"(?, ?, ?)", missing)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    data, _, facts = gather(load_config(REPO / "polarwatch.toml"), ["gun_control"])
    fig = figure(data[0], facts["metric"], facts["threshold"])
    x, y, _ = _line(fig)
    pieces = _segments(x, y)
    assert max(b - a for a, b in pieces) == pytest.approx(HOUR)
    gap = (mdates.date2num(START + timedelta(hours=19)), mdates.date2num(missing[-1]))
    assert not [p for p in pieces if p[0] <= gap[0] and p[1] > gap[1]]  # nothing crosses it
    assert len(pieces) == 48 - 3 - 2  # 45 windows in two runs: 19 + 24 segments
    # the model's band over observed windows: one filled region per run of windows
    ax = fig.axes[0]
    band = [c for c in ax.collections if type(c).__name__.endswith("PolyCollection")
            and c.get_alpha() == pytest.approx(0.15)]
    assert band, [type(c).__name__ for c in ax.collections]
    regions = [p for c in band for p in c.get_paths()]
    xs = [np.asarray(p.vertices, dtype=float)[:, 0] for p in regions]
    spans = [(float(v.min()), float(v.max())) for v in xs]
    assert len(regions) == 2, spans
    assert not [s for s in spans if s[0] <= gap[0] and s[1] > gap[1]]


def test_a_series_without_missing_windows_is_drawn_as_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = seed_warehouse(tmp_path / "pw.duckdb").path
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    data, _, facts = gather(load_config(REPO / "polarwatch.toml"), ["gun_control"])
    x, y, line = _line(figure(data[0], facts["metric"], facts["threshold"]))
    assert not np.isnan(y).any() and len(y) == 48
    assert list(y) == pytest.approx(list(data[0].windows["mean_score"]))
    assert line.get_marker() in ("None", None, "")
