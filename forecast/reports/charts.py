"""The report's chart per topic: a PNG drawn with matplotlib's Agg canvas directly (no pyplot
state, no display needed), returned as base64 for an inline ``<img>``."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

import pandas as pd

from forecast.alarms import decided_by
from forecast.reports.text import LITERAL, chart_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from forecast.reports.gather import TopicData

CLASS_COLORS = {"spike": "#d62728", "dip": "#1f77b4", "reactive": "#ff7f0e",
                "anticipatory": "#9467bd"}
EVENT_COLORS = {"scheduled": "#9467bd", "sudden": "#ff7f0e"}
TITLE_CHARS = 100  # a title line at fontsize 11 on the 10-inch figure: shortened until it fits
EVENT_CHARS = 60  # an event's label at the top of the chart
LEGEND_CHARS = 30  # a flag class in the legend


def chart_png(d: TopicData, metric: str, threshold: float | None) -> str:
    """The topic's chart (:func:`figure`) as a base64 PNG."""
    buf = io.BytesIO()
    figure(d, metric, threshold).savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()


def figure(d: TopicData, metric: str, threshold: float | None) -> Figure:
    """The topic's chart: observed, the model's band, horizon forecast, flags with the band
    each was judged on, events. Names from the data are drawn as they are (:data:`LITERAL`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    f = d.forecasts
    observed = f[f["flag"] != "forecast"] if len(f) else f
    future = f[f["flag"] == "forecast"] if len(f) else f
    step = _step(d.windows)
    if len(d.windows) and metric in d.windows:
        line = with_breaks(d.windows, [metric], step)  # no line across missing windows
        alone = isolated(line[metric])  # a line of one point draws nothing: a marker
        ax.plot(line["ts"], line[metric], color="#333", lw=1.2, label=metric,
                marker="o" if alone else None, markevery=alone or None, ms=5)
    # the model's band; rows judged by the detector carry its alarm band instead (drawn below)
    judged = (observed["model"].map(lambda m: decided_by(m) is not None)
              if len(observed) and "model" in observed else pd.Series(False, index=observed.index))
    for part, alpha in ((with_breaks(observed[~judged], ["lower", "upper"], step), 0.15),
                        (future, 0.3)):
        if len(part) and part["lower"].notna().any():
            ax.fill_between(part["ts"], part["lower"], part["upper"], color="#1f77b4",
                            alpha=alpha, lw=0)
    if len(future):
        ax.plot(future["ts"], future["forecast"], "--", color="#1f77b4", lw=1.2,
                label="forecast", marker="o" if len(future) == 1 else None, ms=4)
    flagged = observed[~observed["flag"].isin(["none", "forecast"])] if len(observed) else f
    for cls, part in flagged.groupby("flag") if len(flagged) else []:
        color = CLASS_COLORS.get(str(cls), "#000")
        ax.scatter(part["ts"], part["y"], color=color, s=28, zorder=3,
                   label=chart_label(cls, LEGEND_CHARS))
        own = part[judged.reindex(part.index, fill_value=False)]
        if len(own):  # the flag's own band: the detector's alarm band around its forecast
            ax.vlines(own["ts"], own["lower"], own["upper"], color=color, lw=2, alpha=0.5)
            ax.scatter(own["ts"], own["forecast"], color=color, marker="_", s=80, zorder=3)
    for ev in d.events:
        ax.axvspan(pd.Timestamp(ev.start), pd.Timestamp(ev.effective_end), alpha=0.25,
                   color=EVENT_COLORS.get(ev.kind, "#999"))
        ax.axvline(pd.Timestamp(ev.start), color=EVENT_COLORS.get(ev.kind, "#999"), lw=1)
        ax.annotate(chart_label(f"{ev.name} ({ev.kind})", EVENT_CHARS),
                    (pd.Timestamp(ev.start), 1.0), fontsize=8,
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color=EVENT_COLORS.get(ev.kind, "#555"),
                    annotation_clip=False, **LITERAL)
    if threshold is not None and metric == "mean_score":
        ax.axhline(threshold, color="#d62728", lw=0.8, ls=":", label=f"extreme ({threshold:g})")
    ax.grid(alpha=0.3)
    for text in ax.legend(loc="upper left", fontsize=8, ncols=3).get_texts():
        text.update(LITERAL)
    _fit_axes(ax, d, metric, threshold)
    fig.autofmt_xdate()
    _fit_title(fig, ax, d.name, f": {metric}")
    fig.tight_layout()
    return fig


def _step(windows: pd.DataFrame) -> pd.Timedelta:
    """The windows' width (the commonest ``window_end - ts``; one hour without windows)."""
    if len(windows) and "window_end" in windows:
        widths = (pd.to_datetime(windows["window_end"]) - pd.to_datetime(windows["ts"])).mode()
        if len(widths):
            return pd.Timedelta(widths.iloc[0])
    return pd.Timedelta(hours=1)


