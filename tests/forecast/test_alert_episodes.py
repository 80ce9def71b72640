"""Which episodes become alerts, and under which identity: episodes that opened and resolved
between two runs, a bounded first run on a long history, class changes, alerts recorded before
the identity left out the class; the failing-endpoint warning and ``alerts test``'s secret."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from forecast.alerts.delivery import send_flag_alerts
from forecast.alerts.sample import sample_secret
from forecast.alerts.webhooks import fingerprint_of
from forecast.run import run_forecast
from polarwatch.config import load_config
from polarwatch.errors import PolarwatchError
from polarwatch.warehouse import connect, init_schema, transaction
from tests.forecast.test_alerting import SHOOTING, config
from tests.forecast.test_forecast import START, seed, window_rows
from tests.forecast.test_webhooks import Receiver


def hourly(n: int, *, spike: tuple[int, int] | None = None, jump: int | None = None
           ) -> np.ndarray:
    rng = np.random.default_rng(21)
    t = np.arange(n)
    y = 4.0 + 0.3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n)
    if spike:
        y[spike[0]:spike[1]] += 3.0
    if jump is not None:
        y[jump:] += 3.0
    return y


def messages(receiver: Receiver) -> list[tuple[str, str, str, str]]:
    """(type, fingerprint, startsAt, flag label) of every message received."""
    return [(r["body"]["type"], r["body"]["data"]["fingerprint"], r["body"]["data"]["startsAt"],
             r["body"]["data"]["labels"]["flag"]) for r in receiver.requests]


def test_an_episode_between_two_runs_is_sent_firing_then_resolved(tmp_path: Path,
                                                                   receiver: Receiver) -> None:
    """21 windows arrive at once (a stream catching up): the spike at window 100 opened and
    resolved between the two runs, and still reaches the receiver, firing then resolved."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    y = hourly(120, spike=(100, 104))
    seed(path, window_rows("guns", y[:99]))
    cfg = config(path, receiver.url)
    assert run_forecast(cfg, events=[]).alerts == dict(active=0, opened=0, resolved=0, sent=0,
                                                       failed=0, escalated=0, history=0, deferred=0)
    seed(path, window_rows("guns", y)[99:])
    second = run_forecast(cfg, events=[]).alerts
    assert second is not None and second["active"] == 0
    assert second["opened"] == second["resolved"] == 1 and second["sent"] == 2
    got = messages(receiver)
    assert [m[0] for m in got] == ["alert.firing", "alert.resolved"], got
    assert got[0][1:] == got[1][1:]  # one alert: same fingerprint, startsAt and class
    assert got[0][2] == f"{START + timedelta(hours=100):%Y-%m-%dT%H:%M:%SZ}"
    assert receiver.requests[1]["body"]["data"]["endsAt"] > got[0][2]
    assert run_forecast(cfg, events=[]).alerts["sent"] == 0  # type: ignore[index]
    assert len(receiver.requests) == 2


def test_a_class_change_keeps_the_alert_open_and_escalates_once(tmp_path: Path,
                                                                 receiver: Receiver) -> None:
    """events.toml gains the sudden event before the jump: the open spike episode (info)
    becomes reactive (warning). One firing update with the new class and severity, the same
    fingerprint and startsAt, a webhook-id of its own; no resolved message for the open
    episode, nothing more on later runs; the resolved message closes it with the final class."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("guns", hourly(120, jump=118)))
    cfg = config(path, receiver.url)
    first = run_forecast(cfg, events=[]).alerts
    assert first is not None and first["sent"] == first["opened"] == 1
    [(kind, fingerprint, starts, flag)] = messages(receiver)
    assert (kind, flag) == ("alert.firing", "spike")
    changed = run_forecast(cfg, events=[SHOOTING]).alerts
    assert changed == dict(active=1, opened=0, resolved=0, sent=1, failed=0, escalated=1,
                           history=0, deferred=0)
    assert messages(receiver)[1] == ("alert.firing", fingerprint, starts, "reactive")
    update = receiver.requests[1]
    assert update["body"]["data"]["labels"]["severity"] == "warning"
    assert update["body"]["data"]["annotations"]["escalated_from"] == "spike (info)"
    assert update["body"]["data"]["annotations"]["summary"].startswith("reactive on guns")
    assert update["id"] != receiver.requests[0]["id"]  # receivers de-duplicate on it
    assert run_forecast(cfg, events=[SHOOTING]).alerts == dict(  # once, not every run
        active=1, opened=0, resolved=0, sent=0, failed=0, escalated=0, history=0, deferred=0)
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT fingerprint, flag, ends_at, firing_sent FROM alert_state"
                           ).fetchall()
    assert rows == [(fingerprint, "reactive", None, True)]

    seed(path, window_rows("guns", hourly(150, jump=118))[120:])  # the level settles: resolved
    later = run_forecast(cfg, events=[SHOOTING]).alerts
    assert later is not None and later["resolved"] == later["sent"] == 1
    assert messages(receiver)[2:] == [("alert.resolved", fingerprint, starts, "reactive")]
    assert receiver.requests[2]["body"]["data"]["labels"]["severity"] == "warning"


NOW = datetime(2026, 3, 1, tzinfo=UTC)


def write_history(path: Path, hours: int, episodes: list[tuple[int, int | None]],
                  topic: str = "guns") -> None:
    """Hourly observed rows of ``forecasts`` as the forecast stage writes them: one alarm row
    (``spike``, event ``open``) per episode at its first index, a ``resolve`` row at its
    second (None: still open)."""
    rows: list[dict[str, Any]] = [
        dict(topic=topic, metric="mean_score", ts=START + timedelta(hours=i), y=4.0,
             forecast=4.0, lower=3.0, upper=5.0, flag="none", model="test", created_at=NOW,
             anomaly_score=0.1, explanation=None, episode=None, episode_event=None)
        for i in range(hours)]
    for n, (opened, resolved) in enumerate(episodes, 1):
        rows[opened].update(flag="spike", episode=n, episode_event="open", y=8.0,
                            explanation="spike: test")
        for i in range(opened + 1, (hours - 1 if resolved is None else resolved) + 1):
            rows[i]["episode"] = n
        if resolved is not None:
            rows[resolved]["episode_event"] = "resolve"
    frame = pd.DataFrame(rows).astype({"episode": "Int64"})
    cols = ", ".join(frame.columns)
    with transaction(path) as con:
        con.register("history", frame)
        con.execute(f"INSERT OR REPLACE INTO forecasts ({cols}) SELECT {cols} FROM history")
        con.unregister("history")


def iso(hour: int) -> str:
    return f"{START + timedelta(hours=hour):%Y-%m-%dT%H:%M:%SZ}"


def test_a_first_run_on_a_long_history_sends_the_last_week_only(
        tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    """30 days, 10 old episodes, 11 closed in the last week, one open: the first run sends the
    open one and the 10 newest closed ones (firing, resolved); the rest is history."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    old = [(48 * k + 24, 48 * k + 37) for k in range(10)]  # resolved 13 h later, days 1-20
    week = [(554 + 14 * k, 567 + 14 * k) for k in range(11)]  # last 7 days of window 719
    write_history(path, 720, [*old, *week, (710, None)])
    cfg = config(path, receiver.url)
    with caplog.at_level(logging.INFO, logger="forecast.alerts.delivery"):
        summary = send_flag_alerts(cfg)
    assert summary == dict(active=1, opened=11, resolved=10, sent=21, failed=0, escalated=0,
                           history=11, deferred=0)
    by_start: dict[str, list[str]] = {}
    for kind, _, starts, _ in messages(receiver):
        by_start.setdefault(starts, []).append(kind)
    assert by_start == {**{iso(o): ["alert.firing", "alert.resolved"] for o, _ in week[1:]},
                        iso(710): ["alert.firing"]}
    assert "11 closed episode(s) from before the 7-day look-back" in caplog.text
    assert send_flag_alerts(cfg)["sent"] == 0 and len(receiver.requests) == 21


