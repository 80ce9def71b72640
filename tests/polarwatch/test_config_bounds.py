"""Upper bounds of the config's time keys (audit finding 5).

`[ingest] max_future_skew_hours = 100000000` crashed `ingest file` (OverflowError) and `stream`
(~240 lines of traceback); 60000000 stored posts dated 2262-04-11 that `forecast` could not read
(OutOfBoundsDatetime). The other time keys overflowed the same way: `keep_days` the stream's
retention, `retention_hours` `broker prune`, the `[alerts]` seconds the forecast's webhook
delivery, `[aggregate]` durations the forecast and DuckDB, and `prune_every_s` past 1e6 (or
below 1e-4) killed the pruner `broker start` said was running. Each is now bounded when the
config loads, with one line saying the bound and why; at the bounds every stage runs.

Two whole-number keys had no bound either: `[topics] partitions = 3000000000` stopped `broker
start` with kafka-python's `struct.error: argument out of range` (CreateTopics' partition count
is an INT32), and `[alerts] max_attempts = 2000` the forecast's webhook delivery with an
OverflowError (its backoff doubles per attempt, a float past 2**1023).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from forecast.alerts.delivery import retry_for
from polarwatch.argtypes import moment
from polarwatch.config import load_config
from polarwatch.config_errors import env_var
from polarwatch.errors import ConfigError
from polarwatch.fields import (
    MAX_ATTEMPTS,
    MAX_DURATION,
    MAX_KEEP_DAYS,
    MAX_PARTITIONS,
    MAX_SKEW_HOURS,
    parse_duration,
)
from polarwatch.warehouse import connect
from stream.job import run_stream
from tests.kafka_helpers import stream_env

if TYPE_CHECKING:
    from ingest.broker import EmbeddedBroker

REPO = Path(__file__).resolve().parents[2]
TEN_YEARS = "10 years: pandas holds dates only up to 2262-04-11"

# (section, key, the largest value accepted, a value just above it, why the error gives)
NUMBERS = [
    ("ingest", "max_future_skew_hours", 87_600, 87_600.5, TEN_YEARS),
    ("broker", "retention_hours", 87_600, 87_601, TEN_YEARS),
    ("warehouse", "keep_days", 3_650, 3_650.1, TEN_YEARS),
    ("spark", "trigger_seconds", 86_400, 86_401, "a day: Spark"),
    ("alerts", "backoff_seconds", 86_400, 86_401, "a day: the forecast run sleeps"),
    ("alerts", "max_backoff_seconds", 86_400, 1e300, "a day: the forecast run sleeps"),
    ("alerts", "timeout_seconds", 3_600, 1e10, "an hour: a request waits this long"),
    ("dashboard", "llm_assist_seconds", 3_600, 3_601, "an hour: the Label page waits"),
    # whole numbers: the audit's partitions (kafka-python's struct.error: an INT32 field) and
    # a retry count whose backoff (2**k) overflowed a float in the forecast's delivery
    ("topics", "partitions", 1_000, 3_000_000_000, "the posts and dead-letter topics"),
    ("topics", "partitions", 1_000, 99999999999999999999999, "the posts and dead-letter"),
    ("alerts", "max_attempts", 100, 2_000, "the forecast retries a webhook this many times"),
    # 10,000,000 windows ahead ran for minutes writing forecast rows (test_horizon_bound.py)
    ("forecast", "horizon", 1_000, 1_001, "windows ahead: each is a stored forecasts row"),
]
DURATIONS = [("aggregate", key) for key in ("window", "watermark", "orphan_horizon")]


@pytest.mark.parametrize(("section", "key", "bound", "over", "why"), NUMBERS)
def test_a_number_above_its_bound_is_one_line_naming_the_bound_and_why(
        tmp_path: Path, section: str, key: str, bound: float, over: float, why: str) -> None:
    path = tmp_path / "pw.toml"
    path.write_text(f"[{section}]\n{key} = {over!r}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    message = str(info.value)
    assert message.startswith(f"{path} [{section}] {key}: expected a number of at most "
                              f"{bound:,} ({why}"), message
    assert message.endswith(f"), got {over!r}") and "\n" not in message
    # the same value from the environment names the variable
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    with pytest.raises(ConfigError, match=rf"^\${env_var(section, key)}: expected a number of "
                                          rf"at most {bound:,} \("):
        load_config(empty, env={env_var(section, key): repr(over)})
    path.write_text(f"[{section}]\n{key} = {bound}\n")  # the bound itself is accepted
    assert getattr(getattr(load_config(path, env={}), section), key) == bound


def test_the_most_attempts_wait_a_finite_time_at_most_a_day_each(tmp_path: Path) -> None:
    """2,000 attempts stopped the forecast's webhook delivery with OverflowError (2.0**1024)."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    cfg = load_config(empty, env={"POLARWATCH_ALERTS_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                                  "POLARWATCH_ALERTS_MAX_BACKOFF_SECONDS": "86400"})
    delays = retry_for(cfg).delays()
    assert len(delays) == MAX_ATTEMPTS - 1 and max(delays) == 86_400


