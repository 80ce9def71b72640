"""Alerts from episodes: the alarm rows of ``forecasts`` -> one firing and one resolved webhook
message per episode.

The causal detector groups flags in **episodes** (:mod:`forecast.alarms`): the first row of an
episode carries the flag (its *alarm*), the row where it resolves carries ``episode_event =
'resolve'``. An episode is **active** from its alarm until it resolves (the dashboard's Alerts
page and the report use the same rule). Each run:

1. every alarm row becomes an :class:`~forecast.alerts.webhooks.Alert` (labels ``alertname``,
   ``topic``, ``metric``, ``flag``, ``severity``; ``startsAt`` = the alarm's window, ``endsAt`` =
   the resolving window). Its identity is the **episode**, not its class: the fingerprint hashes
   ``alertname``, ``topic`` and ``metric`` only (:data:`IDENTITY_LABELS`), and ``alert_state``
   is keyed by it and ``startsAt``;
2. the table ``alert_state`` (contract :class:`polarwatch.tables.AlertState`) remembers every
   alert ever raised (:func:`update_state`). New ones are added: every episode active now, and
   every episode that opened *and* resolved since the last run (runs far apart, a stream
   catching up, a backfill), if it resolved within :data:`CLOSED_LOOKBACK` of its topic's newest
   window (or its alarm is one of the :data:`ACTIVE_WINDOWS` newest windows) and is one of the
   :data:`MAX_CLOSED_PER_TOPIC` newest such episodes of its topic (:func:`news`). Older closed
   episodes are history, never sent: so a first run on a long history, or the first run after
   webhooks were configured, does not flood a receiver; the run's log line counts them. Open
   alerts are resolved when their episode resolves (or disappears, e.g. when revised windows
   moved it: ``endsAt`` = the newest observed window). When an open episode's **class changes**
   (events.toml edited, or the detector confirming a level jump), its alert keeps its identity;
   ``flag`` and the annotations follow the new class. A change to a higher severity
   (:data:`~forecast.alerts.state.SEVERITY`: spike/dip are info, reactive/anticipatory warning)
   is an **escalation**: the episode gets one more firing message, an update with the new
   class and severity, the same fingerprint and startsAt, the annotation ``escalated_from`` and
   a ``webhook-id`` of its own (:mod:`forecast.alerts.state`). A de-escalation, or a change
   within one severity, sends nothing; the resolved message carries the final class. An open
   episode never gets a resolved message;
3. what a receiver has not seen yet is sent with :class:`~forecast.alerts.webhooks.WebhookSender`
   (signed, retried with backoff, logged in ``alert_deliveries``): the firing message first, then
   the resolved one, each marked sent once every endpoint has it (an endpoint added since an
   episode's firing message went out gets it first: :func:`~forecast.alerts.state.firing_lacked`). Each endpoint is served on a
   thread of its own (:data:`MAX_PARALLEL` at once), so a dead or slow receiver's retries hold
   no other endpoint's messages; the run ends when the last endpoint is done.

So an episode gives one firing and one resolved message (and one firing update per
escalation); a re-run, or a restart, does not send a delivered message again (``alert_state``
says it was sent, and the sender's own delivery log de-duplicates per endpoint), while a
message that could not be delivered is tried again on the next run. Delivery is at least once: a crash after the receiver's 2xx and before the record
sends that message again on the next run, with the same ``webhook-id`` (the receiver's key to
de-duplicate). An endpoint that fails (all retries spent) is skipped for the rest of that run,
and one that was down through its last schedule gets one attempt in the next (WebhookSender;
the run waits for its thread, the other endpoints do not). The run's line counts the messages that reached every endpoint
(``sent``), the ones still pending for at least one (``failed``) and, when some are pending,
how many each endpoint has.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.alarms import band_text, decided_by
from forecast.alerts import run_lock
from forecast.alerts.state import (
    firing_lacked,
    mark_sent,
    pending_alerts,
    recorded_episodes,
    severity_of,
    update_state,
    utc,
)
from forecast.alerts.webhooks import (
    LOG_LOCK,
    Alert,
    Endpoint,
    RetryPolicy,
    WebhookSender,
    decode_secret,
    fingerprint_of,
)
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from polarwatch.redact import url_for_log
from polarwatch.warehouse import connect, init_schema

LOG = logging.getLogger(__name__)

# An episode that opened (and maybe resolved) within the 3 newest windows is still notified.
ACTIVE_WINDOWS = 3
# An episode that opened and resolved between two runs is still notified (firing, then
# resolved) when it resolved at most this long before its topic's newest window: a week covers
# weekly report loops, weekend outages and backfills, while a first run on a year of history
# sends no more than its last week...
CLOSED_LOOKBACK = pd.Timedelta(days=7)
# ... and at most this many such episodes per topic and run (an episode lasts at least 12
# hours, forecast.alarms, so a week holds at most about 14; a stronger wave may end one early).
MAX_CLOSED_PER_TOPIC = 10
ALERT_NAME = "PolarwatchFlag"
# What identifies an episode's alert (with its startsAt): not its class (flag, severity).
IDENTITY_LABELS = ("alertname", "topic", "metric")
NOT_FLAGS = ("none", "forecast")
# Endpoints served at once, each on its own thread (more wait for a free one).
MAX_PARALLEL = 8


def episode_alarms(path: str | Path, metric: str) -> pd.DataFrame:
    """The alarm rows of ``metric`` (one per episode), newest first.

    Columns: every column of ``forecasts`` plus ``latest_ts`` (the topic's newest observed
    window), ``recency`` (1 = the alarm is in the newest window) and ``resolved_at`` (the
    resolving window, NaT while the episode is open). UTC.
    """
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute("""
            WITH observed AS (
                SELECT topic, metric, ts,
                       row_number() OVER (PARTITION BY topic ORDER BY ts DESC) AS recency,
                       max(ts) OVER (PARTITION BY topic) AS latest_ts
                FROM forecasts WHERE flag <> 'forecast' AND metric = ?),
            resolved AS (
                SELECT topic, episode, min(ts) AS resolved_at FROM forecasts
                WHERE metric = ? AND episode_event = 'resolve' GROUP BY topic, episode)
            SELECT f.*, o.latest_ts, o.recency, r.resolved_at
            FROM forecasts f JOIN observed o USING (topic, metric, ts)
            LEFT JOIN resolved r ON r.topic = f.topic AND r.episode = f.episode
            WHERE f.flag NOT IN ('none', 'forecast')
            ORDER BY f.ts DESC, f.topic""", [metric, metric]).df()
    return df


def active_flags(path: str | Path, metric: str,
                 active_windows: int = ACTIVE_WINDOWS) -> pd.DataFrame:
    """Alarm rows of the episodes of ``metric`` that are open now (rows written before episodes
    existed count while they are among the last ``active_windows`` windows)."""
    df = episode_alarms(path, metric)
    legacy = df["episode"].isna() if "episode" in df else pd.Series(True, index=df.index)
    keep = df["resolved_at"].isna() & (~legacy | (df["recency"] <= active_windows))
    return df[keep].reset_index(drop=True)


def latest_windows(path: str | Path, metric: str) -> dict[str, datetime]:
    """The newest observed window per topic for ``metric``."""
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT topic, max(ts) FROM forecasts WHERE metric = ? AND "
                           "flag <> 'forecast' GROUP BY topic", [metric]).fetchall()
    return {str(t): utc(ts) for t, ts in rows}


def _fmt(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.4g}"


def flag_alert(row: Any) -> Alert:
    """The alert of one alarm row of ``forecasts`` (a mapping or a pandas row); resolved when
    the row has a ``resolved_at``."""
    flag, topic, metric = str(row["flag"]), str(row["topic"]), str(row["metric"])
    ts = utc(row["ts"])
    explanation = row.get("explanation")
    y, fc, lo, up, model = (row.get(k) for k in ("y", "forecast", "lower", "upper", "model"))
    annotations = {
        "summary": f"{flag} on {topic} ({metric}) in the window of {ts:%Y-%m-%d %H:%M} UTC",
        "description": "" if explanation is None or pd.isna(explanation) else str(explanation),
        # the band the flag was judged against (forecast.alarms.DETECTOR_MODEL), and the test
        "value": _fmt(y), "forecast": _fmt(fc), "lower": _fmt(lo), "upper": _fmt(up),
        "band": band_text(y, fc, lo, up, model), "test": decided_by(model) or "",
        "anomaly_score": _fmt(row.get("anomaly_score")),
    }
    labels = {"alertname": ALERT_NAME, "topic": topic, "metric": metric, "flag": flag,
              "severity": severity_of(flag)}
    resolved = row.get("resolved_at")
    ends = None if resolved is None or pd.isna(resolved) else utc(resolved)
    key = fingerprint_of({k: labels[k] for k in IDENTITY_LABELS})
    return Alert(labels=labels, annotations=annotations, starts_at=ts, ends_at=ends, key=key)


def news(alarms: pd.DataFrame) -> pd.Series:
    """Which alarm rows (of :func:`episode_alarms`) are news, i.e. recorded when not yet in
    ``alert_state``: open episodes (and rows written before episodes existed), and closed ones
    that resolved within :data:`CLOSED_LOOKBACK` of their topic's newest window or whose alarm
    is one of its :data:`ACTIVE_WINDOWS` newest windows, the :data:`MAX_CLOSED_PER_TOPIC`
    newest of them per topic. A boolean Series on ``alarms``' index."""
    if alarms.empty:
        return pd.Series(False, index=alarms.index, dtype=bool)
    legacy = alarms["episode"].isna()
    closed = alarms["resolved_at"].notna() & ~legacy
    fresh = ((alarms["resolved_at"] >= alarms["latest_ts"] - CLOSED_LOOKBACK)
             | (alarms["recency"] <= ACTIVE_WINDOWS))
    candidates = closed & fresh
    rank = (alarms["ts"].where(candidates).groupby(alarms["topic"])
            .rank(method="first", ascending=False))
    return ~closed | (candidates & (rank <= MAX_CLOSED_PER_TOPIC))


