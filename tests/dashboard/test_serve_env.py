"""`polarwatch dashboard` (and the demo, which calls dashboard.serve.serve_dashboard) hands the app
``[dashboard] snapshot_seconds`` as ``$POLARWATCH_DASHBOARD_SNAPSHOT_S``, unless the caller's
environment already sets that variable; the app's readers then work on a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.serve import app_env
from dashboard.snapshot import SNAPSHOT_ENV, readable
from polarwatch.config import load_config
from polarwatch.errors import ConfigError
from polarwatch.warehouse import connect

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "polarwatch.toml"


def test_the_app_gets_the_configured_snapshot_age() -> None:
    cfg = load_config(CONFIG, env={})
    assert cfg.dashboard.snapshot_seconds == 5.0
    assert app_env(cfg, base={})[SNAPSHOT_ENV] == "5.0"
    cfg = load_config(CONFIG, env={"POLARWATCH_DASHBOARD_SNAPSHOT_SECONDS": "2.5"})
    assert app_env(cfg, base={"HOME": "/home/x"})[SNAPSHOT_ENV] == "2.5"
    cfg = load_config(CONFIG, env={"POLARWATCH_DASHBOARD_SNAPSHOT_SECONDS": "0"})
    assert app_env(cfg, base={})[SNAPSHOT_ENV] == "0.0"


def test_a_variable_the_caller_set_wins() -> None:
    cfg = load_config(CONFIG, env={SNAPSHOT_ENV: "0"})  # not a config key: ignored by the config
    assert cfg.dashboard.snapshot_seconds == 5.0
    assert app_env(cfg, base={SNAPSHOT_ENV: "0"})[SNAPSHOT_ENV] == "0"
    assert app_env(cfg, env={SNAPSHOT_ENV: "12"}, base={})[SNAPSHOT_ENV] == "12"


def test_a_negative_age_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match="POLARWATCH_DASHBOARD_SNAPSHOT_SECONDS"):
        load_config(CONFIG, env={"POLARWATCH_DASHBOARD_SNAPSHOT_SECONDS": "-1"})


def test_the_app_readers_work_on_a_snapshot_by_default(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = tmp_path / "pw.duckdb"
    with connect(live) as con:
        con.execute("CREATE TABLE t AS SELECT 1 AS i")
    cfg = load_config(CONFIG, env={"POLARWATCH_WAREHOUSE_PATH": str(live)})
    child = app_env(cfg, base={})
    assert child["POLARWATCH_WAREHOUSE_PATH"] == str(live)
    monkeypatch.setenv(SNAPSHOT_ENV, child[SNAPSHOT_ENV])  # what the app process sees
    assert readable(live) == live.with_name(f".{live.name}.snapshot")
