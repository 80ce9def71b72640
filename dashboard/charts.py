"""Altair charts for the dashboard (frames in, chart out; no Streamlit, no DuckDB).

Times are shown in UTC: the x scale is a UTC scale and tooltips use preformatted strings, so the
chart reads the same in every browser time zone.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

# One legend for every layer: observed, forecast, flags; events get their own colours.
SERIES_DOMAIN = ["observed", "forecast", "flag"]
SERIES_RANGE = ["#1f77b4", "#ff7f0e", "#d62728"]
EVENT_DOMAIN = ["scheduled", "sudden"]
EVENT_RANGE = ["#9467bd", "#8c564b"]
PHASE_DOMAIN = ["before", "during", "after"]
PHASE_RANGE = ["#1f77b4", "#d62728", "#2ca02c"]
ROUTINE_COLOR = "#7f7f7f"  # a routine burst: as far out as a flag, not flagged (no legend entry)
TIME_FORMAT = "%Y-%m-%d %H:%M UTC"
# Flag marker per class: up for rises (spike, anticipatory/reactive escalation), down for dips.
FLAG_SHAPES = {"spike": "triangle-up", "dip": "triangle-down", "anticipatory": "diamond",
               "reactive": "triangle-up"}


def _when(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts, utc=True).dt.strftime(TIME_FORMAT)


def value_scale(*columns: pd.Series, zero: bool = False) -> alt.Scale:
    """A y scale over `columns`; when they hold one value only (a constant series, one window),
    a domain around it, so the axis gets a few sane ticks ("1.8", "2.0", "2.2", not one
    "2.000000": Vega formats the ticks of a zero-width domain with six decimals)."""
    values = pd.concat([pd.to_numeric(c, errors="coerce") for c in columns]).dropna()
    if zero:
        values = pd.concat([values, pd.Series([0.0])])
    if values.empty or values.min() != values.max():
        return alt.Scale(zero=zero)
    v = float(values.iloc[0])
    pad = abs(v) * 0.1 or 1.0
    return alt.Scale(zero=zero, domain=[max(0.0, v - pad) if v >= 0 else v - pad, v + pad])


def _point(single: bool) -> alt.OverlayMarkDef | bool:
    """mark_line's point: a line of one point draws nothing, so it gets its point drawn."""
    return alt.OverlayMarkDef(filled=True, size=70) if single else False


def _x(title: str = "window start (UTC)") -> alt.X:
    return alt.X("ts:T", title=title, scale=alt.Scale(type="utc"))