@dataclass
class AlertingSummary:
    active: int = 0  # active flags now
    opened: int = 0  # new firing alerts recorded
    resolved: int = 0  # alerts resolved this run
    sent: int = 0  # alert states that reached every endpoint this run
    failed: int = 0  # alert states left pending (an endpoint did not take them)
    deferred: int = 0  # left pending untried: another run was delivering (run_lock)
    escalated: int = 0  # escalation updates among the messages to send this run
    history: int = 0  # closed episodes never recorded, too old to send (news)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def endpoints_for(cfg: Config) -> list[Endpoint]:
    """The endpoints of ``[alerts] webhooks``, each URL checked by :class:`Endpoint` (the rules
    delivery uses); a bad one raises :class:`ConfigError` naming its entry (its number: the URL
    is not shown, it may carry a token). ``polarwatch forecast`` and ``report --forecast`` call
    this before any work, so a typo is not found after the forecast has written its rows."""
    secret = cfg.alerts.secret.get_secret_value() or None
    if secret is not None:
        decode_secret(secret)  # once, not as a fault of the first entry
    urls = cfg.alerts.webhooks
    endpoints = []
    for i, url in enumerate(urls, 1):
        try:
            endpoints.append(Endpoint(url, secret=secret, format=cfg.alerts.format))
        except ConfigError as exc:
            raise ConfigError(f"[alerts] webhooks entry {i} of {len(urls)}: {exc}") from None
    return endpoints


