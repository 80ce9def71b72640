"""The report's HTML: frames in, one document out, through the jinja2 template
``templates/report.html.j2`` with autoescaping on (a topic, event or explanation holding
``<script>`` is shown as text). Pure: no DuckDB, no clock unless ``now`` is omitted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from forecast.alarms import EVENT_ROUTINE, band_text, decided_by
from forecast.models import MIN_POINTS
from forecast.reports.charts import chart_png
from polarwatch.display import isolated, name_text
from scoring.label_accuracy import Status, TaskAccuracy, accuracy_by_task, validation_status

if TYPE_CHECKING:
    from forecast.reports.gather import TopicData

RECENT_FLAGS = 15  # rows of the recent-flags table per topic
# Table columns holding ids and names: bidi controls shown, right-to-left names isolated
# (polarwatch.display.name_text); every other text cell is isolated as typed.
NAME_COLUMNS = frozenset({"topic", "platform", "conversation_id", "flag", "flags", "event", "kind"})

_ENV = Environment(loader=PackageLoader("forecast.reports", "templates"),
                   autoescape=select_autoescape(["html", "html.j2"]),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]
    empty: str  # shown instead when there are no rows


def cell(value: Any) -> str:
    """One table cell as text (the template escapes it)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "—"
    if isinstance(value, (pd.Timestamp, datetime)):
        return f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def table(df: pd.DataFrame, columns: dict[str, str], empty: str) -> Table:
    """``df[columns]`` with headers ``columns.values()``; text from the data cannot reorder
    the text around it (:data:`NAME_COLUMNS`)."""
    def text(value: Any, column: str) -> str:
        if not isinstance(value, str):
            return cell(value)
        return name_text(value) if column in NAME_COLUMNS else isolated(value)

    rows = [] if df.empty else [[text(r[c], c) for c in columns] for _, r in df.iterrows()]
    return Table(list(columns.values()), rows, empty)


def _pm(mean: Any, sem: Any, pct: bool = False) -> str:
    if pd.isna(mean):
        return "—"
    fmt = (lambda v: f"{v:.0%}") if pct else (lambda v: f"{v:.2f}")
    return fmt(mean) + ("" if pd.isna(sem) else f" ± {fmt(sem)}")


@dataclass(frozen=True)
class Accuracy:
    """A topic's labels measured against its analysts' random labels."""

    status: Status  # scoring.label_accuracy.validation_status
    sentence: str
    table: Table