def series_chart(series: pd.DataFrame, y_title: str, title: str,
                 forecast: pd.DataFrame | None = None, flags: pd.DataFrame | None = None,
                 events: pd.DataFrame | None = None, height: int = 360,
                 routine: pd.DataFrame | None = None) -> alt.LayerChart:
    """Observed metric; optional forecast line + prediction band; flags; event spans.

    ``series``: ts, value. ``forecast``: ts, forecast, lower, upper (rows without a forecast
    are skipped). ``flags``: ts, y (NaN → drawn as a vertical rule only), class, explanation.
    ``events``: name, kind, start, end. ``routine``: ts, y, explanation of windows as far out
    as a flag at a routine time of day, which raised none (grey rings).
    """
    series_color = alt.Color("series:N", title=None,
                             scale=alt.Scale(domain=SERIES_DOMAIN, range=SERIES_RANGE),
                             legend=alt.Legend(orient="top", symbolType="circle"))
    frames = [f for f in (series, forecast, flags, routine) if f is not None]
    y_scale = value_scale(*[f[c] for f in frames for c in
                            ("value", "lo", "hi", "forecast", "lower", "upper", "y") if c in f])
    layers: list[alt.Chart] = []
    event_layers: list[alt.Chart] = []

    if events is not None and not events.empty:
        ev = events.assign(when=_when(events["start"]), ts=events["start"])
        event_color = alt.Color("kind:N", title="event",
                                scale=alt.Scale(domain=EVENT_DOMAIN, range=EVENT_RANGE))
        tip = [alt.Tooltip("name:N", title="event"), alt.Tooltip("kind:N"),
               alt.Tooltip("when:N", title="starts")]
        event_layers.append(alt.Chart(ev).mark_rect(opacity=0.15).encode(
            x=alt.X("start:T", scale=alt.Scale(type="utc")), x2="end:T", color=event_color,
            tooltip=tip))
        event_layers.append(alt.Chart(ev).mark_rule(strokeWidth=2, strokeDash=[2, 2]).encode(
            x=alt.X("start:T", scale=alt.Scale(type="utc")), color=event_color, tooltip=tip))

    if forecast is not None and not forecast.empty:
        fc = forecast.dropna(subset=["forecast"]).assign(when=lambda d: _when(d["ts"]))
        band = fc.dropna(subset=["lower", "upper"])
        layers.append(alt.Chart(band).mark_area(opacity=0.18, color=SERIES_RANGE[1]).encode(
            x=_x(), y=alt.Y("lower:Q", title=y_title, scale=y_scale), y2="upper:Q",
            tooltip=[alt.Tooltip("when:N", title="window"),
                     alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f")]))
        layers.append(alt.Chart(fc.assign(series="forecast")).mark_line(
            strokeWidth=2, strokeDash=[5, 3], point=_point(len(fc) == 1)).encode(
            x=_x(), y=alt.Y("forecast:Q", title=y_title, scale=y_scale), color=series_color,
            tooltip=[alt.Tooltip("when:N", title="window"),
                     alt.Tooltip("forecast:Q", format=".2f")]))

    obs = series.dropna(subset=["value"]).assign(series="observed",
                                                 when=lambda d: _when(d["ts"]))
    if {"lo", "hi"} <= set(obs.columns) and obs["lo"].notna().any():
        # the uncertainty of each window's value: a thin window gets a wide bar
        ci = obs.dropna(subset=["lo", "hi"])
        layers.append(alt.Chart(ci).mark_errorbar(opacity=0.45, color=SERIES_RANGE[0]).encode(
            x=_x(), y=alt.Y("lo:Q", title=y_title, scale=y_scale), y2="hi:Q",
            tooltip=[alt.Tooltip("when:N", title="window"),
                     alt.Tooltip("n:Q", title="behind the value", format=","),
                     alt.Tooltip("lo:Q", title="95 % low", format=".3g"),
                     alt.Tooltip("hi:Q", title="95 % high", format=".3g")]))
    layers.append(alt.Chart(obs).mark_line(strokeWidth=2, point=_point(len(obs) == 1)).encode(
        x=_x(), y=alt.Y("value:Q", title=y_title, scale=y_scale), color=series_color,
        tooltip=[alt.Tooltip("when:N", title="window"),
                 alt.Tooltip("value:Q", title="observed", format=".3g")]))

    if flags is not None and not flags.empty:
        fl = flags.assign(series="flag", when=_when(flags["ts"]))
        tip = [alt.Tooltip("when:N", title="window"), alt.Tooltip("class:N", title="flag"),
               alt.Tooltip("explanation:N", title="why")]
        layers.append(alt.Chart(fl).mark_rule(strokeWidth=1, opacity=0.5).encode(
            x=_x(), color=series_color, tooltip=tip))
        points = fl.dropna(subset=["y"])
        shape = alt.Shape("class:N", legend=None, scale=alt.Scale(
            domain=list(FLAG_SHAPES), range=list(FLAG_SHAPES.values())))
        layers.append(alt.Chart(points).mark_point(filled=True, size=140, opacity=1).encode(
            x=_x(), y=alt.Y("y:Q", title=y_title, scale=y_scale), color=series_color,
            shape=shape, tooltip=tip))

    if routine is not None and not routine.empty:
        rings = routine.dropna(subset=["y"]).assign(when=_when(routine["ts"]))
        ring = alt.Chart(rings).mark_point(size=180, strokeWidth=2, color=ROUTINE_COLOR)
        layers.append(ring.encode(
            x=_x(), y=alt.Y("y:Q", title=y_title, scale=y_scale),
            tooltip=[alt.Tooltip("when:N", title="window"),
                     alt.Tooltip("explanation:N", title="why no flag")]))

    chart = alt.LayerChart(layer=layers)
    if event_layers:  # events and series each keep one colour scale and one legend
        chart = alt.LayerChart(layer=[alt.LayerChart(layer=event_layers), chart]).resolve_scale(
            color="independent")
    return chart.properties(title=title, height=height)


def event_study_charts(study: pd.DataFrame, name: str) -> tuple[alt.LayerChart, alt.Chart]:
    """Mean ± SEM of conversation scores per day around the event, and the share of extreme
    conversations per day; both coloured by phase (before / during / after)."""
    color = alt.Color("phase:N", scale=alt.Scale(domain=PHASE_DOMAIN, range=PHASE_RANGE),
                      legend=alt.Legend(orient="top", title=None))
    x = alt.X("day:O", title="day relative to the event (0 = during)",
              axis=alt.Axis(labelAngle=0))
    tip = [alt.Tooltip("day:O"), alt.Tooltip("phase:N"), alt.Tooltip("n:Q", title="conversations"),
           alt.Tooltip("mean:Q", format=".2f"), alt.Tooltip("sem:Q", format=".2f"),
           alt.Tooltip("extreme_share:Q", format=".0%")]
    base = alt.Chart(study)
    score = alt.LayerChart(layer=[
        base.mark_rule(strokeWidth=2).encode(
            x=x, y=alt.Y("lo:Q", title="conversation score (mean ± SEM)",
                         scale=value_scale(study["lo"], study["hi"], study["mean"])),
            y2="hi:Q", color=color),
        base.mark_point(filled=True, size=80).encode(x=x, y="mean:Q", color=color, tooltip=tip),
    ], title=f"{name}: polarization of conversations", height=260)
    extreme = base.mark_bar().encode(
        x=x, y=alt.Y("extreme_share:Q", title="share of extreme conversations",
                     axis=alt.Axis(format="%"),
                     scale=value_scale(study["extreme_share"], zero=True)),
        color=color, tooltip=tip).properties(title=f"{name}: extreme conversations", height=260)
    return score, extreme