def check_webhooks(cfg: Config) -> None:
    """:func:`endpoints_for`, called by `forecast`, `report --forecast` and the demo first."""
    if cfg.alerts.webhooks:
        endpoints_for(cfg)


def retry_for(cfg: Config) -> RetryPolicy:
    a = cfg.alerts
    return RetryPolicy(max_attempts=a.max_attempts, initial=a.backoff_seconds,
                       max_delay=a.max_backoff_seconds, timeout=a.timeout_seconds)


def send_flag_alerts(cfg: Config, *, metric: str | None = None,
                     sleep: Callable[[float], Any] = time.sleep) -> dict[str, int]:
    """Sync ``alert_state`` with the active flags of ``metric`` and send what is pending to
    ``[alerts] webhooks``. Returns the counts of :class:`AlertingSummary`. The file is brought
    to the newest schema first."""
    metric = metric or cfg.forecast.metric
    path = cfg.warehouse_path
    endpoints = endpoints_for(cfg)  # validates URLs, secret and format first
    init_schema(path)
    with run_lock.delivery_lock(path) as other:  # one run at a time sends (run_lock)
        if other is None:
            return _sync_and_send(path, metric, endpoints, retry_for(cfg), sleep)
    skipped = AlertingSummary(active=len(active_flags(path, metric)),
                              deferred=len(pending_alerts(path, metric)))
    LOG.warning(f"alerts {metric}: another run ({other}) is delivering the alerts of {path}, "
                f"for longer than {run_lock.LOCK_WAIT_SECONDS:g} s; this run sends nothing: what it "
                f"would send stays pending for the next run")
    return skipped.as_dict()


