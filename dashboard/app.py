"""polarwatch dashboard: live polarization per topic, forecasts, flags, most polarized threads.

Run with ``streamlit run dashboard/app.py`` (or ``polarwatch dashboard``). The DuckDB file comes
from ``load_config()`` (``polarwatch.toml`` in the working directory or ``$POLARWATCH_CONFIG``;
``POLARWATCH_WAREHOUSE_PATH`` overrides it). Every read is a short-lived read-only connection
(see ``dashboard/queries.py``) so the dashboard never blocks the stream writer.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard import queries
from polarwatch.config import load_config
from polarwatch.errors import ConfigError

REFRESH_SECONDS = 5  # how often the live section re-reads the warehouse
TOP_CONVERSATIONS = 10
CARDS_PER_ROW = 2  # topic metric cards per row (3 metrics each need the width)
EMPTY_HINT = "run `make demo` or `polarwatch stream`"
# Colours shared by the chart layers (one legend): observed, forecast, spike, dip.
SERIES_DOMAIN = ["observed", "forecast", "spike", "dip"]
SERIES_RANGE = ["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"]


# --------------------------------------------------------------------------------------------
# Formatting helpers (pure, so they are easy to reason about)


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def fmt_score(value: Any) -> str:
    return "—" if _is_missing(value) else f"{float(value):.2f}"


def fmt_share(value: Any) -> str:
    return "—" if _is_missing(value) else f"{float(value):.0%}"


def fmt_age(then: Any, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'."""
    now = now or datetime.now(UTC)
    seconds = max(0, int((now - pd.Timestamp(then).to_pydatetime()).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def status_line(status: pd.DataFrame, now: datetime | None = None) -> str:
    row = status.iloc[0]
    counts = f"{int(row['n_posts']):,} posts, {int(row['n_interactions']):,} interactions"
    if _is_missing(row["last_batch_at"]):
        return f"Stream: no batch committed yet · {counts} stored"
    dead = int(row["batch_dead"])
    dead_note = f", {dead:,} dead-lettered" if dead else ""
    n_batches = int(row["n_batches"])
    return (f"Stream: last batch {fmt_age(row['last_batch_at'], now)} · {counts}{dead_note} "
            f"({n_batches:,} batch{'' if n_batches == 1 else 'es'})")


# --------------------------------------------------------------------------------------------
# Chart


def polarization_chart(series: pd.DataFrame, title: str) -> alt.LayerChart:
    """Observed mean interaction score, forecast line, prediction band and flagged points."""
    color = alt.Color("series:N", title=None,
                      scale=alt.Scale(domain=SERIES_DOMAIN, range=SERIES_RANGE),
                      legend=alt.Legend(orient="top", symbolType="circle"))
    x = alt.X("ts:T", title="window start (UTC)")
    y_title = "polarization (mean interaction score, 0–10)"

    band_df = series.dropna(subset=["lower", "upper"])
    band = alt.Chart(band_df).mark_area(opacity=0.18, color=SERIES_RANGE[1]).encode(
        x=x, y=alt.Y("lower:Q", title=y_title), y2="upper:Q",
        tooltip=[alt.Tooltip("ts:T", title="window"),
                 alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f")])

    line_layers = []
    for name, column, dash in (("observed", "y", [1, 0]), ("forecast", "forecast", [5, 3])):
        line_df = series.dropna(subset=[column]).assign(series=name)
        line_layers.append(alt.Chart(line_df).mark_line(strokeWidth=2, strokeDash=dash).encode(
            x=x, y=alt.Y(f"{column}:Q", title=y_title, scale=alt.Scale(zero=False)),
            color=color,
            tooltip=[alt.Tooltip("ts:T", title="window"), "series:N",
                     alt.Tooltip(f"{column}:Q", title=name, format=".2f")]))

    flag_tooltip = [alt.Tooltip("ts:T", title="window"), alt.Tooltip("series:N", title="flag"),
                    alt.Tooltip("y:Q", title="observed", format=".2f"),
                    alt.Tooltip("forecast:Q", format=".2f"),
                    alt.Tooltip("lower:Q", format=".2f"), alt.Tooltip("upper:Q", format=".2f")]
    flag_layers = []
    for flag, shape in (("spike", "triangle-up"), ("dip", "triangle-down")):
        flag_df = series[series["flag"] == flag].assign(series=flag)
        flag_layers.append(alt.Chart(flag_df).mark_point(
            shape=shape, filled=True, size=120, opacity=1).encode(
            x=x, y=alt.Y("y:Q", title=y_title), color=color, tooltip=flag_tooltip))

    return alt.LayerChart(layer=[band, *line_layers, *flag_layers], title=title, height=340)


# --------------------------------------------------------------------------------------------
# Sections


def render_topic_cards(overview: pd.DataFrame, names: dict[str, str]) -> None:
    rows = [row for _, row in overview.iterrows()]
    cols: list[Any] = []
    for start in range(0, len(rows), CARDS_PER_ROW):  # wrap so many topics stay readable
        cols.extend(st.columns(CARDS_PER_ROW)[:len(rows) - start])
    for col, row in zip(cols, rows, strict=True):
        topic = str(row["topic"])
        with col, st.container(border=True):
            st.markdown(f"**{names.get(topic, topic)}**")
            st.caption(f"window from {pd.Timestamp(row['window_start']):%Y-%m-%d %H:%M} UTC")
            delta = None
            if not _is_missing(row["mean_score"]) and not _is_missing(row["prev_mean_score"]):
                delta = f"{float(row['mean_score']) - float(row['prev_mean_score']):+.2f}"
            spark = row["recent_scores"]
            spark_data = [float(v) for v in spark] if spark is not None and len(spark) else None
            a, b, c = st.columns(3)
            a.metric("Polarization score", fmt_score(row["mean_score"]), delta,
                     delta_color="inverse", chart_data=spark_data,
                     help="Mean interaction score of the latest window (0 = friendly "
                          "agreement, 10 = hostile disagreement).")
            b.metric("Extreme share", fmt_share(row["extreme_share"]),
                     help="Share of conversations whose mean score is above the extreme "
                          "threshold.")
            c.metric("Volume", f"{int(row['volume']):,}", help="Posts in the latest window.")


def render_topic_detail(path: Path, topic: str, name: str, metric: str) -> None:
    series = queries.topic_series(path, topic, metric)
    if series.empty:
        st.info(f"No windows for {name} yet.")
    else:
        st.altair_chart(polarization_chart(series, f"{name}: polarization over time"),
                        width="stretch")
        n_spikes = int((series["flag"] == "spike").sum())
        n_dips = int((series["flag"] == "dip").sum())
        st.caption(f"{n_spikes} spike(s), {n_dips} dip(s) flagged · shaded band = prediction "
                   f"interval of the forecast")

    st.subheader("Most polarized conversations")
    convs = queries.top_conversations(path, topic, TOP_CONVERSATIONS)
    if convs.empty:
        st.info(f"No scored conversations for {name} yet.")
        return
    st.dataframe(
        convs[["conversation_id", "root_text", "mean_score", "n_interactions", "last_at"]],
        hide_index=True,
        column_config={
            "conversation_id": st.column_config.TextColumn("conversation"),
            "root_text": st.column_config.TextColumn("opening post", width="large"),
            "mean_score": st.column_config.ProgressColumn(
                "polarization", min_value=0.0, max_value=10.0, format="%.2f"),
            "n_interactions": st.column_config.NumberColumn("interactions"),
            "last_at": st.column_config.DatetimeColumn("last reply (UTC)",
                                                       format="YYYY-MM-DD HH:mm"),
        })


def render_live(path: Path, names: dict[str, str], metric: str) -> None:
    """Everything that reads the warehouse; re-run on a timer by ``st.fragment``."""
    try:
        status = queries.stream_status(path)
        overview = queries.topics_overview(path)
    except FileNotFoundError:
        st.info(f"No data yet — {EMPTY_HINT}.")
        st.caption(f"Waiting for the warehouse file `{path}`.")
        return
    except Exception as exc:  # duckdb.Error and friends: show, keep refreshing
        st.error(f"Could not read the warehouse `{path}`: {exc}")
        return

    st.caption(status_line(status))
    if overview.empty:
        st.info(f"No scored windows yet — the stream has not aggregated any posts. "
                f"Keep it running, or {EMPTY_HINT}.")
        return

    render_topic_cards(overview, names)
    topics = list(overview["topic"])
    topic = st.selectbox("Topic", topics, key="topic",
                         format_func=lambda t: names.get(t, t))
    if topic is not None:
        render_topic_detail(path, str(topic), names.get(str(topic), str(topic)), metric)


def main() -> None:
    st.set_page_config(page_title="polarwatch", page_icon="🧭", layout="wide")
    st.title("polarwatch — polarization monitor")
    try:
        cfg = load_config()
    except ConfigError as exc:
        st.error(f"Configuration error: {exc}")
        return
    try:
        names = {t.id: t.name for t in cfg.load_topics()}
    except ConfigError as exc:
        st.warning(f"Topic names unavailable ({exc}); showing topic ids.")
        names = {}
    path = cfg.warehouse_path

    live = st.sidebar.toggle(f"Live refresh (every {REFRESH_SECONDS} s)", value=True)
    st.sidebar.caption(f"Warehouse: `{path}`")
    st.fragment(render_live, run_every=REFRESH_SECONDS if live else None)(
        path, names, cfg.forecast.metric)


if __name__ == "__main__":  # streamlit runs the script as __main__; plain imports stay inert
    main()
