"""Overview: one card per topic — latest polarization, shares, volume, trend, active flags."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.analysis import (
    TREND_THRESHOLD,
    flag_class,
    fmt_score,
    fmt_share,
    fmt_uncertain,
    is_missing,
    sides_verdict,
    trend_arrow,
)
from dashboard.common import Context, ctx, live, no_windows, read
from dashboard.safety import md_text
from polarwatch.config import load_config
from polarwatch.errors import ConfigError

CARDS_PER_ROW = 2  # four metrics per card need the width
FLAG_COLOURS = {"spike": "red", "dip": "green", "anticipatory": "orange", "reactive": "violet"}


def flag_badges(active: pd.DataFrame) -> str:
    """Markdown badges, one per active flag: class, metric and window (escaped: a damaged or
    foreign warehouse may hold anything there)."""
    badges = []
    for _, row in active.iterrows():
        cls = flag_class(row)
        colour = FLAG_COLOURS.get(cls, "gray")
        badges.append(f":{colour}-badge[{md_text(cls)} · {md_text(row['metric'])} · "
                      f"{pd.Timestamp(row['ts']):%m-%d %H:%M}]")  # stored values: as text
    return " ".join(badges)


@st.cache_data(ttl=60)
def min_volume() -> int:
    """[forecast] min_volume: below it a window is thin (10 if the config cannot be read)."""
    try:
        return int(load_config().forecast.min_volume)
    except (ConfigError, AttributeError):
        return 10


def interval_line(row: Any) -> str:
    """'95 % intervals: score 3.6–9.9 (3 interactions) · extreme … · hostile …'."""
    parts = []
    for metric, label, n_col, unit in (("mean_score", "score", "n_interactions",
                                        "interactions"),
                                       ("extreme_share", "extreme", "n_conversations",
                                        "conversations"),
                                       ("hostility_share", "hostile", "volume", "posts")):
        text = fmt_uncertain(metric, row[metric], row[n_col])
        if "(" in text:
            n = 0 if is_missing(row[n_col]) else int(row[n_col])
            parts.append(f"{label} {text.split('(')[1].rstrip(')')} ({n:,} {unit})")
    return "95 % intervals: " + " · ".join(parts) if parts else "No interval (empty window)."


def sparkline(values: Any) -> list[float] | None:
    """The card's sparkline from ``recent_scores``: None when the topic has no scored window
    among its last ones (the list is then NULL: pd.NA, None or NaN), else its non-missing
    values."""
    if values is None or not hasattr(values, "__len__") or isinstance(values, str):
        return None  # pd.NA / NaN: a topic with no scored interaction lately
    points = [float(v) for v in values if not is_missing(v)]
    return points or None


def change(row: Any) -> tuple[str | None, bool]:
    """(the delta pill's text, whether it is flat) for the latest score against the mean of
    the windows before it: flat when the trend arrow says so (a move under TREND_THRESHOLD), so
    the pill's colour and direction agree with the arrow."""
    if is_missing(row["mean_score"]) or is_missing(row["trend_base"]):
        return None, True
    delta = float(row["mean_score"]) - float(row["trend_base"])
    if abs(delta) < TREND_THRESHOLD:
        return f"{abs(delta):.2f}" if round(delta, 2) == 0 else f"{delta:+.2f}", True
    return f"{delta:+.2f}", False


def fmt_count(value: Any) -> str:
    return "—" if is_missing(value) else f"{int(value):,}"


def render_card(c: Context, row: Any, active: pd.DataFrame) -> None:
    topic = str(row["topic"])
    st.markdown(f"#### {md_text(c.name(topic))}")
    st.caption(f"latest window {pd.Timestamp(row['window_start']):%Y-%m-%d %H:%M} UTC")
    n = 0 if is_missing(row["n_interactions"]) else int(row["n_interactions"])
    thin = n < min_volume()
    arrow = "" if thin else trend_arrow(row["mean_score"], row["trend_base"])
    delta, flat = change(row) if arrow else (None, True)
    a, b = st.columns(2)
    d, e = st.columns(2)
    a.metric(f"Polarization {arrow}".strip(), fmt_score(row["mean_score"]), delta,
             delta_color="off" if flat else "inverse", delta_arrow="off" if flat else "auto",
             chart_data=sparkline(row["recent_scores"]),
             help=f"Mean interaction score of the latest window (0 = friendly agreement, "
                  f"10 = hostile disagreement) over its {n:,} interaction(s); its 95 % "
                  f"interval is under the card. The arrow compares it with the mean of the "
                  f"windows before it (delta = latest − that mean); none on a thin window.")
    b.metric("Extreme share", fmt_share(row["extreme_share"]),
             help="Share of conversations whose mean score is above the extreme threshold.")
    d.metric("Hostility share", fmt_share(row["hostility_share"]),
             help="Share of posts labelled hostile (affect = yes).")
    e.metric("Volume", fmt_count(row["volume"]), help="Posts in the latest window.")
    st.caption(interval_line(row))
    if thin:
        st.markdown(f":orange-badge[thin window] {n:,} interaction(s), fewer than "
                    f"`[forecast] min_volume` = {min_volume()}: the values above are uncertain "
                    f"(see the intervals) and this window neither raises nor resolves flags.")
    verdict = sides_verdict(row)
    if verdict:
        (st.markdown if verdict[0] else st.caption)(verdict[1])
    if not is_missing(row.get("replies")) and int(row["replies"]) \
            and not is_missing(row.get("scored")):
        st.caption(f"Scored replies: {fmt_share(row['scored'] / row['replies'])} "
                   f"({int(row['scored']):,} of {int(row['replies']):,} replies with a known "
                   f"parent; the rest have an unclear stance on one side and are not in the "
                   f"mean).")
    if active.empty:
        st.caption("No active flags.")
    else:
        st.markdown(f"**Active flags:** {flag_badges(active)}")
    st.page_link("views/topic.py", label=f"Open {md_text(c.name(topic))}", icon=":material/show_chart:",
                 query_params={"topic": topic})


def render_overview(c: Context) -> None:
    overview = read(c, queries.topics_overview)
    if overview is None:
        return
    if overview.empty:
        no_windows(c)
        return
    all_flags = read(c, queries.flags)
    if all_flags is None:
        return
    active = all_flags[all_flags["active"].astype(bool)] if len(all_flags) else all_flags
    order = [t for t in c.names if t in set(overview["topic"])]
    order += [t for t in overview["topic"] if t not in order]
    rows = overview.set_index("topic", drop=False).loc[order]
    scored = read(c, queries.scored_share)  # what the polarization mean covers
    if scored is not None and len(scored):
        rows = rows.join(scored.set_index("topic")[["replies", "scored"]])
    sides = read(c, queries.side_consistency)  # do the sides follow agreement?
    if sides is not None and len(sides):
        rows = rows.join(sides.set_index("topic"))
    cols: list[Any] = []
    for start in range(0, len(rows), CARDS_PER_ROW):  # wrap so many topics stay readable
        cols.extend(st.columns(CARDS_PER_ROW)[:len(rows) - start])
    for col, (_, row) in zip(cols, rows.iterrows(), strict=True):
        with col, st.container(border=True):
            render_card(c, row, active[active["topic"] == row["topic"]])


context = ctx()
st.title("Overview")
st.caption("Latest window per topic, with 95 % intervals from the interactions / posts behind "
           "each value. A flag is *active* while its episode is open (from its alarm until the "
           "series has been quiet for the refractory period).")
live(context, render_overview, context)
