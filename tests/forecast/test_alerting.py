"""Alerts from flags: fired once to a real signing-verifying receiver, resolved once, retried
after a failed run, never re-sent by a re-run of the forecast."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from forecast.alerts.delivery import active_flags, flag_alert
from forecast.run import run_forecast
from polarwatch.config import Config, load_config
from polarwatch.events import Event
from polarwatch.warehouse import connect, init_schema
from tests.forecast.test_forecast import START, seed, window_rows
from tests.forecast.test_webhooks import SECRET, Receiver

N = 120  # hourly windows: 48 of warm-up, a jump at JUMP, so the flag is among the newest 3
JUMP = 118
SHOOTING = Event("Shooting", "guns", START + timedelta(hours=JUMP - 1), "sudden")


def series(n: int) -> np.ndarray:
    rng = np.random.default_rng(21)
    t = np.arange(n)
    y = 4.0 + 0.3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n)
    y[JUMP:] += 3.0
    return y


def config(path: Path, url: str, **alerts: str) -> Config:
    env = {"POLARWATCH_WAREHOUSE_PATH": str(path), "POLARWATCH_ALERTS_WEBHOOKS": url,
           "POLARWATCH_ALERTS_SECRET": SECRET, "POLARWATCH_ALERTS_MAX_ATTEMPTS": "3",
           "POLARWATCH_ALERTS_BACKOFF_SECONDS": "0.01",
           "POLARWATCH_ALERTS_TIMEOUT_SECONDS": "2"}
    env.update({f"POLARWATCH_ALERTS_{k.upper()}": v for k, v in alerts.items()})
    return load_config(path=None, env=env)


@pytest.fixture()
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("guns", series(N)[:N]))
    return path


def forecast(cfg: Config) -> dict[str, int]:
    alerts = run_forecast(cfg, events=[SHOOTING]).alerts
    assert alerts is not None  # webhooks are configured
    return alerts


def test_fires_once_resolves_once(warehouse: Path, receiver: Receiver) -> None:
    cfg = config(warehouse, receiver.url)
    first = forecast(cfg)
    assert first["active"] >= 1 and first["sent"] == first["opened"] == first["active"]
    assert len(receiver.requests) == first["sent"]
    assert all(r["verified"] for r in receiver.requests)  # Standard Webhooks signature
    body = receiver.requests[0]["body"]
    assert body["type"] == "alert.firing"
    labels = body["data"]["labels"]
    assert labels["topic"] == "guns" and labels["flag"] == "reactive"
    assert "after the sudden event 'Shooting'" in body["data"]["annotations"]["description"]

    again = forecast(cfg)  # a re-run (or a restart) sends nothing new
    assert again["sent"] == again["opened"] == 0 and len(receiver.requests) == first["sent"]

    # calm windows until the episode's 24-hour refractory period has passed
    seed(warehouse, window_rows("guns", series(N + 30))[N:])
    later = forecast(cfg)
    assert later["active"] == 0 and later["resolved"] == first["sent"] == later["sent"]
    resolved = receiver.requests[first["sent"]:]
    assert [r["body"]["type"] for r in resolved] == ["alert.resolved"] * first["sent"]
    assert resolved[0]["body"]["data"]["labels"] == labels
    assert resolved[0]["body"]["data"]["endsAt"] != "0001-01-01T00:00:00Z"
    assert forecast(cfg)["sent"] == 0 and len(receiver.requests) == 2 * first["sent"]


def test_long_excursion_one_firing_one_resolved_per_episode(tmp_path: Path,
                                                           receiver: Receiver) -> None:
    """Forecast runs every 3 windows while a wild 30-hour excursion comes and goes: the
    receiver gets exactly one firing then one resolved message per episode."""
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    n = 150
    rng = np.random.default_rng(4)
    t = np.arange(n)
    y = 4.0 + 0.3 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.1, n)
    y[80:110] += np.where(np.arange(30) % 2, 3.0, -2.0)  # flips around its band for 30 hours
    rows = window_rows("guns", y)
    seed(path, rows[:72])
    cfg = config(path, receiver.url)
    for end in range(75, n + 1, 3):
        seed(path, rows[end - 3:end])
        run_forecast(cfg, events=[])
    by_alert: dict[tuple[str, str], list[str]] = {}
    for r in receiver.requests:
        data = r["body"]["data"]
        by_alert.setdefault((data["fingerprint"], data["startsAt"]), []).append(
            r["body"]["type"])
    assert by_alert, "the excursion raised no alert"
    assert all(types == ["alert.firing", "alert.resolved"] for types in by_alert.values()), \
        by_alert
    with connect(path, read_only=True) as con:
        alarms = con.execute("SELECT episode, count(*) FROM forecasts WHERE flag NOT IN "
                             "('none', 'forecast') GROUP BY episode").fetchall()
        in_excursion = con.execute("SELECT count(DISTINCT episode) FROM forecasts WHERE ts >= ? "
                                   "AND ts < ?", [START + timedelta(hours=80),
                                                  START + timedelta(hours=110)]).fetchone()
    assert all(count == 1 for _, count in alarms), alarms  # one alarm row per episode
    assert len(by_alert) == len(alarms)
    assert in_excursion is not None and in_excursion[0] == 1  # the excursion is one episode


def test_receiver_down_then_back_and_alertmanager_format(warehouse: Path) -> None:
    down = Receiver(down_for=100)
    try:
        cfg = config(warehouse, down.url, format="alertmanager")
        first = forecast(cfg)
        assert first["sent"] == 0 and first["failed"] == first["active"] >= 1
        assert len(down.requests) == 3  # one retry schedule, then the endpoint is skipped
        down.down_for = 0
        second = forecast(cfg)  # the next run delivers what is still pending
        assert second["sent"] == first["active"] and second["failed"] == 0
        body = down.requests[-1]["body"]
        assert body["version"] == "4" and body["alerts"][0]["status"] == "firing"
        assert forecast(cfg)["sent"] == 0 and len(down.requests) == 3 + second["sent"]
        with connect(warehouse, read_only=True) as con:
            outcomes = con.execute("SELECT outcome, count(*) FROM alert_deliveries GROUP BY 1 "
                                   "ORDER BY 1").fetchall()
        assert dict(outcomes)["delivered"] == second["sent"]
    finally:
        down.close()


def test_no_webhooks_no_alerts_and_flag_alert_labels(warehouse: Path) -> None:
    cfg = load_config(path=None, env={"POLARWATCH_WAREHOUSE_PATH": str(warehouse)})
    assert run_forecast(cfg, events=[SHOOTING]).alerts is None
    active = active_flags(warehouse, "mean_score")
    assert len(active) >= 1
    alert = flag_alert(active.iloc[0])
    assert alert.labels["severity"] == "warning" and alert.state == "firing"
    assert alert.starts_at.tzinfo is not None


def test_forecast_command_exits_1_while_messages_stay_pending(
        warehouse: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`polarwatch forecast` under cron: a receiver that refuses every message made the
    command exit 0 (only `alerts test` said so); now it exits 1, saying the messages stay
    pending, and the run after the receiver is back exits 0."""
    from polarwatch.cli import main

    down = Receiver(down_for=100)
    try:
        monkeypatch.chdir(warehouse.parent)
        for key, value in {"WAREHOUSE_PATH": str(warehouse), "ALERTS_WEBHOOKS": down.url,
                           "ALERTS_SECRET": SECRET, "ALERTS_MAX_ATTEMPTS": "2",
                           "ALERTS_BACKOFF_SECONDS": "0.01",
                           "EVENTS_FILE": str(warehouse.parent / "events.toml")}.items():
            monkeypatch.setenv(f"POLARWATCH_{key}", value)
        toml = str(Path(__file__).resolve().parents[2] / "polarwatch.toml")
        assert main(["--config", toml, "forecast"]) == 1
        err = capsys.readouterr().err
        assert "alert message(s) did not reach every webhook; they stay pending" in err, err
        assert len(down.requests) == 2
        down.down_for = 0
        assert main(["--config", toml, "forecast"]) == 0, capsys.readouterr().err
        assert len(down.requests) > 2
    finally:
        down.close()
