"""The forecast stage: ``topic_windows`` -> one model per topic -> ``forecasts`` -> alerts.

Thin driver over :mod:`forecast.series` (read), :mod:`forecast.models` (the forecast band and
the horizon forecast), :mod:`forecast.detect` (the **causal** flags: the flag at t uses only the
windows up to t, exactly as it would have been raised live) and the event calendar
(:mod:`polarwatch.events`) that classifies each flag:

- **anticipatory**: the detector saw a build-up (sustained rise, an exceedance after one), or
  the forecast path crosses ``[aggregate] extreme_threshold`` within ``[forecast] horizon``,
  *and* a scheduled event of the topic starts within :data:`ANTICIPATION_DAYS` (the crossing
  rule is only on then); the explanation names the event. A rise with no scheduled event ahead
  is a **spike** ("an unexplained rise"): the class never contradicts the calendar it cites;
- **reactive**: an abrupt level jump without a build-up, or any upward flag from the window
  that holds a *sudden* event's start (a window is stamped with its start, so a daily window
  stamped 00:00 reacts to an event at 14:00) until :data:`REACTION_HOURS` after its end;
- **spike** / **dip**: an exceedance (or a change of behaviour) above / below the forecast.

Each explanation is the class in words, then :func:`forecast.explain.describe`: the test that
fired, its statistic and its alarm limit, in the metric's units and domain. A window as far out
as that at a routine time of day (:mod:`forecast.routine`) raises no flag; it carries
``episode_event = "routine"`` and an explanation that says so.

``forecast``/``lower``/``upper`` are the one-step-ahead band of the model chosen per series by
rolling one-step-ahead MAE (:func:`forecast.models.fit_predict`: local level, local trend or
damped seasonal ETS; parameters fitted on the whole series, the state filtered causally); ``flag``,
``anomaly_score`` (0..1) and ``explanation`` come from the causal detector. On the rows the
detector judged past its limit (an episode's alarm, a routine burst) they are the detector's
expected value and its point test's band at the alarm threshold, and ``model`` names the test
that decided (:data:`forecast.alarms.DETECTOR_MODEL`). All rows of one run
are written in one short DuckDB write transaction with ``INSERT OR REPLACE`` on the primary key
``(topic, metric, ts)``, so a rerun replaces rather than duplicates. When ``[alerts] webhooks``
are configured, :mod:`forecast.alerts.delivery` then sends the firing/resolved alerts (de-duplicated).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.alarms import (
    EVENT_ROUTINE,
    close_previous,
    judged_band,
)
from forecast.detect import DetectorConfig, StreamingDetector
from forecast.domains import Domain, domain_of
from forecast.event_calendar import topic_ids
from forecast.event_conversations import EVENT_STUDY_DAYS
from forecast.explain import TEST_NAMES, class_text, describe, describe_routine, resolved_text
from forecast.models import (
    FLAG_FORECAST,
    FLAG_NONE,
    MAX_SEASON,
    ForecastFit,
    SeriesSkipped,
    fit_predict,
)
from forecast.seasons import season_points
from forecast.series import (
    COUNT_METRICS,
    check_horizon,
    newest_allowed,
    read_series,
    validate_metric,
)
from forecast.summary import ForecastSummary
from polarwatch.config import Config
from polarwatch.events import Event, events_path, load_events
from polarwatch.tables import ForecastRow
from polarwatch.warehouse import init_schema, transaction

LOG = logging.getLogger(__name__)

# A build-up within this many days before a scheduled event is anticipating it: the paper's
# event-study window (±3 days). The synthetic corpus ramps up over the 48 h before its vote.
ANTICIPATION_DAYS = EVENT_STUDY_DAYS
# A flag from a sudden event's start until 24 h after its end reacts to it: the paper's day +1.
REACTION_HOURS = 24
# The forecast-crossing rule needs a level on the 0-10 interaction scale: only this metric.
CROSSING_METRIC = "mean_score"


class CalendarDetector(StreamingDetector):
    """The causal detector with its forecast-crossing rule switched on per point
    (:attr:`crossing_on`, set before each :meth:`update`) and remembered when it fired."""

    crossing_on = False
    crossed = False

    def _crossing(self, value: float) -> bool:
        self.crossed = self.crossing_on and super()._crossing(value)
        return self.crossed


def _configured_window(cfg: Config) -> pd.Timedelta | None:
    """[aggregate] window as a Timedelta (None when it does not parse)."""
    try:
        return pd.Timedelta(str(cfg.aggregate.window))
    except ValueError:
        return None


def classify_series(ts: Sequence[Any], y: np.ndarray, interval_seconds: float,
                    events: Sequence[Event], *, alpha: float = 0.05, horizon: int = 12,
                    crossing: float | None = None,
                    thin: Sequence[bool] | np.ndarray | None = None,
                    metric: str | None = None, patterns: bool = False,
                    routine: bool = True, weekly: bool = True) -> dict[str, Any]:
    """Causal flags of one series with their class and a one-line explanation.

    ``events`` are this topic's calendar entries; ``thin`` marks windows below the minimum
    volume (they neither open nor resolve an episode); ``metric`` names the series in the
    explanation and sets the domain its numbers are clamped to (:mod:`forecast.domains`);
    ``patterns`` adds the pattern test (``[forecast] patterns``, :mod:`forecast.patterns`);
    ``routine`` the routine memory (``[forecast] routine``, :mod:`forecast.routine`), ``weekly``
    the time-of-week bias (``[forecast] weekly``, :mod:`forecast.weekly`).
    Returns ``flag`` (list of none | spike | dip | reactive | anticipatory: set on the alarm
    row of an episode only), ``episode`` (list of episode id or None), ``episode_event`` (list
    of "open" / "resolve" / None), ``anomaly_score`` (array, NaN in warm-up and gaps),
    ``explanation`` (list of str or None: :func:`forecast.explain.describe` after the class),
    ``decision`` (None, or on the rows whose explanation describes a test the band written for
    them: :func:`forecast.alarms.judged_band`) and the detector's ``info``.

    The class agrees with the calendar it cites: *anticipatory* only with a scheduled event of
    the topic starting within :data:`ANTICIPATION_DAYS` days after the flag; a rise with none
    ahead is a *spike* ("an unexplained rise"); a fall is never a rise (*dip*, or *reactive*
    for a confirmed level drop).
    """
    scheduled = [e for e in events if e.kind == "scheduled"]
    sudden = [e for e in events if e.kind == "sudden"]
    window = timedelta(days=ANTICIPATION_DAYS)
    reaction = timedelta(hours=REACTION_HOURS)
    step = timedelta(seconds=interval_seconds)
    det = CalendarDetector(interval_seconds, DetectorConfig(alpha=alpha, horizon=horizon,
                                                            crossing=crossing,
                                                            patterns=patterns,
                                                            routine=routine, weekly=weekly))
    name = metric or "value"
    bounds = Domain(domain_of(metric)).bounds if metric else (-math.inf, math.inf)
    flags: list[str] = []
    why: list[str | None] = []
    episodes: list[int | None] = []
    episode_events: list[str | None] = []
    decision: list[list[Any] | None] = []
    scores = np.full(len(y), np.nan)
    observed = list(~np.isnan(np.asarray(y, dtype=float)))  # the rows that are written
    thin_at = [False] * len(y) if thin is None else list(thin)
    # open episode -> (alarm window, flag, a scheduled event was ahead during the episode)
    raised: dict[int, tuple[datetime, str, bool]] = {}
    for i, (stamp, value) in enumerate(zip(ts, np.asarray(y, dtype=float), strict=True)):
        t = pd.Timestamp(stamp).to_pydatetime()
        ahead = min((e for e in scheduled if t < e.start <= t + window),
                    key=lambda e: e.start, default=None)
        det.crossing_on, det.crossed = ahead is not None, False
        p = det.update(value, thin=bool(thin_at[i]))
        scores[i] = p.anomaly_score
        muted = p.routine and p.event is None and p.trigger is not None  # past its limit
        episodes.append(p.episode)
        episode_events.append(EVENT_ROUTINE if muted else p.event)
        if p.episode in raised and ahead is not None:
            raised[p.episode] = (*raised[p.episode][:2], True)
        flag, text = p.flag, None
        if flag != FLAG_NONE:  # the window [t, t + step) reacts to an event inside it too
            after = max((e for e in sudden if e.start < t + step and
                         t <= e.effective_end + reaction), key=lambda e: e.start, default=None)
            flag, text = class_text(flag, p.trigger, t, ahead, after, ANTICIPATION_DAYS)
            if p.trigger is not None:
                text += "; " + describe(p.trigger, value, name, det.policy.threshold, bounds)
        if p.closes is not None:  # a second, stronger wave ended an episode early
            j = close_previous(episode_events, episodes, p.closes, observed)
            if j is not None:
                end = pd.Timestamp(ts[j]).to_pydatetime()
                why[j] = (resolved_text(p.closes, p.closed_kind, raised.pop(p.closes, None), end)
                          + f" before a stronger wave (score {scores[j]:.4f})")
            text = (f"{text}; a second, stronger wave: more than {det.policy.escalate:g} x as far "
                    f"past its limit as anything in episode {p.closes}, which it ends")
        if p.event == "resolve" and p.episode is not None:  # its class as finally known
            text = resolved_text(p.episode, p.episode_kind, raised.pop(p.episode, None), t)
        elif muted and p.trigger is not None:
            text = describe_routine(p.trigger, value, name, det.policy.threshold, bounds)
        elif flag != FLAG_NONE and p.episode is not None:
            raised[p.episode] = (t, flag, ahead is not None)
        flags.append(flag)
        why.append(None if text is None else f"{text} (score {p.anomaly_score:.4f})")
        decision.append(judged_band(p.trigger, bounds, TEST_NAMES) if flag != FLAG_NONE or muted
                        else None)
    return {"flag": flags, "anomaly_score": scores, "explanation": why, "episode": episodes,
            "episode_event": episode_events, "decision": decision, "info": det.info}


FORECAST_COLUMNS = [f.name for f in dataclasses.fields(ForecastRow)]
CAUSAL_COLUMNS = ("flag", "anomaly_score", "explanation", "episode", "episode_event")


def rows_for_series(topic: str, metric: str, ts: pd.DatetimeIndex, y: np.ndarray,
                    fit: ForecastFit, causal: dict[str, Any], freq: pd.Timedelta, horizon: int,
                    created_at: datetime) -> pd.DataFrame:
    """``forecasts`` rows for one series: observed windows (the band of ``fit``, the flags of
    ``causal``, a :func:`classify_series` result; on its ``decision`` rows the detector's band,
    model ``detector: <test>``), then ``horizon`` future ones.

    Missing windows (NaN y) get no row: a row with NULL y means "forecast" to readers.
    """
    observed = ~np.isnan(y)
    past = pd.DataFrame({"ts": ts[observed], "y": y[observed], "forecast": fit.forecast[observed],
                         "lower": fit.lower[observed], "upper": fit.upper[observed]})
    for col in CAUSAL_COLUMNS:
        past[col] = np.asarray(causal[col], dtype=float if col == "anomaly_score"
                               else object)[observed]
    past["episode"] = pd.array(past["episode"].tolist(), dtype="Int64")
    past["model"] = fit.model
    for k, i in enumerate(np.flatnonzero(observed)):  # the band the row was judged against
        if (decided := causal["decision"][i]) is not None:
            past.loc[k, ["forecast", "lower", "upper", "model"]] = decided
    future = pd.DataFrame({
        "ts": pd.DatetimeIndex([ts[-1] + freq * (i + 1) for i in range(horizon)]),
        "y": np.full(horizon, np.nan), "forecast": fit.future_forecast,
        "lower": fit.future_lower, "upper": fit.future_upper,
        "flag": [FLAG_FORECAST] * horizon, "anomaly_score": np.full(horizon, np.nan),
        "explanation": [None] * horizon, "episode": pd.array([None] * horizon, dtype="Int64"),
        "episode_event": [None] * horizon, "model": fit.model,
    })
    frames = [f for f in (past, future) if not f.empty]
    out = pd.concat(frames, ignore_index=True) if frames else past
    out.insert(0, "metric", metric)
    out.insert(0, "topic", topic)
    out["created_at"] = pd.Timestamp(created_at)
    return out[FORECAST_COLUMNS]


def write_forecasts(path: str | Path, rows: pd.DataFrame, metric: str,
                    topics: list[str]) -> None:
    """Replace the forecasts of ``topics`` for ``metric`` in one write transaction.

    Earlier ``forecast`` rows of these topics are deleted first (a shorter horizon or a new last
    window would otherwise leave stale future rows); everything else is ``INSERT OR REPLACE``.
    The file must be at the newest schema: :func:`run_forecast`, the only caller, upgrades it
    first (:func:`polarwatch.warehouse.init_schema`).
    """
    with transaction(path) as con:
        con.register("new_forecasts", rows)
        if topics:
            con.execute("DELETE FROM forecasts WHERE metric = ? AND flag = ? AND topic IN "
                        f"({', '.join('?' * len(topics))})", [metric, FLAG_FORECAST, *topics])
        cols = ", ".join(f'"{c}"' for c in FORECAST_COLUMNS)
        con.execute(f"INSERT OR REPLACE INTO forecasts ({cols}) SELECT {cols} FROM new_forecasts")
        con.unregister("new_forecasts")


def _band_text(fit: ForecastFit, alpha: float) -> str:
    sel = fit.selection
    if sel.mae is None or sel.coverage is None:
        return f"{fit.model} band (not scored)"
    return (f"{fit.model} band (rolling 1-step MAE {sel.mae:.4g}, {1 - alpha:.0%} coverage "
            f"{sel.coverage:.0%} on the last {sel.n_eval} points; candidates "
            + ", ".join(f"{k} {v:.4g}" for k, v in sel.scores.items()) + ")")


def forecast_topic(cfg: Config, topic: str, group: pd.DataFrame, metric: str,
                   freq: pd.Timedelta, events: Sequence[Event],
                   created_at: datetime) -> tuple[pd.DataFrame, ForecastFit, int]:
    """The ``forecasts`` rows of one topic's series (``ts``, ``y``, optional ``n``), its band
    fit and the detector's warm-up; raises :class:`SeriesSkipped`."""
    alpha, horizon = cfg.forecast.alpha, cfg.forecast.horizon
    y = group["y"].to_numpy(float)
    fit = fit_predict(y, alpha=alpha, horizon=horizon, domain=domain_of(metric),
                      season=season_points(freq.total_seconds(), MAX_SEASON))
    ts = pd.DatetimeIndex(group["ts"])
    thin = (np.zeros(len(y), bool) if metric in COUNT_METRICS or "n" not in group
            else group["n"].to_numpy(float) < cfg.forecast.min_volume)
    causal = classify_series(
        ts, y, freq.total_seconds(), [e for e in events if e.topic == topic], alpha=alpha,
        horizon=horizon, thin=thin, metric=metric, patterns=cfg.forecast.patterns,
        routine=cfg.forecast.routine, weekly=cfg.forecast.weekly,
        crossing=cfg.aggregate.extreme_threshold if metric == CROSSING_METRIC else None)
    rows = rows_for_series(topic, metric, ts, y, fit, causal, freq, horizon, created_at)
    return rows, fit, causal["info"]["warmup"]


