"""The forecast stage on a warehouse written before versioned migrations (commit c7ae555): the
columns forecast/run.py used to add with its own ALTER TABLE, and the alert tables, now come
from polarwatch.warehouse's migrations, and the old rows stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from forecast.alerts.delivery import update_state
from forecast.alerts.webhooks import Alert
from forecast.run import run_forecast
from polarwatch.migrations import LATEST_VERSION
from polarwatch.warehouse import connect, schema_version, table_columns
from tests.forecast.test_forecast import cfg_for, seed, synthetic, window_rows
from tests.polarwatch.test_warehouse_migrations import _old_file


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """As the stream alone left it at c7ae555: no episode columns, no alert tables."""
    path = tmp_path / "old.duckdb"
    _old_file(path, forecast_ran=False)
    return path


def test_forecast_upgrades_the_file_and_keeps_the_old_rows(old_file: Path) -> None:
    values = synthetic(np.random.default_rng(7), 4.0)
    values[120] += 3.0  # a spike: an episode, written to the columns the migration added
    seed(old_file, window_rows("abortion", values))
    summary = run_forecast(cfg_for(old_file), events=[], alerts=False)
    assert summary.topics == 1 and summary.points > 0
    with connect(old_file, read_only=True) as con:
        assert schema_version(con) == LATEST_VERSION
        names = [n for n, _ in table_columns(con, "forecasts")]
        assert names[-2:] == ["episode", "episode_event"]
        kept = con.execute("SELECT count(*) FROM forecasts WHERE topic = 'gun_control'"
                           ).fetchall()
        episodes = con.execute("SELECT count(*) FROM forecasts WHERE topic = 'abortion' AND "
                               "episode IS NOT NULL").fetchall()
    assert kept == [(2,)]  # the fixture's rows
    assert episodes[0][0] > 0  # the new columns are written


def test_alert_state_is_written_to_an_upgraded_file(old_file: Path) -> None:
    run_forecast(cfg_for(old_file), events=[], alerts=False)  # upgrades it (nothing to fit)
    alert = Alert(labels={"topic": "gun_control", "flag": "spike"})
    key = (alert.fingerprint, alert.starts_at)
    assert update_state(old_file, "mean_score", [alert], {key}, {}) == (1, 0)
