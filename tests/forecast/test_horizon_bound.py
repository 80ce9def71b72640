"""`[forecast] horizon` has a bound (1,000 windows, polarwatch.fields.MAX_HORIZON: 10,000,000 ran
for minutes writing rows), and within it a horizon of long windows can still reach past
2262-04-11, the last date pandas holds: `forecast` stopped with a traceback in its date
arithmetic. Now that is one line naming the largest horizon that fits, before anything is
written, and that horizon itself runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from forecast.run import run_forecast
from polarwatch.config import load_config
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect, init_schema
from tests.forecast.test_forecast import seed, window_rows

YEAR = timedelta(days=365)


def _warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    y = 4.0 + np.random.default_rng(3).normal(0, 0.2, 30)
    seed(path, window_rows("guns", y, start=datetime(1994, 1, 1, tzinfo=UTC), step=YEAR))
    return path


def _forecast(path: Path, horizon: int) -> int:
    cfg = load_config(path=None, env={"POLARWATCH_WAREHOUSE_PATH": str(path),
                                      "POLARWATCH_FORECAST_HORIZON": str(horizon)})
    run_forecast(cfg, events=[])
    with connect(path, read_only=True) as con:
        row = con.execute("SELECT count(*) FROM forecasts WHERE flag = 'forecast'").fetchone()
    assert row is not None
    return int(row[0])


def test_a_horizon_past_pandas_dates_is_one_line_and_the_largest_that_fits_runs(
        tmp_path: Path) -> None:
    path = _warehouse(tmp_path)
    with pytest.raises(ConfigError) as info:
        _forecast(path, 1_000)
    message = str(info.value)
    assert message.startswith("[forecast] horizon 1000 windows of 365d after the newest window "
                              "(2022-12-25)") and "\n" not in message, message
    room = int(message.rsplit("at most ", 1)[1].split(" ")[0].replace(",", ""))
    assert 200 < room < 250, message  # 2022 + room years <= 2262
    with connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM forecasts").fetchone() == (0,)  # nothing written
    assert _forecast(path, room) == room  # the bound itself runs
    with pytest.raises(ConfigError):
        _forecast(path, room + 1)
