"""An open episode whose class rises in severity (info -> warning) gets one firing update, with
the new class, the same fingerprint and startsAt and a webhook-id of its own; a de-escalation
sends nothing; the resolved message carries the final class. Idempotent across runs and safe
against a crash between the receiver's 2xx and the record."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from forecast.alerts.delivery import episode_alarms, flag_alert, news, send_flag_alerts
from forecast.alerts.state import mark_sent, pending_alerts, update_state
from forecast.alerts.webhooks import Endpoint, WebhookSender, fingerprint_of
from polarwatch.config import Config
from polarwatch.warehouse import connect, init_schema, transaction
from tests.forecast.test_alert_episodes import NOW, iso, write_history
from tests.forecast.test_alerting import config
from tests.forecast.test_forecast import START
from tests.forecast.test_webhooks import SECRET, Receiver

OPENED = 100  # the episode's alarm window (hours after START)


def one_open_episode(tmp_path: Path) -> Path:
    """A warehouse holding one open episode, raised as a spike."""
    p = tmp_path / "pw.duckdb"
    init_schema(p)
    write_history(p, 120, [(OPENED, None)])
    return p


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return one_open_episode(tmp_path)


def reclassify(path: Path, flag: str) -> None:
    """The alarm row's class changes, as when events.toml is edited."""
    with transaction(path) as con:
        con.execute("UPDATE forecasts SET flag = ?, explanation = ? WHERE episode_event = "
                    "'open'", [flag, f"{flag}: test"])


def resolve(path: Path) -> None:
    write_history(path, 120, [(OPENED, 116)])


def sent(receiver: Receiver) -> list[tuple[str, str, str, str, str]]:
    """(type, fingerprint, startsAt, flag, severity) of every message received."""
    return [(r["body"]["type"], r["body"]["data"]["fingerprint"], r["body"]["data"]["startsAt"],
             r["body"]["data"]["labels"]["flag"], r["body"]["data"]["labels"]["severity"])
            for r in receiver.requests]


def counts(cfg: Config) -> tuple[int, int, int]:
    """(sent, escalated, failed) of one run."""
    s = send_flag_alerts(cfg)
    return s["sent"], s["escalated"], s["failed"]


def test_one_update_per_escalation_none_for_a_de_escalation(path: Path,
                                                             receiver: Receiver) -> None:
    cfg = config(path, receiver.url)
    assert counts(cfg) == (1, 0, 0)
    [(_, key, starts, _, _)] = sent(receiver)
    reclassify(path, "reactive")  # info -> warning
    assert counts(cfg) == (1, 1, 0)
    assert sent(receiver)[1] == ("alert.firing", key, starts, "reactive", "warning")
    update = receiver.requests[1]
    assert update["id"] != receiver.requests[0]["id"] and update["verified"]
    assert update["body"]["data"]["annotations"]["escalated_from"] == "spike (info)"
    assert update["body"]["data"]["endsAt"] == "0001-01-01T00:00:00Z"  # still firing
    assert counts(cfg) == (0, 0, 0)  # once, not every run
    reclassify(path, "dip")  # warning -> info: nothing until it resolves
    assert counts(cfg) == (0, 0, 0)
    reclassify(path, "anticipatory")  # warning again: receivers already have a warning
    assert counts(cfg) == (0, 0, 0)
    resolve(path)  # (rewrites the alarm row as a spike)
    reclassify(path, "dip")
    assert counts(cfg) == (1, 0, 0)
    assert sent(receiver)[2] == ("alert.resolved", key, starts, "dip", "info")
    assert receiver.requests[2]["body"]["data"]["annotations"]["summary"].startswith("dip on")
    assert counts(cfg) == (0, 0, 0) and len(receiver.requests) == 3


def test_an_update_delivered_before_a_crash_is_not_sent_twice(path: Path,
                                                              receiver: Receiver) -> None:
    """The receiver took the update, then the run died before recording it: the next run
    sends it under the same webhook-id, which the delivery log de-duplicates."""
    cfg = config(path, receiver.url)
    assert counts(cfg) == (1, 0, 0)
    reclassify(path, "reactive")
    alarms = episode_alarms(path, "mean_score")
    alerts = [flag_alert(r) for _, r in alarms.iterrows()]
    recent = {(a.fingerprint, a.starts_at) for a, ok in zip(alerts, news(alarms), strict=True)
              if ok}
    update_state(path, "mean_score", alerts, recent, {})
    [update] = pending_alerts(path, "mean_score")
    sender = WebhookSender([Endpoint(receiver.url, secret=SECRET)], path)
    [result] = sender.send(update)  # delivered; the crash comes before mark_sent
    assert result.delivered and len(receiver.requests) == 2
    assert counts(cfg) == (1, 1, 0)  # recorded now, from the delivery log ...
    assert len(receiver.requests) == 2  # ... not sent again
    with connect(path, read_only=True) as con:
        ids = con.execute("SELECT DISTINCT webhook_id FROM alert_deliveries WHERE outcome = "
                          "'delivered'").fetchall()
    assert sorted(i for (i,) in ids) == sorted(r["id"] for r in receiver.requests)
    assert counts(cfg) == (0, 0, 0)


def test_an_update_queued_while_the_first_message_is_in_flight_is_kept(
        path: Path, receiver: Receiver) -> None:
    """The firing message is read, the class escalates before it is recorded as sent: the
    record of the first message does not swallow the update."""
    cfg = config(path, receiver.url)
    alarms = episode_alarms(path, "mean_score")
    [alert] = [flag_alert(r) for _, r in alarms.iterrows()]
    update_state(path, "mean_score", [alert], {(alert.fingerprint, alert.starts_at)}, {})
    [first] = pending_alerts(path, "mean_score")
    reclassify(path, "reactive")
    [now] = [flag_alert(r) for _, r in episode_alarms(path, "mean_score").iterrows()]
    update_state(path, "mean_score", [now], set(), {})
    mark_sent(path, first)  # the in-flight spike message reached every endpoint
    assert counts(cfg) == (1, 1, 0)
    assert sent(receiver) == [("alert.firing", alert.fingerprint, iso(OPENED), "reactive",
                               "warning")]


def test_an_alert_recorded_before_updates_existed_is_escalated_once(
        path: Path, receiver: Receiver) -> None:
    """alert_state as the previous version left it: the class followed to reactive in ``flag``
    while receivers only ever got the spike (info) labels."""
    labels = {"alertname": "PolarwatchFlag", "topic": "guns", "metric": "mean_score",
              "flag": "spike", "severity": "info"}
    key = fingerprint_of({k: labels[k] for k in ("alertname", "topic", "metric")})
    note: dict[str, Any] = {"summary": "reactive on guns"}
    with transaction(path) as con:
        con.execute("INSERT INTO alert_state VALUES (?, ?, 'guns', 'mean_score', 'reactive', ?, "
                    "?, NULL, true, false, ?)",
                    [key, START + timedelta(hours=OPENED), json.dumps(labels), json.dumps(note),
                     NOW])
    reclassify(path, "reactive")
    cfg = config(path, receiver.url)
    assert counts(cfg) == (1, 1, 0)
    assert sent(receiver) == [("alert.firing", key, iso(OPENED), "reactive", "warning")]
    assert counts(cfg) == (0, 0, 0)
