"""Alerts from flags: the active flags of ``forecasts`` -> firing / resolved webhook alerts.

A flag is **active** while its window is one of the last :data:`ACTIVE_WINDOWS` observed windows
of its topic's series (the dashboard's Alerts page uses the same rule). Each run:

1. every active flag becomes a firing :class:`~forecast.webhooks.Alert` (labels ``alertname``,
   ``topic``, ``metric``, ``flag``, ``severity``; ``startsAt`` = the flagged window);
2. the table ``alert_state`` (DDL below) remembers every alert ever raised: new ones are added,
   open ones that are no longer active are resolved (``endsAt`` = the newest observed window);
3. alerts whose current state has not reached every endpoint yet are sent with
   :class:`~forecast.webhooks.WebhookSender` (signed, retried with backoff, logged in
   ``alert_deliveries``) and marked sent once every endpoint has them.

So a re-run, or a restart, never sends an alert twice (``alert_state`` says it was sent, and the
sender's own delivery log de-duplicates per endpoint), while an alert that could not be
delivered is tried again on the next run. An endpoint that fails an alert (all retries spent) is
skipped for the rest of that run, so one dead receiver costs one retry schedule per run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.webhooks import Alert, Endpoint, RetryPolicy, WebhookSender
from polarwatch.config import Config
from polarwatch.warehouse import connect

# Same as dashboard/queries.py ACTIVE_FLAG_WINDOWS: a flag in one of the 3 newest windows.
ACTIVE_WINDOWS = 3
ALERT_NAME = "PolarwatchFlag"
# Classified flags matter more than a lone one-window exceedance.
SEVERITY = {"anticipatory": "warning", "reactive": "warning", "spike": "info", "dip": "info"}
NOT_FLAGS = ("none", "forecast")

ALERT_STATE_DDL = """CREATE TABLE IF NOT EXISTS alert_state (
  fingerprint VARCHAR NOT NULL,
  starts_at TIMESTAMPTZ NOT NULL,
  topic VARCHAR NOT NULL,
  metric VARCHAR NOT NULL,
  flag VARCHAR NOT NULL,
  labels VARCHAR NOT NULL,
  annotations VARCHAR NOT NULL,
  ends_at TIMESTAMPTZ,
  firing_sent BOOLEAN NOT NULL,
  resolved_sent BOOLEAN NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (fingerprint, starts_at)
)"""


def _utc(value: Any) -> datetime:
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def active_flags(path: str | Path, metric: str,
                 active_windows: int = ACTIVE_WINDOWS) -> pd.DataFrame:
    """Flagged rows of ``metric`` within the last ``active_windows`` observed windows per topic.

    Columns: every column of ``forecasts`` (anomaly_score and explanation once the detector has
    written them) and latest_ts (the topic's newest observed window). UTC; newest first.
    """
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        df: pd.DataFrame = con.execute("""
            WITH observed AS (
                SELECT topic, metric, ts,
                       row_number() OVER (PARTITION BY topic ORDER BY ts DESC) AS recency,
                       max(ts) OVER (PARTITION BY topic) AS latest_ts
                FROM forecasts WHERE flag <> 'forecast' AND metric = ?)
            SELECT f.*, o.latest_ts
            FROM forecasts f JOIN observed o USING (topic, metric, ts)
            WHERE o.recency <= ? AND f.flag NOT IN ('none', 'forecast')
            ORDER BY f.ts DESC, f.topic""", [metric, active_windows]).df()
    return df


def latest_windows(path: str | Path, metric: str) -> dict[str, datetime]:
    """The newest observed window per topic for ``metric``."""
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT topic, max(ts) FROM forecasts WHERE metric = ? AND "
                           "flag <> 'forecast' GROUP BY topic", [metric]).fetchall()
    return {str(t): _utc(ts) for t, ts in rows}


def _fmt(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.4g}"


def flag_alert(row: Any) -> Alert:
    """The firing alert of one flagged ``forecasts`` row (a mapping or a pandas row)."""
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
    return Alert(labels=labels, annotations=annotations, starts_at=ts)


def _many(con: Any, sql: str, rows: list[list[Any]]) -> None:
    if rows:  # DuckDB's executemany refuses an empty list
        con.executemany(sql, rows)


def update_state(path: str | Path, metric: str, firing: list[Alert],
                 latest: dict[str, datetime]) -> tuple[int, int]:
    """Record new firing alerts and resolve open ones of ``metric`` that are no longer firing.

    Returns ``(opened, resolved)`` counts. One write transaction.
    """
    now = datetime.now(UTC)
    keys = {(a.fingerprint, a.starts_at) for a in firing}
    with connect(path) as con:
        con.execute(ALERT_STATE_DDL)
        con.execute("BEGIN TRANSACTION")
        try:
            before = {(f, _utc(s)) for f, s in con.execute(
                "SELECT fingerprint, starts_at FROM alert_state WHERE metric = ?",
                [metric]).fetchall()}
            new = [a for a in firing if (a.fingerprint, a.starts_at) not in before]
            _many(con,
                  "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?, NULL, false, false, ?)",
                  [[a.fingerprint, a.starts_at, a.labels["topic"], metric, a.labels["flag"],
                    json.dumps(a.labels), json.dumps(a.annotations), now] for a in new])
            open_rows = con.execute("SELECT fingerprint, starts_at, topic FROM alert_state "
                                    "WHERE metric = ? AND ends_at IS NULL", [metric]).fetchall()
            gone = [(f, _utc(s), t) for f, s, t in open_rows if (f, _utc(s)) not in keys]
            _many(con, "UPDATE alert_state SET ends_at = ?, updated_at = ? "
                       "WHERE fingerprint = ? AND starts_at = ?",
                  [[latest.get(t, now), now, f, s] for f, s, t in gone])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(new), len(gone)


def pending_alerts(path: str | Path, metric: str) -> list[Alert]:
    """Alerts of ``metric`` whose current state (firing or resolved) has not been sent yet."""
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT labels, annotations, starts_at, ends_at FROM alert_state WHERE metric = ? "
            "AND ((ends_at IS NULL AND NOT firing_sent) OR (ends_at IS NOT NULL AND NOT "
            "resolved_sent)) ORDER BY starts_at, fingerprint", [metric]).fetchall()
    return [Alert(labels=json.loads(lab), annotations=json.loads(ann), starts_at=_utc(start),
                  ends_at=None if end is None else _utc(end)) for lab, ann, start, end in rows]


def mark_sent(path: str | Path, alert: Alert) -> None:
    column = "resolved_sent" if alert.state == "resolved" else "firing_sent"
    with connect(path) as con:
        # a resolved alert sent first also settles its never-delivered firing state
        extra = ", firing_sent = true" if column == "resolved_sent" else ""
        con.execute(f"UPDATE alert_state SET {column} = true{extra}, updated_at = ? "
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
    secret = cfg.alerts.secret or None
    return [Endpoint(url, secret=secret, format=cfg.alerts.format) for url in cfg.alerts.webhooks]


def retry_for(cfg: Config) -> RetryPolicy:
    a = cfg.alerts
    return RetryPolicy(max_attempts=a.max_attempts, initial=a.backoff_seconds,
                       max_delay=a.max_backoff_seconds, timeout=a.timeout_seconds)


def send_flag_alerts(cfg: Config, *, metric: str | None = None,
                     log: Callable[[str], Any] = print,
                     sleep: Callable[[float], Any] = time.sleep) -> dict[str, int]:
    """Sync ``alert_state`` with the active flags of ``metric`` and send what is pending to
    ``[alerts] webhooks``. Returns the counts of :class:`AlertingSummary`."""
    metric = metric or cfg.forecast.metric
    path = cfg.warehouse_path
    endpoints = endpoints_for(cfg)  # validates URLs, secret and format first
    active = active_flags(path, metric)
    firing = [flag_alert(row) for _, row in active.iterrows()]
    summary = AlertingSummary(active=len(firing))
    summary.opened, summary.resolved = update_state(path, metric, firing,
                                                    latest_windows(path, metric))
    pending = pending_alerts(path, metric)
    retry = retry_for(cfg)
    senders = [WebhookSender([ep], path, retry, sleep=sleep, log=log) for ep in endpoints]
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
                log(f"alerts: {ep.url} did not take {alert.labels['flag']} on "
                    f"{alert.labels['topic']}; skipping it for the rest of this run")
        if ok:
            mark_sent(path, alert)
            summary.sent += 1
        else:
            summary.failed += 1
    log(f"alerts {metric}: {summary.active} active flag(s), {summary.opened} new, "
        f"{summary.resolved} resolved, {summary.sent} sent to {len(endpoints)} endpoint(s), "
        f"{summary.failed} pending")
    return summary.as_dict()