def with_breaks(frame: pd.DataFrame, columns: list[str], step: pd.Timedelta) -> pd.DataFrame:
    """``frame`` by ``ts`` with a row of NaN ``columns`` at the end of each window that the next
    row does not follow (a window is ``ts`` to its ``window_end``, else ``ts + step``): a line
    or band drawn from it stops at missing windows instead of bridging them with values never
    observed (posts from 2000 and 2013 were one 13-year diagonal)."""
    if len(frame) < 2:
        return frame
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)
    ts = pd.to_datetime(frame["ts"])
    ends = pd.to_datetime(frame["window_end"]) if "window_end" in frame else ts + step
    gap = ts.shift(-1) > ends
    if not gap.any():
        return frame
    values = {c: pd.to_numeric(frame[c], errors="coerce").astype(float) for c in columns}
    breaks = {c: float("nan") for c in columns}
    out = pd.concat([pd.DataFrame({"ts": ts, **values}),
                     pd.DataFrame({"ts": ends[gap].astype(ts.dtype), **breaks})],
                    ignore_index=True)
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def isolated(values: pd.Series) -> list[int]:
    """Positions of the values with no value drawn next to them (NaN or nothing either side)."""
    have = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    return [i for i in range(len(have)) if have[i]
            and (i == 0 or not have[i - 1]) and (i == len(have) - 1 or not have[i + 1])]


def _fit_axes(ax: Any, d: TopicData, metric: str, threshold: float | None) -> None:
    """Limits for what autoscaling gets wrong: one point in time (matplotlib spans years around
    it) gets one window either side; one value (a constant series) a tenth of it either side,
    not below 0 for a value that is not."""
    f = d.forecasts
    times = {pd.Timestamp(t) for frame in (d.windows, f) if len(frame) and "ts" in frame
             for t in frame["ts"].dropna()}
    if len(times) == 1:
        t = times.pop()
        step = (pd.Timestamp(d.windows["window_end"].iloc[0]) - t
                if "window_end" in d.windows and len(d.windows) else pd.Timedelta(hours=1))
        ax.set_xlim(t - step, t + step)
    columns = [d.windows[metric]] if len(d.windows) and metric in d.windows else []
    columns += [f[c] for c in ("y", "forecast", "lower", "upper") if len(f) and c in f]
    if threshold is not None and metric == "mean_score":
        columns.append(pd.Series([threshold]))
    values = {float(v) for c in columns for v in pd.to_numeric(c, errors="coerce").dropna()}
    if len(values) == 1:
        v = values.pop()
        pad = abs(v) * 0.1 or 1.0
        ax.set_ylim(max(0.0, v - pad) if v >= 0 else v - pad, v + pad)


def _fit_title(fig: Any, ax: Any, name: str, suffix: str) -> None:
    """The topic's name and `suffix` on at most two lines, the name shortened with an ellipsis
    until the title fits the figure's width (a centred title wider than the figure loses both
    ends)."""
    chars = TITLE_CHARS
    renderer = fig.canvas.get_renderer()
    while True:
        text = ax.set_title(chart_label(name, chars, 2, suffix), fontsize=11, **LITERAL)
        if text.get_window_extent(renderer).width <= fig.bbox.width * 0.98 or chars <= 20:
            return
        chars = int(chars * 0.85)