def _two(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _interval(m: TaskAccuracy) -> str:
    return f"{m.lower:.2f}–{m.upper:.2f}"


def accuracy(labels: pd.DataFrame, min_labels: int, min_accuracy: float) -> Accuracy:
    """Per task, the model's accuracy (Wilson 95 % interval) and macro-F1 on the topic's random
    analyst labels (rows task, value, model_value), and the topic's status: "not validated"
    under `min_labels` random stance labels, "unreliable" when the stance accuracy is under
    `min_accuracy` ([dashboard] min_validation_labels, min_stance_accuracy), as the Topic page
    (``scoring.label_accuracy``)."""
    measured = accuracy_by_task(
        (str(t), str(v), None if m is None or pd.isna(m) else str(m))
        for t, v, m in zip(labels["task"], labels["value"], labels["model_value"], strict=True))
    stance = measured.get("stance")
    status = validation_status(stance, min_labels, min_accuracy)
    if status == "not validated" or stance is None or stance.accuracy is None:
        sentence = (f"Not validated: {stance.n if stance else 0} of the {min_labels} random "
                    f"stance labels needed (the dashboard's Label page); this topic's scores "
                    f"are unmeasured.")
    elif status == "unreliable":
        sentence = (f"Unreliable: stance accuracy {stance.accuracy:.2f} (95 % interval "
                    f"{_interval(stance)}, {stance.n} random labels) is below the floor "
                    f"{min_accuracy:.2f} ([dashboard] min_stance_accuracy). The scores are "
                    f"shown, but do not trust them.")
    else:
        sentence = (f"Validated: stance accuracy {stance.accuracy:.2f} (95 % interval "
                    f"{_interval(stance)}) on {stance.n} random labels.")
    rows = [[m.task, str(m.n), _two(m.accuracy), _interval(m), _two(m.macro_f1)]
            for m in measured.values()]
    return Accuracy(status, sentence, Table(
        ["label", "random labels", "accuracy", "95 % interval", "macro-F1"], rows,
        "No random labels yet."))


def summary_row(d: TopicData, metric: str, status: str) -> dict[str, Any]:
    last = d.windows.iloc[-1] if len(d.windows) else None
    fut = d.forecasts[d.forecasts["flag"] == "forecast"] if len(d.forecasts) else d.forecasts
    return {"topic": d.name, "window": None if last is None else last["ts"],
            "mean_score": None if last is None else last["mean_score"],
            "extreme_share": None if last is None else _pm(last["extreme_share"], None, True),
            "volume": None if last is None else int(last["volume"]),
            "next": None if fut.empty else fut["forecast"].iloc[0],
            "end": None if fut.empty else fut["forecast"].iloc[-1],
            "flags": ", ".join(str(x) for x in d.active["flag"]) or "none",
            "labels": status}


def no_forecast(d: TopicData, metric: str) -> str:
    """Why the topic has no forecast: too few windows (the forecast skips it), else it has not
    been run since the topic had enough."""
    if d.observed is not None and d.observed < MIN_POINTS:
        return (f"No forecast: {d.observed} window(s) with a {metric} value, at least "
                f"{MIN_POINTS} are needed (`polarwatch forecast` skips the topic until then).")
    return "No forecast (run `polarwatch forecast`)."


def band_cell(row: Any) -> str:
    """A row's forecast and band, and whose they are (forecast.alarms.DETECTOR_MODEL)."""
    if any(pd.isna(row.get(k)) for k in ("forecast", "lower", "upper")):
        return "—"
    whose = ("the detector's alarm band" if decided_by(row.get("model")) is not None
             else "the forecast model's band")
    return (f"{row['forecast']:.4g} [{row['lower']:.4g}, {row['upper']:.4g}], {whose}")


def with_band(rows: pd.DataFrame, flags: bool = True) -> pd.DataFrame:
    """``rows`` with a ``band`` column: on flags the value against the band the flag was judged
    on and the test that decided (:func:`forecast.alarms.band_text`), else :func:`band_cell`."""
    if rows.empty or not {"forecast", "lower", "upper"} <= set(rows):
        return rows.assign(band=pd.Series(dtype=object))
    text = ([band_text(r["y"], r["forecast"], r["lower"], r["upper"], r.get("model"))
             for _, r in rows.iterrows()] if flags else
            [band_cell(r) for _, r in rows.iterrows()])
    return rows.assign(band=text)


def section(d: TopicData, metric: str, threshold: float | None,
            measured: Accuracy) -> dict[str, Any]:
    """One topic's part of the page (its chart drawn only when it has data)."""
    base = {"name": name_text(d.name), "topic": name_text(d.topic), "accuracy": measured,
            "sides": d.sides}
    if d.windows.empty and d.forecasts.empty:
        return {**base, "empty": True}
    fut = d.forecasts[d.forecasts["flag"] == "forecast"] if len(d.forecasts) else d.forecasts
    cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "band": "against its band",
            "anomaly_score": "score", "explanation": "why"}
    drivers = [(cell(ts), table(conv, {
        "conversation_id": "conversation", "platform": "platform",
        "n_in_window": "interactions in window",
        "window_score": "score in window", "mean_score": "conversation score",
        "root_text": "root post"}, "No scored interactions in that window."))
        for ts, conv in d.drivers.items()]
    flagged = d.forecasts[~d.forecasts["flag"].isin(["none", "forecast"])] \
        if len(d.forecasts) else d.forecasts
    recent = with_band(flagged.sort_values("ts", ascending=False).head(RECENT_FLAGS))
    recent_cols = {"ts": "window (UTC)", "flag": "class", "y": "value", "band": "against its band",
                   "explanation": "why"}
    routine = (d.forecasts[d.forecasts["episode_event"] == EVENT_ROUTINE]
               if "episode_event" in d.forecasts else d.forecasts.iloc[:0])
    routine = with_band(routine.sort_values("ts", ascending=False).head(RECENT_FLAGS), False)
    active = with_band(d.active)
    return {**base, "empty": False, "chart": chart_png(d, metric, threshold), "n_future": len(fut),
            "forecast": table(fut, {"ts": "window (UTC)", "forecast": metric, "lower": "lower",
                                    "upper": "upper"}, no_forecast(d, metric)),
            "active": table(active, {k: v for k, v in cols.items() if k in active},
                            "No active flags."),
            "drivers": drivers,
            "recent": table(recent, {k: v for k, v in recent_cols.items() if k in recent},
                            "No flags in the range."),
            "routine": table(routine, {"ts": "window (UTC)", "y": "value",
                                       "band": "band", "explanation": "why no flag"},
                             "No routine bursts in the range.")}


def studies_table(studies: pd.DataFrame) -> Table:
    if not studies.empty:
        studies = studies.assign(
            score=[_pm(m, s) for m, s in zip(studies["mean"], studies["sem"], strict=True)],
            extreme=[_pm(m, s, True) for m, s in zip(studies["extreme_share"],
                                                     studies["extreme_sem"], strict=True)])
    return table(studies, {"event": "event", "topic": "topic", "kind": "kind",
                           "start": "start (UTC)", "phase": "phase", "n": "conversations",
                           "score": "mean score ± SEM", "extreme": "extreme share ± SEM"},
                 "No events in the calendar for these topics (`polarwatch events add`).")


def render(data: list[TopicData], studies: pd.DataFrame, facts: dict[str, Any],
           now: datetime | None = None) -> str:
    """The report as one HTML document."""
    now = now or datetime.now(UTC)
    metric, horizon = facts["metric"], facts["horizon"]
    measured = [accuracy(d.labels, facts["min_labels"], facts["min_accuracy"]) for d in data]
    summary = table(pd.DataFrame([summary_row(d, metric, m.status)
                                  for d, m in zip(data, measured, strict=True)]),
                    {"topic": "topic", "window": "newest window (UTC)", "mean_score":
                     "mean score", "extreme_share": "extreme share", "volume": "posts",
                     "next": "forecast +1", "end": f"forecast +{horizon}",
                     "flags": "active flags", "labels": "labels"}, "No topics with data yet.")
    return _ENV.get_template("report.html.j2").render(
        now=f"{now:%Y-%m-%d %H:%M}", warehouse=str(facts["warehouse"]),
        latest=cell(facts["latest"]),
        since="since " + cell(facts["since"]) if facts["since"] else "all data",
        left_out=sorted(facts.get("left_out", {}).items()),
        metric=metric, horizon=horizon, summary=summary,
        sections=[section(d, metric, facts["threshold"], m)
                  for d, m in zip(data, measured, strict=True)],
        studies=studies_table(studies))
