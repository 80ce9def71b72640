"""Alerts from episodes: the alarm rows of ``forecasts`` -> one firing and one resolved webhook
message per episode.

The causal detector groups flags in **episodes** (:mod:`forecast.alarms`): the first row of an
episode carries the flag (its *alarm*), the row where it resolves carries ``episode_event =
'resolve'``. An episode is **active** from its alarm until it resolves (the dashboard's Alerts
page and the report use the same rule). Each run:

1. every episode that is active now, or whose alarm is one of the last :data:`ACTIVE_WINDOWS`
   observed windows of its topic (it may have opened and resolved between two runs), becomes an
   :class:`~forecast.alerts.webhooks.Alert` (labels ``alertname``, ``topic``, ``metric``, ``flag``,
   ``severity``; ``startsAt`` = the alarm's window, ``endsAt`` = the resolving window);
2. the table ``alert_state`` (contract :class:`polarwatch.tables.AlertState`) remembers every alert ever raised: new ones are added,
   open ones are resolved when their episode resolves (or disappears, e.g. when revised windows
   moved it: ``endsAt`` = the newest observed window);
3. what a receiver has not seen yet is sent with :class:`~forecast.alerts.webhooks.WebhookSender`
   (signed, retried with backoff, logged in ``alert_deliveries``): the firing message first, then
   the resolved one, each marked sent once every endpoint has it.

So an episode gives exactly one firing and one resolved message; a re-run, or a restart, never
sends a state twice (``alert_state`` says it was sent, and the sender's own delivery log
de-duplicates per endpoint), while a message that could not be delivered is tried again on the
next run. An endpoint that fails (all retries spent) is skipped for the rest of that run, so one
dead receiver costs one retry schedule per run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.alerts.webhooks import (
    Alert,
    DeliveryResult,
    Endpoint,
    RetryPolicy,
    WebhookSender,
    sample_alert,
)
from polarwatch.config import Config
from polarwatch.errors import PolarwatchError
from polarwatch.fields import WebhookFormat
from polarwatch.warehouse import connect, init_schema, transaction

LOG = logging.getLogger(__name__)

# An episode that opened (and maybe resolved) within the 3 newest windows is still notified.
ACTIVE_WINDOWS = 3
ALERT_NAME = "PolarwatchFlag"
# Classified flags matter more than a lone one-window exceedance.
SEVERITY = {"anticipatory": "warning", "reactive": "warning", "spike": "info", "dip": "info"}
NOT_FLAGS = ("none", "forecast")


def _utc(value: Any) -> datetime:
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


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
    return {str(t): _utc(ts) for t, ts in rows}


def _fmt(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.4g}"


def flag_alert(row: Any) -> Alert:
    """The alert of one alarm row of ``forecasts`` (a mapping or a pandas row); resolved when
    the row has a ``resolved_at``."""
    flag, topic, metric = str(row["flag"]), str(row["topic"]), str(row["metric"])
    ts = _utc(row["ts"])
    explanation = row.get("explanation")
    annotations = {
        "summary": f"{flag} on {topic} ({metric}) in the window of {ts:%Y-%m-%d %H:%M} UTC",
        "description": "" if explanation is None or pd.isna(explanation) else str(explanation),
        "value": _fmt(row.get("y")), "forecast": _fmt(row.get("forecast")),
        "anomaly_score": _fmt(row.get("anomaly_score")),
    }
    labels = {"alertname": ALERT_NAME, "topic": topic, "metric": metric, "flag": flag,
              "severity": SEVERITY.get(flag, "info")}
    resolved = row.get("resolved_at")
    ends = None if resolved is None or pd.isna(resolved) else _utc(resolved)
    return Alert(labels=labels, annotations=annotations, starts_at=ts, ends_at=ends)


def _many(con: Any, sql: str, rows: list[list[Any]]) -> None:
    if rows:  # DuckDB's executemany refuses an empty list
        con.executemany(sql, rows)


def update_state(path: str | Path, metric: str, alerts: list[Alert], recent: set[tuple[str, Any]],
                 latest: dict[str, datetime]) -> tuple[int, int]:
    """Record new alerts (firing, or already resolved: ``ends_at`` set) and resolve open ones.

    ``alerts`` has one alert per alarm row of ``forecasts``; only those whose (fingerprint,
    starts_at) is in ``recent`` are recorded when new (older episodes are history, not news).
    An open alert resolves with its episode, or at its topic's newest window when its alarm row
    is gone. Returns ``(opened, resolved)`` counts. One write transaction.
    """
    now = datetime.now(UTC)
    by_key = {(a.fingerprint, a.starts_at): a for a in alerts}
    with transaction(path) as con:
        before = {(f, _utc(s)) for f, s in con.execute(
            "SELECT fingerprint, starts_at FROM alert_state WHERE metric = ?",
            [metric]).fetchall()}
        new = [a for k, a in by_key.items() if k not in before and k in recent]
        _many(con,
              "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?, NULL, false, false, ?)",
              [[a.fingerprint, a.starts_at, a.labels["topic"], metric, a.labels["flag"],
                json.dumps(a.labels), json.dumps(a.annotations), now] for a in new])
        open_rows = con.execute("SELECT fingerprint, starts_at, topic FROM alert_state "
                                "WHERE metric = ? AND ends_at IS NULL", [metric]).fetchall()
        ends = []
        for f, start, topic in open_rows:
            alert = by_key.get((f, _utc(start)))
            if alert is not None and alert.ends_at is not None:
                ends.append([alert.ends_at, now, f, start])
            elif alert is None:
                ends.append([latest.get(topic, now), now, f, start])
        _many(con, "UPDATE alert_state SET ends_at = ?, updated_at = ? "
                   "WHERE fingerprint = ? AND starts_at = ?", ends)
    return len(new), len(ends)


def pending_alerts(path: str | Path, metric: str) -> list[Alert]:
    """Messages of ``metric`` not sent yet, oldest episode first: an episode's firing message
    always comes before its resolved one."""
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT labels, annotations, starts_at, ends_at, firing_sent, resolved_sent "
            "FROM alert_state WHERE metric = ? AND (NOT firing_sent OR (ends_at IS NOT NULL "
            "AND NOT resolved_sent)) ORDER BY starts_at, fingerprint", [metric]).fetchall()
    out = []
    for lab, ann, start, end, firing_sent, resolved_sent in rows:
        labels, annotations = json.loads(lab), json.loads(ann)
        if not firing_sent:
            out.append(Alert(labels=labels, annotations=annotations, starts_at=_utc(start)))
        if end is not None and not resolved_sent:
            out.append(Alert(labels=labels, annotations=annotations, starts_at=_utc(start),
                             ends_at=_utc(end)))
    return out


def mark_sent(path: str | Path, alert: Alert) -> None:
    column = "resolved_sent" if alert.state == "resolved" else "firing_sent"
    with transaction(path) as con:
        con.execute(f"UPDATE alert_state SET {column} = true, updated_at = ? "
                    f"WHERE fingerprint = ? AND starts_at = ?",
                    [datetime.now(UTC), alert.fingerprint, alert.starts_at])


@dataclass
class AlertingSummary:
    active: int = 0  # active flags now
    opened: int = 0  # new firing alerts recorded
    resolved: int = 0  # alerts resolved this run
    sent: int = 0  # alert states that reached every endpoint this run
    failed: int = 0  # alert states left pending (an endpoint did not take them)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def endpoints_for(cfg: Config) -> list[Endpoint]:
    secret = cfg.alerts.secret.get_secret_value() or None
    return [Endpoint(url, secret=secret, format=cfg.alerts.format) for url in cfg.alerts.webhooks]


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
    alarms = episode_alarms(path, metric)
    alerts, recent = [], set()
    for _, row in alarms.iterrows():
        alert = flag_alert(row)
        alerts.append(alert)
        if pd.isna(row["resolved_at"]) or row["recency"] <= ACTIVE_WINDOWS:
            recent.add((alert.fingerprint, alert.starts_at))
    summary = AlertingSummary(active=sum(a.ends_at is None for a in alerts))
    summary.opened, summary.resolved = update_state(path, metric, alerts, recent,
                                                    latest_windows(path, metric))
    pending = pending_alerts(path, metric)
    retry = retry_for(cfg)
    senders = [WebhookSender([ep], path, retry, sleep=sleep) for ep in endpoints]
    down: set[str] = set()
    for alert in pending:
        ok = True
        for ep, sender in zip(endpoints, senders, strict=True):
            if ep.url in down:
                ok = False
                continue
            [result] = sender.send(alert)
            if not result.delivered:
                down.add(ep.url)
                ok = False
                LOG.warning(f"alerts: {ep.url} did not take {alert.labels['flag']} on "
                    f"{alert.labels['topic']}; skipping it for the rest of this run")
        if ok:
            mark_sent(path, alert)
            summary.sent += 1
        else:
            summary.failed += 1
    LOG.info(f"alerts {metric}: {summary.active} active flag(s), {summary.opened} new, "
        f"{summary.resolved} resolved, {summary.sent} sent to {len(endpoints)} endpoint(s), "
        f"{summary.failed} pending")
    return summary.as_dict()


def sample_secret(cfg: Config, secret_env: str | None) -> str | None:
    """The signing secret of ``alerts test``: the value of the environment variable *named*
    ``secret_env`` (a secret is never an argument: every user of the machine can read them),
    else ``[alerts] secret``; None: unsigned."""
    if not secret_env:
        return cfg.alerts.secret.get_secret_value() or None
    if not secret_env.isidentifier():
        raise PolarwatchError("--secret-env takes the name of an environment variable "
                              "(letters, digits, _), not a secret (the value is not shown)")
    if not os.environ.get(secret_env):
        raise PolarwatchError(f"--secret-env {secret_env}: that variable is not set or is empty")
    return os.environ[secret_env]


def send_sample_alert(cfg: Config, url: str, secret: str | None, *, format: WebhookFormat | None = None,
                      attempts: int = 3, log: bool = True) -> list[DeliveryResult]:
    """Send :func:`forecast.alerts.webhooks.sample_alert` to ``url`` (``format`` default
    ``[alerts] format``), logged in ``alert_deliveries`` when ``log``."""
    endpoint = Endpoint(url, secret=secret, format=format or cfg.alerts.format)
    sender = WebhookSender([endpoint], db_path=cfg.warehouse_path if log else None,
                           retry=RetryPolicy(max_attempts=attempts))
    return sender.send(sample_alert(), dedupe=False)
