"""What the report shows, read from the warehouse: plain SQL over short read-only
connections (the forecast's rows, the active flags, the conversations driving them, the
event studies and the analysts' random labels), plus the ``--since`` / ``--every`` parsers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.alerts.delivery import active_flags
from forecast.event_conversations import event_studies
from forecast.series import METRICS, future_windows, newest_allowed
from polarwatch.config import Config
from polarwatch.errors import ConfigError, PolarwatchError
from polarwatch.events import Event, events_path, load_events
from polarwatch.fields import parse_duration
from polarwatch.reads import CONVERSATIONS, SIDE_CONSISTENCY_SQL, random_sample_sql
from polarwatch.warehouse import connect, missing_columns
from scoring.label_accuracy import under_sides
from scoring.side_check import SideCheck, side_check

LOG = logging.getLogger(__name__)
DRIVERS_PER_FLAG = 5  # conversations listed under each active flag


def parse_since(text: str | None, latest: datetime | None) -> datetime | None:
    """A date / ISO time (UTC when naive), or a duration counted back from ``latest``."""
    if not text:
        return None
    try:
        back = parse_duration(text)
    except ConfigError:
        back = None  # not a duration: a date or time
    if back is not None:
        # the reference is the newest window (not known when the option is parsed: now)
        reference = latest if latest is not None else datetime.now(UTC)
        try:
            start = reference - back
        except OverflowError:
            start = None
        if start is None or start < pd.Timestamp.min.tz_localize(UTC):
            raise ConfigError(f"--since: {text} reaches back {back.days:,} days, before "
                              f"{pd.Timestamp.min:%Y-%m-%d}, the earliest time a series can "
                              f"hold; give a shorter duration, a date, or no --since for all "
                              f"data") from None
        return None if latest is None else start
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ConfigError(f"--since: expected 2026-03-01, an ISO time or 7d / 48h, got "
                          f"{text!r}") from None
    return (ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)).to_pydatetime()


def _read(path: Path, sql: str, params: list[Any]) -> pd.DataFrame:
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute(sql, params).df()
    return df


@dataclass
class TopicData:
    topic: str
    name: str
    windows: pd.DataFrame  # ts, mean_score, extreme_share, hostility_share, volume
    forecasts: pd.DataFrame  # forecasts rows of the metric (observed + future)
    active: pd.DataFrame  # active flags (forecast.alerts.delivery.active_flags)
    drivers: dict[Any, pd.DataFrame] = field(default_factory=dict)  # flag ts -> conversations
    events: list[Event] = field(default_factory=list)
    # the topic's random-sample analyst labels (task, value, model_value): its measured accuracy
    labels: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["task", "value", "model_value"]))
    # do its sides follow its replies' agreement? None with too few pairs (scoring.side_check)
    sides: SideCheck | None = None
    # windows with a value of the forecast metric, since the first (what the forecast fits;
    # too few and it skips the topic); None when the metric is not a topic_windows column
    observed: int | None = None


def random_labels(path: Path) -> pd.DataFrame:
    """Every analyst label of the random sample (topic, task, value, pro_description,
    anti_description, model_value; see ``polarwatch.reads.RANDOM_SAMPLE_LABELS_SQL``): the
    unbiased sample the topic's accuracy is measured on (the dashboard's Label page writes
    them); empty on a file from before the ``labels`` table."""
    with connect(path, read_only=True) as con:
        missing = missing_columns(con, "labels")
        if "value" in missing:
            return pd.DataFrame(columns=["topic", "task", "value", "pro_description",
                                         "anti_description", "post_gone", "model_value"])
        df: pd.DataFrame = con.execute(
            random_sample_sql("pro_description" not in missing)).df()
    return df


def drivers(path: Path, topic: str, start: Any, end: Any,
            limit: int = DRIVERS_PER_FLAG) -> pd.DataFrame:
    """Conversations with the most interaction-score mass in [start, end) on ``topic``, each
    named by its platform and its id there (two platforms' threads may share an id)."""
    return _read(path, f"""
        WITH roots AS (SELECT platform, conversation_id, any_value(text) AS root_text
                       FROM posts WHERE parent_id IS NULL GROUP BY ALL)
        SELECT i.platform, i.conversation_id, count(*) AS n_in_window,
               avg(i.score) AS window_score, any_value(conversations.mean_score) AS mean_score,
               any_value(r.root_text) AS root_text
        FROM interactions i JOIN {CONVERSATIONS} USING (platform, conversation_id)
        LEFT JOIN roots r USING (platform, conversation_id)
        WHERE i.topic = ? AND i.created_at >= ? AND i.created_at < ?
        GROUP BY i.platform, i.conversation_id
        ORDER BY sum(i.score) DESC, i.conversation_id, i.platform LIMIT ?""",
                 [topic, start, end, limit])


def gather(cfg: Config, topics: Sequence[str] | None = None,
           since: str | None = None) -> tuple[list[TopicData], pd.DataFrame, dict[str, Any]]:
    """Everything the report shows: per-topic data, the event-study table and run facts."""
    path, metric = cfg.warehouse_path, cfg.forecast.metric
    until = newest_allowed(cfg.ingest.max_future_skew_hours)  # as `forecast` reads them
    windows = _read(path, "SELECT topic, window_start AS ts, window_end, mean_score, "
                          "extreme_share, hostility_share, volume FROM topic_windows "
                          "WHERE window_start <= ? ORDER BY topic, ts", [until])
    with connect(path, read_only=True) as con:
        left_out = future_windows(con, until)
    for topic, note in left_out.items():
        LOG.warning(f"report: {topic}: {note}")
    known = sorted(set(windows["topic"]))
    if topics:
        unknown = [t for t in topics if t not in known]
        if unknown:
            raise PolarwatchError(f"no windows for topic(s) {', '.join(unknown)} in {path}; "
                                  f"topics with data: {', '.join(known) or 'none'}")
    chosen = list(dict.fromkeys(topics)) if topics else known  # --topic X --topic X: once
    latest = windows["ts"].max() if len(windows) else None
    start = parse_since(since, None if latest is None else pd.Timestamp(latest).to_pydatetime())
    freq = (windows["window_end"] - windows["ts"]).mode().iloc[0] if len(windows) \
        else pd.Timedelta(hours=1)
    fc = _read(path, "SELECT * FROM forecasts WHERE metric = ? ORDER BY topic, ts", [metric])
    observed = (_read(path, f'SELECT topic, count("{metric}") AS n FROM topic_windows '
                            f"WHERE window_start <= ? GROUP BY topic", [until])
                .set_index("topic")["n"]
                if metric in METRICS else pd.Series(dtype=int))
    act = active_flags(path, metric)
    labels = random_labels(path)
    sides = _read(path, SIDE_CONSISTENCY_SQL, []).set_index("topic")
    try:
        configured = cfg.load_topics()
    except PolarwatchError:
        configured = []
    names = {t.id: t.name for t in configured}
    sides_now = {t.id: (t.pro, t.anti) for t in configured}  # stance labels are read under them
    calendar = [e for e in load_events(events_path(cfg.root), list(names) or None)
                if e.topic in chosen
                and (start is None or e.effective_end >= start - timedelta(days=3))]
    data = []
    for topic in chosen:
        w = windows[windows["topic"] == topic]
        f = fc[fc["topic"] == topic]
        if start is not None:
            w = w[w["ts"] >= start]
            f = f[f["ts"] >= start]
        a = act[act["topic"] == topic]
        d = TopicData(topic, names.get(topic, topic), w.reset_index(drop=True),
                      f.reset_index(drop=True), a.reset_index(drop=True),
                      events=[e for e in calendar if e.topic == topic],
                      labels=under_sides(labels[labels["topic"] == topic]
                                         .drop(columns="topic"), sides_now.get(topic)),
                      sides=side_check(sides.loc[topic]) if topic in sides.index else None,
                      observed=int(observed[topic]) if topic in observed.index else None)
        for ts in a["ts"]:
            d.drivers[ts] = drivers(path, topic, ts, ts + freq)
        data.append(d)
    studies = event_studies(path, calendar, extreme_threshold=cfg.aggregate.extreme_threshold)
    facts = {"metric": metric, "since": start, "latest": latest, "freq": freq,
             "left_out": left_out,
             "horizon": cfg.forecast.horizon, "warehouse": path,
             "threshold": cfg.aggregate.extreme_threshold,
             "min_labels": cfg.dashboard.min_validation_labels,
             "min_accuracy": cfg.dashboard.min_stance_accuracy}
    return data, studies, facts