def test_the_most_partitions_fit_kafkas_int32_field_far_below_its_limit() -> None:
    """Both topics at the bound stay within Kafka's ~4,000 partitions per broker."""
    assert 2 * MAX_PARTITIONS <= 4_000 < 2**31 - 1


@pytest.mark.parametrize(("section", "key"), DURATIONS)
def test_a_duration_above_ten_years_is_one_line(tmp_path: Path, section: str, key: str) -> None:
    path = tmp_path / "pw.toml"
    for over in ("3651 days", "87601h", "1000000 days"):
        path.write_text(f'[{section}]\n{key} = "{over}"\n')
        with pytest.raises(ConfigError) as info:
            load_config(path, env={})
        assert str(info.value) == (
            f"{path} [{section}] {key}: expected a duration of at most 3650 days (10 years: "
            f"pandas, which reads the windows, holds dates only up to 2262-04-11, and longer "
            f"spans overflow the time arithmetic), got '{over}'")
    for at_bound, stored in (("3650 days", "3650 days"), ("521w", "3647 days"),
                             ("87600h", "3650 days")):
        path.write_text(f'[{section}]\n{key} = "{at_bound}"\n')
        assert getattr(getattr(load_config(path, env={}), section), key) == stored


@pytest.mark.parametrize(("section", "key"), DURATIONS)
def test_a_duration_under_a_microsecond_is_refused_as_zero_is(
        tmp_path: Path, section: str, key: str) -> None:
    """timedelta holds microseconds: `window = "0.0000001s"` was taken as 0 and stored as
    "0 days", which the stream then refused after Spark's start, naming neither the key nor
    what the user wrote (`expected a positive duration …, got '0 days'`)."""
    path = tmp_path / "pw.toml"
    path.write_text(f'[{section}]\n{key} = "0.0000001s"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(f"{path} [{section}] {key}: expected a positive duration")
    assert str(info.value).endswith("got '0.0000001s'")
    for given, stored in (("0.000001s", "0.000001 seconds"), ("0.00005s", "0.00005 seconds"),
                          ("1.5s", "1.5 seconds")):  # stored as parse_duration reads it again
        path.write_text(f'[{section}]\n{key} = "{given}"\n')
        assert getattr(getattr(load_config(path, env={}), section), key) == stored
        assert parse_duration(stored).total_seconds() == float(given[:-1])


def test_a_moment_under_a_microsecond_back_is_refused_as_0_is() -> None:
    """`relabel --since 0.0000001s` counted back 0 from the newest post (0d is refused)."""
    with pytest.raises(argparse.ArgumentTypeError, match="is under a microsecond: a duration "
                                                         "back must be above 0"):
        moment("0.0000001s")
    assert moment("0.000001s") == timedelta(microseconds=1)


def test_prune_every_is_a_value_broker_prune_reads(tmp_path: Path) -> None:
    """`broker start` runs `broker prune --every <value:g>s`: 1e-05s and 1e+06s were refused
    there (the pruner died at once while the broker said it was running)."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for value in (0.00001, 86_401, 1e6):
        with pytest.raises(ConfigError, match=r"PRUNE_EVERY_S: expected 0 \(never\) or from "
                                              r"0\.001 to 86,400 seconds \(a day\)"):
            load_config(empty, env={"POLARWATCH_BROKER_PRUNE_EVERY_S": repr(value)})
    for value in (0, 0.001, 60, 86_400):
        cfg = load_config(empty, env={"POLARWATCH_BROKER_PRUNE_EVERY_S": str(value)})
        assert cfg.broker.prune_every_s == value


@pytest.mark.parametrize("command", [["ingest", "file", "posts.jsonl"], ["stream"],
                                     ["forecast"]])
def test_the_audited_skew_stops_each_command_in_one_line(tmp_path: Path,
                                                         command: list[str]) -> None:
    (tmp_path / "posts.jsonl").write_text("{}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "polarwatch.cli", *command], cwd=tmp_path, timeout=120,
        env={**os.environ, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml"),
             "POLARWATCH_WAREHOUSE_PATH": str(tmp_path / "pw.duckdb"),
             "POLARWATCH_INGEST_MAX_FUTURE_SKEW_HOURS": "100000000"},
        capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (
        "polarwatch: error: $POLARWATCH_INGEST_MAX_FUTURE_SKEW_HOURS: expected a number of at "
        "most 87,600 (10 years: pandas holds dates only up to 2262-04-11, and a post may be "
        "dated this far after the ingest clock), got '100000000'\n")
    assert proc.stdout == ""


def _post(pid: str, created_at: str) -> dict[str, str]:
    return {"id": pid, "platform": "p", "author_id": "a", "text": "climate policy now",
            "created_at": created_at, "topic": "climate_change", "conversation_id": pid}


@pytest.mark.slow
def test_at_the_bounds_ingest_stream_forecast_and_report_run(
        broker: EmbeddedBroker, spark: object, tmp_path: Path) -> None:
    """The time keys at their bounds: the newest post the skew admits (~2036) is stored, an
    instant valid for Python but past pandas' range (2262-04-12, 9999) or before 2000 (1677)
    is a dead letter, and the stream, forecast and report run on what was stored."""
    now = datetime.now(UTC)
    span = f"{MAX_DURATION.days} days"
    env = stream_env(broker.bootstrap, tmp_path,
                     POLARWATCH_INGEST_MAX_FUTURE_SKEW_HOURS=str(MAX_SKEW_HOURS),
                     POLARWATCH_WAREHOUSE_KEEP_DAYS=str(MAX_KEEP_DAYS),
                     POLARWATCH_AGGREGATE_WINDOW=span, POLARWATCH_AGGREGATE_WATERMARK=span,
                     POLARWATCH_AGGREGATE_ORPHAN_HORIZON=span)
    cfg = load_config(REPO / "polarwatch.toml", env=env)
    newest = now + timedelta(hours=MAX_SKEW_HOURS - 1)  # the newest date the skew admits
    posts = [_post("now", (now - timedelta(hours=1)).isoformat()),
             _post("newest", newest.isoformat()),
             _post("y2262", "2262-04-12T00:00:00+00:00"),
             _post("y9999", "9999-12-31T23:59:59+00:00"),
             _post("y1677", "1677-09-21T00:12:44+00:00")]
    data = tmp_path / "posts.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in posts))
    child = {**os.environ, **env, "POLARWATCH_CONFIG": str(REPO / "polarwatch.toml")}

    def polarwatch(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "polarwatch.cli", *args], cwd=REPO,
                              env=child, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        return proc

    ingest = polarwatch("ingest", "file", str(data), "--state-dir", str(tmp_path / "ingest"))
    assert "2 posts sent" in ingest.stderr and "3 dead-lettered" in ingest.stderr, ingest.stderr
    run_stream(cfg, spark=spark)
    with connect(cfg.warehouse_path, read_only=True) as con:
        stored = {r[0] for r in con.execute("SELECT id FROM posts").fetchall()}
        reasons = [r[0] for r in con.execute("SELECT reason FROM dead_letters").fetchall()]
        ends = [r[0] for r in con.execute("SELECT window_end FROM topic_windows").fetchall()]
    assert stored == {"now", "newest"}
    assert sorted(r.split("'")[1][:4] for r in reasons) == ["1677", "2262", "9999"], reasons
    assert all(e.year < 2262 for e in ends), ends
    polarwatch("forecast")
    polarwatch("report", "-o", str(tmp_path / "report.html"))