def _sync_and_send(path: Path, metric: str, endpoints: list[Endpoint], retry: RetryPolicy,
                   sleep: Callable[[float], Any]) -> dict[str, int]:
    """:func:`send_flag_alerts` under the delivery lock."""
    alarms = episode_alarms(path, metric)
    alerts = [flag_alert(row) for _, row in alarms.iterrows()]
    is_news = news(alarms).tolist()
    recent = {(a.fingerprint, a.starts_at) for a, fresh in zip(alerts, is_news, strict=True)
              if fresh}
    known = recorded_episodes(path, metric)
    summary = AlertingSummary(active=sum(a.ends_at is None for a in alerts))
    summary.history = sum(not fresh and (a.labels["topic"], a.starts_at) not in known
                          for a, fresh in zip(alerts, is_news, strict=True))
    summary.opened, summary.resolved = update_state(path, metric, alerts, recent,
                                                    latest_windows(path, metric))
    pending = pending_alerts(path, metric)
    summary.escalated = sum(a.revision != "" for a in pending)
    # an endpoint added since an episode's firing message went out gets it first (state.py)
    lacked = firing_lacked(path, metric, [ep.url for ep in endpoints])
    if lacked:
        LOG.info(f"alerts {metric}: {len(lacked)} firing message(s) of episodes not resolved "
                 f"for every endpoint go to the endpoint(s) that never had them: "
                 + ", ".join(sorted({url_for_log(u) for _, urls in lacked for u in urls})))
    queued: list[tuple[Alert, set[str] | None]] = [(a, None) for a in pending]
    queued = sorted(queued + list(lacked),  # stable: an episode's firing before its resolved
                    key=lambda m: (m[0].starts_at, m[0].fingerprint, m[0].state == "resolved"))
    pending = [a for a, _ in queued]
    got = _deliver(endpoints, pending, path, retry, sleep, [u for _, u in queued])
    for i, alert in enumerate(pending):
        if all(delivered[i] for delivered in got):
            mark_sent(path, alert)
            summary.sent += 1
        else:
            summary.failed += 1
    per_endpoint = ", ".join(f"{url_for_log(ep.url)} {sum(d)} of {len(pending)}"
                             for ep, d in zip(endpoints, got, strict=True))
    LOG.info(f"alerts {metric}: {summary.active} active flag(s), {summary.opened} new, "
        f"{summary.resolved} resolved, {summary.escalated} escalation update(s), "
        f"{summary.sent} sent to all {len(endpoints)} endpoint(s), {summary.failed} pending"
        + (f" (delivered per endpoint: {per_endpoint})" if summary.failed else "")
        + (f", {summary.history} closed episode(s) from before the {CLOSED_LOOKBACK.days}-day "
           f"look-back (or past the newest {MAX_CLOSED_PER_TOPIC} per topic) not sent"
           if summary.history else ""))
    return summary.as_dict()


def _deliver(endpoints: list[Endpoint], pending: list[Alert], path: Path, retry: RetryPolicy,
             sleep: Callable[[float], Any], only: list[set[str] | None]) -> list[list[bool]]:
    """Send ``pending`` in order to every endpoint, each endpoint on a thread of its own (up to
    :data:`MAX_PARALLEL` at once): one endpoint's retries hold no other endpoint. A message
    whose ``only`` is a set goes to the endpoints of those URLs only: the others have it. Returns,
    per endpoint, whether it has each message (delivered now or before). An endpoint that does
    not take a message is skipped for the rest of the run."""
    senders = [WebhookSender([ep], path, retry, sleep=sleep) for ep in endpoints]  # schema first
    got: list[list[bool]] = [[] for _ in endpoints]
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(endpoints)):
        todo.put(i)
    errors: list[BaseException] = []

    def serve() -> None:
        while not errors:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                down = False
                for alert, urls in zip(pending, only, strict=True):
                    if urls is not None and endpoints[i].url not in urls:
                        got[i].append(True)  # it has this firing message: not sent again
                        continue
                    if down:  # skipped for the rest of this run
                        got[i].append(False)
                        continue
                    [result] = senders[i].send(alert)
                    got[i].append(result.delivered)
                    down = not result.delivered
                    if down:
                        LOG.warning(f"alerts: {url_for_log(endpoints[i].url)} did not take "
                                    f"{alert.labels['flag']} on {alert.labels['topic']}; "
                                    f"skipping it for the rest of this run")
            except BaseException as exc:  # raised again on the caller's thread
                errors.append(exc)

    # daemon threads: Ctrl-C ends the run without waiting out a dead receiver's schedule
    threads = [threading.Thread(target=serve, daemon=True, name=f"alerts-{n}")
               for n in range(min(MAX_PARALLEL, len(endpoints)))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGTERM (polarwatch.cli._terminate)
        # a thread killed at exit inside a DuckDB write aborts the process (exit 134, "FATAL:
        # exception not rethrown"): take the delivery log's lock, held from here on, so none
        # is in one or begins one (each write is a short transaction: a moment's wait)
        LOG_LOCK.acquire()
        raise
    if errors:
        raise errors[0]
    return got
