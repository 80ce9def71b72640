"""The table ``alert_state`` (contract :class:`polarwatch.tables.AlertState`): every alert ever
raised, its class now, the message receivers get next and which messages reached them.

One row per episode, keyed by its fingerprint and ``starts_at``:

- ``flag``: the episode's class now (it follows the alarm row of ``forecasts``);
- ``labels``: the labels of the episode's **latest firing message**, the one sent (or to be
  sent while ``firing_sent`` is false): its first message, or the escalation update that
  superseded it;
- ``annotations``: follow the class now; an escalation update adds :data:`ESCALATED_FROM`
  (the class and severity receivers had been sent), which also marks the row's firing message
  as an update (:func:`pending_alerts` gives it the revision that makes its ``webhook-id``
  new);
- ``ends_at``, ``firing_sent``, ``resolved_sent``.

An **escalation** (the class of an open episode now has a higher :data:`SEVERITY` than its
latest firing message) replaces that message in one transaction: new labels, the
:data:`ESCALATED_FROM` annotation, ``firing_sent`` false. So it is sent once, on the next
delivery, and never again: the next run compares with the labels of the update. A
de-escalation, or a change within one severity, changes ``flag`` and the annotations and sends
nothing; the resolved message carries the final class (:func:`pending_alerts`). While no
endpoint has taken the pending firing message (the delivery log), such a change replaces its
labels too, or withdraws an update whose class fell back to what receivers have.

``firing_sent`` says every endpoint *then* configured has the firing message; an endpoint added
since is found by the delivery log (:func:`firing_lacked`) and sent it before any resolved one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from forecast.alerts.webhooks import OUTCOME_DELIVERED, Alert, webhook_id
from polarwatch.warehouse import connect, transaction

LOG = logging.getLogger(__name__)

# Classified flags matter more than a lone one-window exceedance.
SEVERITY = {"anticipatory": "warning", "reactive": "warning", "spike": "info", "dip": "info"}
# Which severity is higher: an escalation is a rise in this rank (unknown severities rank 0).
SEVERITY_RANK = {"info": 0, "warning": 1}
# The annotation of an escalation update: "<class> (<severity>)" of the message it supersedes.
ESCALATED_FROM = "escalated_from"


def utc(value: Any) -> datetime:
    return pd.Timestamp(value).tz_convert(UTC).to_pydatetime()


def severity_of(flag: str) -> str:
    return SEVERITY.get(flag, "info")


def _rank(labels: dict[str, str]) -> int:
    return SEVERITY_RANK.get(labels.get("severity", "info"), 0)


def _many(con: Any, sql: str, rows: list[list[Any]]) -> None:
    if rows:  # DuckDB's executemany refuses an empty list
        con.executemany(sql, rows)


def _delivered(con: Any, message: Alert) -> bool:
    """Whether the delivery log holds ``message`` (its ``webhook-id``) delivered to an
    endpoint."""
    rows = con.execute("SELECT DISTINCT endpoint, webhook_id FROM alert_deliveries WHERE "
                       "fingerprint = ? AND starts_at = ? AND state = 'firing' AND outcome = ?",
                       [message.fingerprint, message.starts_at, OUTCOME_DELIVERED]).fetchall()
    return any(webhook_id(endpoint, message) == sent for endpoint, sent in rows)


def _unsent_follows(message: dict[str, str], kept: dict[str, str], flag: str, severity: str
                    ) -> tuple[dict[str, str], str | None]:
    """The labels of a firing message no endpoint has, now that the class is ``flag``, and its
    :data:`ESCALATED_FROM` (None: a first message). A first message takes the class; an
    escalation update too while the class is above what receivers have (its
    :data:`ESCALATED_FROM`), else it is withdrawn: the labels go back to what they have."""
    base = kept.get(ESCALATED_FROM)
    had = re.fullmatch(r"(\S+) \((\S+)\)", base or "")
    if base is not None and had and SEVERITY_RANK.get(severity, 0) <= SEVERITY_RANK.get(
            had[2], 0):
        return {**message, "flag": had[1], "severity": had[2]}, None
    return {**message, "flag": flag, "severity": severity}, base


def update_state(path: str | Path, metric: str, alerts: list[Alert], recent: set[tuple[str, Any]],
                 latest: dict[str, datetime]) -> tuple[int, int]:
    """Record new alerts (firing, or already resolved: ``ends_at`` set), follow class changes,
    queue escalation updates and resolve open ones.

    ``alerts`` has one alert per alarm row of ``forecasts``. An alert whose episode (topic,
    starts_at) has no row in ``alert_state`` is recorded when its (fingerprint, starts_at) is in
    ``recent`` (``delivery.news``). A recorded alert keeps its fingerprint. When its open
    episode's class changed, ``flag`` and the annotations follow; when the new class is more
    severe than the labels of its latest firing message, that message is replaced by an
    escalation update (module docstring). An open alert resolves with its episode, or at its
    topic's newest window when its alarm row is gone. Returns ``(opened, resolved)`` counts.
    One write transaction.
    """
    now = datetime.now(UTC)
    by_episode = {(a.labels["topic"], a.starts_at): a for a in alerts}
    with transaction(path) as con:
        rows = con.execute("SELECT fingerprint, starts_at, topic, flag, ends_at, labels, "
                           "annotations, firing_sent FROM alert_state WHERE metric = ?",
                           [metric]).fetchall()
        known = {(str(topic), utc(start)) for _, start, topic, *_ in rows}
        new = [a for k, a in by_episode.items()
               if k not in known and (a.fingerprint, a.starts_at) in recent]
        _many(con,
              "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, false, false, ?)",
              [[a.fingerprint, a.starts_at, a.labels["topic"], metric, a.labels["flag"],
                json.dumps(a.labels), json.dumps(a.annotations), a.ends_at, now] for a in new])
        ends, changed, escalated, replaced = [], [], [], []
        for f, start, topic, flag, end, lab, ann, firing_sent in rows:
            if end is not None:
                continue  # resolved: history
            alert = by_episode.get((str(topic), utc(start)))
            if alert is None:
                ends.append([latest.get(topic, now), now, f, start])
                continue
            if alert.ends_at is not None:
                ends.append([alert.ends_at, now, f, start])
            now_flag = alert.labels.get("flag", flag)
            message, kept = json.loads(lab), json.loads(ann)
            # compared with what receivers were (or are about to be) sent, not with `flag`
            rises = alert.ends_at is None and _rank(alert.labels) > _rank(message)
            if now_flag == flag and not rises:
                continue
            annotations = dict(alert.annotations)
            where = f"the {topic} episode of {utc(start):%Y-%m-%d %H:%M} UTC"
            # a pending message no endpoint has follows a change that is no escalation (a rise
            # is one: the message may be in flight, and its webhook-id would not change)
            if not (rises or firing_sent or _delivered(con, _firing_message(f, lab, ann, start))):
                labels, base = _unsent_follows(message, kept, now_flag, severity_of(now_flag))
                withdrawn = ESCALATED_FROM in kept and base is None
                if base is not None:
                    annotations[ESCALATED_FROM] = base
                replaced.append([now_flag, json.dumps(labels), json.dumps(annotations),
                                 withdrawn, now, f, start])
                LOG.info(f"alerts: {where} is now {now_flag} (was {flag}); its firing "
                         f"{'update' if ESCALATED_FROM in kept else 'message'}, delivered to "
                         f"no endpoint yet, " + (f"is withdrawn: receivers have "
                                                 f"{kept[ESCALATED_FROM]}" if withdrawn
                                                 else "follows the class"))
                continue
            if ESCALATED_FROM in kept:
                annotations[ESCALATED_FROM] = kept[ESCALATED_FROM]
            if rises:
                if firing_sent or ESCALATED_FROM not in kept:  # what receivers were sent
                    annotations[ESCALATED_FROM] = (f"{message.get('flag', flag)} "
                                                   f"({message.get('severity', 'info')})")
                labels = {**message, "flag": now_flag,
                          "severity": alert.labels.get("severity", severity_of(now_flag))}
                escalated.append([now_flag, json.dumps(labels), json.dumps(annotations), now,
                                  f, start])
                LOG.info(f"alerts: {where} escalated to {now_flag} ({labels['severity']}), "
                         f"was {annotations[ESCALATED_FROM]}: a firing update is queued")
            else:
                changed.append([now_flag, json.dumps(annotations), now, f, start])
                LOG.info(f"alerts: {where} is now {now_flag} (was {flag}); no severity above "
                         f"its last firing message, so nothing is sent for it: its resolved "
                         f"message will name the class")
        _many(con, "UPDATE alert_state SET flag = ?, annotations = ?, updated_at = ? "
                   "WHERE fingerprint = ? AND starts_at = ?", changed)
        _many(con, "UPDATE alert_state SET flag = ?, labels = ?, annotations = ?, "
                   "firing_sent = false, updated_at = ? WHERE fingerprint = ? AND starts_at = ?",
              escalated)
        _many(con, "UPDATE alert_state SET flag = ?, labels = ?, annotations = ?, "
                   "firing_sent = ?, updated_at = ? WHERE fingerprint = ? AND starts_at = ?",
              replaced)
        _many(con, "UPDATE alert_state SET ends_at = ?, updated_at = ? "
                   "WHERE fingerprint = ? AND starts_at = ?", ends)
    return len(new), len(ends) + sum(a.ends_at is not None for a in new)


def recorded_episodes(path: str | Path, metric: str) -> set[tuple[str, datetime]]:
    """(topic, starts_at) of every alert of ``metric`` in ``alert_state``."""
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT topic, starts_at FROM alert_state WHERE metric = ?",
                           [metric]).fetchall()
    return {(str(t), utc(s)) for t, s in rows}


def pending_alerts(path: str | Path, metric: str) -> list[Alert]:
    """Messages of ``metric`` not sent yet, oldest episode first: an episode's firing message
    (its first, or an escalation update with the revision of its new severity) always comes
    before its resolved one, which carries the episode's final class."""
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT fingerprint, labels, annotations, starts_at, ends_at, firing_sent, "
            "resolved_sent, flag FROM alert_state WHERE metric = ? AND (NOT firing_sent OR "
            "(ends_at IS NOT NULL AND NOT resolved_sent)) ORDER BY starts_at, fingerprint",
            [metric]).fetchall()
    out = []
    for key, lab, ann, start, end, firing_sent, resolved_sent, flag in rows:
        labels, annotations = json.loads(lab), json.loads(ann)
        # the stored fingerprint is the identity (rows from before IDENTITY_LABELS keep theirs)
        if not firing_sent:
            out.append(_firing_message(key, lab, ann, start))
        if end is not None and not resolved_sent:
            out.append(Alert(labels=_final(labels, flag), annotations=annotations,
                             starts_at=utc(start), ends_at=utc(end), key=str(key)))
    return out


