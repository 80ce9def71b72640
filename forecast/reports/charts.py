"""The report's chart per topic: a PNG drawn with matplotlib's Agg canvas directly (no pyplot
state, no display needed), returned as base64 for an inline ``<img>``."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import pandas as pd

from forecast.alarms import decided_by

if TYPE_CHECKING:
    from forecast.reports.gather import TopicData

CLASS_COLORS = {"spike": "#d62728", "dip": "#1f77b4", "reactive": "#ff7f0e",
                "anticipatory": "#9467bd"}
EVENT_COLORS = {"scheduled": "#9467bd", "sudden": "#ff7f0e"}


def chart_png(d: TopicData, metric: str, threshold: float | None) -> str:
    """The topic's chart as a base64 PNG (observed, the model's band, horizon forecast, flags
    with the band each was judged on, events)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4), dpi=96)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    f = d.forecasts
    observed = f[f["flag"] != "forecast"] if len(f) else f
    future = f[f["flag"] == "forecast"] if len(f) else f
    if len(d.windows) and metric in d.windows:
        ax.plot(d.windows["ts"], d.windows[metric], color="#333", lw=1.2, label=metric)
    # the model's band; rows judged by the detector carry its alarm band instead (drawn below)
    judged = (observed["model"].map(lambda m: decided_by(m) is not None)
              if len(observed) and "model" in observed else pd.Series(False, index=observed.index))
    for part, alpha in ((observed[~judged], 0.15), (future, 0.3)):
        if len(part) and part["lower"].notna().any():
            ax.fill_between(part["ts"], part["lower"], part["upper"], color="#1f77b4",
                            alpha=alpha, lw=0)
    if len(future):
        ax.plot(future["ts"], future["forecast"], "--", color="#1f77b4", lw=1.2,
                label="forecast")
    flagged = observed[~observed["flag"].isin(["none", "forecast"])] if len(observed) else f
    for cls, part in flagged.groupby("flag") if len(flagged) else []:
        color = CLASS_COLORS.get(str(cls), "#000")
        ax.scatter(part["ts"], part["y"], color=color, s=28, zorder=3, label=str(cls))
        own = part[judged.reindex(part.index, fill_value=False)]
        if len(own):  # the flag's own band: the detector's alarm band around its forecast
            ax.vlines(own["ts"], own["lower"], own["upper"], color=color, lw=2, alpha=0.5)
            ax.scatter(own["ts"], own["forecast"], color=color, marker="_", s=80, zorder=3)
    for ev in d.events:
        ax.axvspan(pd.Timestamp(ev.start), pd.Timestamp(ev.effective_end), alpha=0.25,
                   color=EVENT_COLORS.get(ev.kind, "#999"))
        ax.axvline(pd.Timestamp(ev.start), color=EVENT_COLORS.get(ev.kind, "#999"), lw=1)
        ax.annotate(f"{ev.name} ({ev.kind})", (pd.Timestamp(ev.start), 1.0), fontsize=8,
                    xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", color=EVENT_COLORS.get(ev.kind, "#555"))
    if threshold is not None and metric == "mean_score":
        ax.axhline(threshold, color="#d62728", lw=0.8, ls=":", label=f"extreme ({threshold:g})")
    ax.set_title(f"{d.name}: {metric}", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode()