def test_an_alert_recorded_with_its_class_in_the_fingerprint_keeps_it(
        tmp_path: Path, receiver: Receiver) -> None:
    """alert_state written before the identity left the class out (and the delivery log of
    its firing message): the open alert is matched by its episode, not re-sent, not resolved,
    and its resolved message keeps the old id."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, None)])
    labels = {"alertname": "PolarwatchFlag", "topic": "guns", "metric": "mean_score",
              "flag": "spike", "severity": "info"}
    legacy = fingerprint_of(labels)  # what Alert.fingerprint was: every label, class included
    with transaction(path) as con:
        con.execute("INSERT INTO alert_state VALUES (?, ?, 'guns', 'mean_score', 'spike', ?, "
                    "'{}', NULL, true, false, ?)",
                    [legacy, START + timedelta(hours=100), json.dumps(labels), NOW])
        con.execute("INSERT INTO alert_deliveries VALUES (?, ?, 'firing', ?, 'msg_old', 1, 200, "
                    "NULL, 'delivered', ?)",
                    [receiver.url, legacy, START + timedelta(hours=100), NOW])
    cfg = config(path, receiver.url)
    assert send_flag_alerts(cfg) == dict(active=1, opened=0, resolved=0, sent=0, failed=0,
                                         escalated=0, history=0, deferred=0)
    assert receiver.requests == []
    write_history(path, 120, [(100, 114)])
    assert send_flag_alerts(cfg)["sent"] == 1
    assert messages(receiver) == [("alert.resolved", legacy, iso(100), "spike")]


def test_a_failing_endpoint_is_named_by_its_host_only(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, None)])
    gone = Receiver()
    url = gone.url + "?token=SECRETTOKEN123"
    gone.close()  # connection refused from now on
    with caplog.at_level(logging.INFO):
        summary = send_flag_alerts(config(path, url, max_attempts="1"))
    assert summary["failed"] == 1 and "did not take spike on guns" in caplog.text
    assert "SECRETTOKEN123" not in caplog.text and "/hook" not in caplog.text
    assert f"{gone.url.rsplit('/', 1)[0]}/… did not take" in caplog.text


@pytest.mark.parametrize("pasted", ["Zm9vYmFyYmF6cXV4cXV1eHh5eno0NTY3ODkwMTIz",
                                    "whsec_Zm9vYmFyYmF6cXV4cXV1eHh5eno0NTY3"])
def test_alerts_test_never_echoes_a_pasted_secret(pasted: str) -> None:
    """A secret given where --secret-env wants a variable name: refused, never repeated (both
    pass the identifier check: base64 without +, / or =)."""
    cfg = load_config(path=None, env={})
    with pytest.raises(PolarwatchError) as refused:
        sample_secret(cfg, pasted)
    assert pasted not in str(refused.value) and pasted[6:20] not in str(refused.value)
    assert "--secret-env" in str(refused.value) and "export" in str(refused.value)
    with pytest.raises(PolarwatchError, match="--secret-env PW_UNSET_TEST_SECRET: that "
                                              "variable is not set"):
        sample_secret(cfg, "PW_UNSET_TEST_SECRET")  # a variable name is shown