def run_forecast(cfg: Config, *, metric: str | None = None, events: Sequence[Event] | None = None,
                 alerts: bool = True) -> ForecastSummary:
    """Forecast ``metric`` (default ``[forecast] metric``) for every topic and store the rows.

    ``events`` defaults to the calendar (``$POLARWATCH_EVENTS_FILE`` or ``events.toml`` next
    to the config). ``alerts=False`` skips the webhooks.
    """
    started = time.monotonic()
    # (alpha in (0, 1) and horizon >= 1 are the config's own checks: polarwatch.config)
    metric = validate_metric(metric if metric is not None else cfg.forecast.metric)
    alpha, horizon = cfg.forecast.alpha, cfg.forecast.horizon
    if events is None:  # an event on a topic not in topics.toml is refused
        events = load_events(events_path(cfg.root), topic_ids(cfg))
    path = cfg.warehouse_path
    until = newest_allowed(cfg.ingest.max_future_skew_hours)
    summary = ForecastSummary(metric)  # read_series fills trimmed, and skipped off-grid topics
    series, freq = read_series(path, metric, trimmed=summary.trimmed, until=until,
                               off_grid=summary.skipped)
    check_horizon(series, freq, horizon)
    init_schema(path)  # an older file is upgraded in place (polarwatch.migrations.MIGRATIONS)
    for topic, reason in summary.skipped.items():
        LOG.warning(f"  skip {topic}: {reason}")
    if series.empty:
        LOG.info(f"forecast {metric}: no rows in topic_windows of {path}"
                 + (" on one window grid" if summary.skipped else "") + "; nothing to do")
    else:
        LOG.info(f"forecast {metric}: {series['series_id'].nunique()} topic(s), window {freq}, "
                 f"horizon {horizon}, interval {1 - alpha:.0%}, {len(events)} calendar event(s)")
        configured = _configured_window(cfg)
        if configured is not None and configured != freq:
            LOG.warning(f"  note: the stored windows are {freq} long but [aggregate] window is "
                        f"{configured}; the forecast, the dashboard and the report follow the "
                        f"stored windows (re-stream with --reset to re-aggregate)")
        created_at = datetime.now(UTC)
        frames, fitted = [], []
        for topic, group in series.groupby("series_id", sort=True):
            cut = summary.trimmed.get(str(topic))
            try:
                rows, fit, warm = forecast_topic(cfg, str(topic), group, metric, freq, events,
                                                 created_at)
            except SeriesSkipped as exc:
                summary.skipped[str(topic)] = str(exc) + (f"; {cut}" if cut else "")
                LOG.warning(f"  skip {topic}: {summary.skipped[str(topic)]}")
                continue
            for warning in ([cut] if cut else []) + fit.warnings:
                LOG.warning(f"  {topic}: {warning}")
            frames.append(rows)
            fitted.append(str(topic))
            counts = summary.add(rows)
            n_points = int((rows["flag"] != FLAG_FORECAST).sum())
            LOG.info(f"  {topic}: {_band_text(fit, alpha)}, {n_points} points, flags "
                     + ", ".join(f"{f} {n}" for f, n in counts.items())
                     + f", {int((rows['flag'] == FLAG_NONE).sum())} normal"
                     + ("" if n_points > warm else
                        f" (detector warm-up: {warm} points, no flags yet)"))
        if frames:
            write_forecasts(path, pd.concat(frames, ignore_index=True), metric, fitted)
        LOG.info(f"forecast {metric}: wrote {summary.points + summary.forecast_points} row(s) "
                 f"for {summary.topics} topic(s), {len(summary.skipped)} skipped, "
                 f"{summary.flags} flag(s) in {round(time.monotonic() - started, 3)} s")
        if alerts and cfg.alerts.webhooks:
            from forecast.alerts.delivery import send_flag_alerts

            summary.alerts = send_flag_alerts(cfg, metric=metric)
    summary.seconds = round(time.monotonic() - started, 3)
    return summary
