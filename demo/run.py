"""The demo (``polarwatch demo``): broker → synthetic corpus → Spark → DuckDB → forecast →
dashboard, with fresh state; then the stream keeps running on a live feed while the dashboard is
served. It composes the stages' library modules (never their CLIs)."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dashboard.serve import serve_dashboard
from forecast.run import run_forecast
from ingest.broker import embedded_broker
from ingest.runs import produce_synthetic
from polarwatch.config import Config
from polarwatch.console import STOP
from polarwatch.errors import PolarwatchError
from polarwatch.events import EVENTS_ENV, Event, save_events
from stream.summary import summarize_warehouse

LOG = logging.getLogger(__name__)


def fresh_state(cfg: Config) -> None:
    """Remove the demo's checkpoint, DuckDB file and lake (the demo always starts fresh)."""
    from stream.job import QUERY_NAME

    stale_paths = [cfg.checkpoint_dir / QUERY_NAME, cfg.warehouse_path,
                   cfg.warehouse_path.with_suffix(".duckdb.wal")]
    if cfg.warehouse.lake_dir:
        stale_paths.append(cfg.path(cfg.warehouse.lake_dir))
    for stale in stale_paths:
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()


def write_calendar(path: Path, synthetic: Sequence[Any]) -> list[Event]:
    """The demo's events in their own calendar file (the user's events.toml is untouched)."""
    events = [Event(name=e.name, topic=e.topic, start=e.at, kind=e.kind) for e in synthetic]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_events(path, events)
    LOG.info(f"event calendar for the demo: {path}")
    return events


def forecast_loop(cfg: Config, events: Sequence[Event], every: float) -> None:
    """Re-run the forecast, flags and alert webhooks on the live data until the demo stops."""
    while not STOP.wait(every):
        try:
            summary = run_forecast(cfg, events=events)
            LOG.info(f"forecast refreshed: {summary.flags} flag(s), alerts {summary.alerts}")
        except Exception as exc:  # keep the demo alive; say what went wrong
            LOG.warning(f"forecast refresh failed: {exc}")


def live_stream(cfg: Config, spark: Any, backend: str | None) -> None:
    """The live query, supervised like ``polarwatch stream --continuous``: a transient failure
    (lock contention, a broker restart, …) restarts it from its checkpoint with backoff
    (stream/supervise.py); one that a restart cannot fix is logged and ends the live stream."""
    from stream.job import run_stream

    try:
        run_stream(cfg, available_now=False, backend=backend, spark=spark)
    except PolarwatchError as exc:
        LOG.warning(f"the live stream stopped: {exc}")


def stop_live_stream(spark: Any, thread: threading.Thread, timeout: float = 30.0) -> None:
    """Stop the live query (also one the supervisor restarts meanwhile) and wait for it."""
    from stream.job import QUERY_NAME, stop_between_batches

    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        for query in spark.streams.active:
            if query.name == QUERY_NAME:
                stop_between_batches(query)
        thread.join(1.0)


def run_demo(cfg: Config, *, days: int, seed: int, port: int, backend: str | None,
             dashboard: bool, forecast_every: float) -> int:
    from forecast.alerts.delivery import check_webhooks
    from stream.job import build_spark, check_java, run_stream

    t0 = time.monotonic()
    check_webhooks(cfg)  # a bad [alerts] webhooks entry: one line now, not after the stream
    LOG.info(f"java: {check_java()}")
    if cfg.broker.embedded:
        broker = embedded_broker(cfg)
        if broker.stop():
            LOG.info("stopped the previous embedded broker (the demo starts from fresh state)")
        broker.start()
        LOG.info(f"broker up at {broker.bootstrap}")
    fresh_state(cfg)
    spark = feed = live = None
    try:
        synthetic = produce_synthetic(cfg, days, seed, 1.0, invalid_every=1000)
        calendar = cfg.warehouse_path.parent / "demo-events.toml"
        events = write_calendar(calendar, synthetic)
        LOG.info(f"starting Spark ({cfg.spark.master}) …")
        t_spark = time.monotonic()
        spark = build_spark(cfg.spark.master)
        LOG.info(f"Spark up in {time.monotonic() - t_spark:.1f} s")
        run_stream(cfg, available_now=True, backend=backend, spark=spark)
        summarize_warehouse(cfg)
        LOG.info(f"forecast done: {run_forecast(cfg, events=events)}")
        LOG.info(f"pipeline done in {time.monotonic() - t0:.0f} s")
        if not dashboard:
            return 0
        from ingest.feed import LiveFeed

        feed = LiveFeed(cfg.broker.bootstrap_servers, cfg.topics.posts, cfg.topics.dead_letter,
                        cfg.load_topics()).start()
        live = threading.Thread(target=live_stream, args=(cfg, spark, backend),
                                name="polarwatch-live-stream", daemon=True)
        live.start()
        threading.Thread(target=forecast_loop, args=(cfg, events, forecast_every),
                         name="polarwatch-forecast", daemon=True).start()
        LOG.info(f"live: new posts stream every {cfg.spark.trigger_seconds:g} s and the forecast "
                 f"(with its alerts) re-runs every {forecast_every:g} s while the dashboard runs; "
                 f"stop everything with Ctrl-C (the embedded broker is stopped with it)")
        return serve_dashboard(cfg, port, env={EVENTS_ENV: str(calendar)})
    finally:  # each step on its own: one failing (e.g. the JVM already gone) must not skip the rest
        steps = [feed.stop if feed else None,
                 (lambda: stop_live_stream(spark, live)) if live is not None else None,
                 spark.stop if spark is not None else None,
                 embedded_broker(cfg).stop if cfg.broker.embedded else None]
        for step in steps:
            if step is not None:
                with contextlib.suppress(Exception):
                    step()
        if cfg.broker.embedded:
            LOG.info("broker stopped")