def _final(labels: dict[str, str], flag: str) -> dict[str, str]:
    """``labels`` with the class now (a resolved message's, a new endpoint's first)."""
    return {**labels, "flag": flag} | ({"severity": severity_of(flag)} if "severity" in labels
                                       else {})


def _firing_message(key: Any, lab: str, ann: str, start: Any) -> Alert:
    """The row's latest firing message (an escalation update with its revision)."""
    labels, annotations = json.loads(lab), json.loads(ann)
    update = ESCALATED_FROM in annotations
    return Alert(labels=labels, annotations=annotations, starts_at=utc(start), key=str(key),
                 revision=labels.get("severity", "") if update else "")


def firing_lacked(path: str | Path, metric: str, urls: list[str]
                  ) -> list[tuple[Alert, set[str]]]:
    """Firing messages marked sent that an endpoint of ``urls`` lacks, with the URLs lacking
    each: the latest firing message of every episode whose resolved message is not sent yet
    (open, or resolved since) when the delivery log has no firing message of that episode
    delivered to the endpoint (one added to ``[alerts] webhooks`` since). It gets the firing
    message before any resolved one, never a resolved message alone; as its first, with the
    class now and no :data:`ESCALATED_FROM` (the ``webhook-id`` stays the stored message's)."""
    if not urls:
        return []
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT s.fingerprint, s.labels, s.annotations, s.starts_at, s.flag, "
            "list(e.url ORDER BY e.url) FROM alert_state s, (SELECT unnest(?::VARCHAR[]) AS url) e "
            "WHERE s.metric = ? AND s.firing_sent AND NOT s.resolved_sent AND NOT EXISTS ("
            "  SELECT 1 FROM alert_deliveries d WHERE d.endpoint = e.url AND d.fingerprint = "
            "  s.fingerprint AND d.starts_at = s.starts_at AND d.state = 'firing' AND "
            "  d.outcome = ?) GROUP BY ALL ORDER BY s.starts_at, s.fingerprint",
            [urls, metric, OUTCOME_DELIVERED]).fetchall()
    out = []
    for key, lab, ann, start, flag, lacking in rows:
        stored = _firing_message(key, lab, ann, start)
        first = {k: v for k, v in stored.annotations.items() if k != ESCALATED_FROM}
        out.append((dataclasses.replace(stored, labels=_final(stored.labels, flag),
                                        annotations=first), set(lacking)))
    return out


def mark_sent(path: str | Path, alert: Alert) -> None:
    """Record that every endpoint has ``alert``; a firing message only while it is still the
    row's latest (an update queued meanwhile stays pending)."""
    with transaction(path) as con:
        if alert.state == "resolved":
            con.execute("UPDATE alert_state SET resolved_sent = true, updated_at = ? "
                        "WHERE fingerprint = ? AND starts_at = ?",
                        [datetime.now(UTC), alert.fingerprint, alert.starts_at])
            return
        key = [alert.fingerprint, alert.starts_at]
        row = con.execute("SELECT labels FROM alert_state WHERE fingerprint = ? AND "
                          "starts_at = ?", key).fetchone()
        if row is not None and json.loads(row[0]) == alert.labels:
            con.execute("UPDATE alert_state SET firing_sent = true, updated_at = ? "
                        "WHERE fingerprint = ? AND starts_at = ?", [datetime.now(UTC), *key])
