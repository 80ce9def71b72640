"""The `polarwatch` command line: thin drivers over the library functions of each stage."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from polarwatch.config import CONFIG_ENV, Config, load_config
from polarwatch.errors import PolarwatchError

DASHBOARD_APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"


def log(msg: str) -> None:
    print(f"[polarwatch {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _broker(cfg: Config) -> Any:
    from ingest.broker import EmbeddedBroker, parse_hostport

    host, port = parse_hostport(cfg.broker.bootstrap_servers)
    if host not in ("127.0.0.1", "localhost"):
        raise PolarwatchError(f"the embedded broker only runs on 127.0.0.1, but bootstrap_servers "
                              f"is {cfg.broker.bootstrap_servers!r}; start that Kafka yourself")
    return EmbeddedBroker(port, cfg.path(cfg.broker.state_dir), storage=cfg.broker.storage)


def cmd_broker(cfg: Config, args: argparse.Namespace) -> int:
    broker = _broker(cfg)
    if args.action == "start":
        pid = broker.start()
        from ingest.broker import ensure_topics

        created = ensure_topics(broker.bootstrap, [cfg.topics.posts, cfg.topics.dead_letter],
                                cfg.topics.partitions)
        log(f"broker up at {broker.bootstrap} (pid {pid}, log {broker.log_file}); "
            f"topics created: {', '.join(created) or 'none (already there)'}")
        if cfg.broker.storage == "memory":
            log("storage is in memory: stopping the broker loses its messages "
                "(set [broker] storage = \"s3\" to keep them across broker restarts)")
        else:
            log("storage is a local S3 server: messages survive broker restarts; "
                "`polarwatch broker stop` stops that server too")
    elif args.action == "stop":
        log("broker stopped" if broker.stop() else "broker was not running")
    else:
        pid = broker.pid()
        log(f"broker running at {broker.bootstrap} (pid {pid})" if broker.running()
            else f"broker not running (expected at {broker.bootstrap})")
        return 0 if broker.running() else 3
    return 0


def produce_synthetic(cfg: Config, days: int, seed: int, rate: float,
                      invalid_every: int) -> list[Any]:
    """Produce the synthetic corpus; returns its events (SyntheticEvent)."""
    from datetime import UTC, datetime, timedelta

    from ingest.broker import ensure_topics
    from ingest.producer import PostProducer
    from ingest.sources.synthetic import default_events, generate, with_invalid

    topics = cfg.load_topics()
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions)

    start = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)
    events = default_events(topics, start, days)
    for ev in events:
        log(f"synthetic {ev.kind} event {ev.name!r} on {ev.topic} at {ev.at:%Y-%m-%d %H:%M} UTC")
    posts = generate(topics, days=days, seed=seed, start=start, rate=rate)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter) as producer:
        if invalid_every:
            for raw in with_invalid(posts, every=invalid_every, seed=seed):
                producer.send_raw(raw)
        else:
            producer.send_many(posts)
    st = producer.stats
    log(f"{st.sent:,} posts produced to {cfg.topics.posts}; {st.dead_lettered} invalid records "
        f"sent to {cfg.topics.dead_letter} ({st.reasons or 'none'})")
    return events


def cmd_ingest(cfg: Config, args: argparse.Namespace) -> int:
    produce_synthetic(cfg, args.days, args.seed, args.rate, args.invalid_every)
    return 0


def cmd_stream(cfg: Config, args: argparse.Namespace) -> int:
    from stream.job import run_stream

    run_stream(cfg, available_now=not args.continuous, reset=args.reset, log=log,
               backend=args.backend)
    summarize_warehouse(cfg)
    return 0


def summarize_warehouse(cfg: Config) -> dict[str, int]:
    from polarwatch.warehouse import connect, scalar

    counts = {}
    with connect(cfg.warehouse_path, read_only=True) as con:
        for table in ("posts", "interactions", "topic_windows", "dead_letters", "stream_batches"):
            counts[table] = int(scalar(con, f"SELECT count(*) FROM {table}"))
    log("rows in DuckDB " + str(cfg.warehouse_path) + ": "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    return counts


def cmd_forecast(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.run import run_forecast

    summary = run_forecast(cfg, metric=args.metric, log=log)
    log(f"forecast done: {summary}")
    return 0


def serve_dashboard(cfg: Config, port: int) -> int:
    env = dict(os.environ)
    if cfg.root and (cfg.root / "polarwatch.toml").exists():
        env.setdefault(CONFIG_ENV, str(cfg.root / "polarwatch.toml"))
    env["POLARWATCH_WAREHOUSE_PATH"] = str(cfg.warehouse_path)
    cmd = [sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP), "--server.headless",
           "true", "--server.address", cfg.dashboard.address, "--server.port", str(port),
           "--browser.gatherUsageStats", "false"]
    log(f"dashboard at http://{cfg.dashboard.address}:{port}  (press Ctrl-C to stop)")
    proc = subprocess.Popen(cmd, env=env)
    _SERVING.set()  # SIGTERM now only asks this loop to end, so cleanup runs in order
    try:
        while proc.poll() is None and not _STOP.is_set():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        _SERVING.clear()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)
    return 0


def cmd_dashboard(cfg: Config, args: argparse.Namespace) -> int:
    return serve_dashboard(cfg, args.port)


def _fresh_state(cfg: Config) -> None:
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


def _write_demo_calendar(cfg: Config, synthetic: list[Any]) -> None:
    """The demo's events live in their own calendar file (the user's events.toml is untouched);
    the forecast and the dashboard find it through $POLARWATCH_EVENTS_FILE."""
    from polarwatch.events import EVENTS_ENV, Event, save_events

    path = cfg.warehouse_path.parent / "demo-events.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_events(path, [Event(name=e.name, topic=e.topic, start=e.at, kind=e.kind)
                       for e in synthetic])
    os.environ[EVENTS_ENV] = str(path)
    log(f"event calendar for the demo: {path}")


def _forecast_loop(cfg: Config, every: float) -> None:
    """Re-run the forecast, flags and alert webhooks on the live data until the demo stops."""
    from forecast.run import run_forecast

    while not _STOP.wait(every):
        try:
            summary = run_forecast(cfg, log=lambda m: None)
            log(f"forecast refreshed: {summary['flags']} flag(s), alerts {summary['alerts']}")
        except Exception as exc:  # keep the demo alive; say what went wrong
            log(f"forecast refresh failed: {exc}")


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    """Broker → synthetic corpus → Spark → DuckDB → forecast → dashboard, with fresh state;
    then the stream keeps running on a live feed while the dashboard is served."""
    from stream.job import build_spark, check_java, run_stream, start_stream

    t0 = time.monotonic()
    log(f"java: {check_java()}")
    if cfg.broker.embedded:
        broker = _broker(cfg)
        if broker.stop():
            log("stopped the previous embedded broker (the demo starts from fresh state)")
        broker.start()
        log(f"broker up at {broker.bootstrap}")
    _fresh_state(cfg)
    spark = feed = query = None
    try:
        synthetic_events = produce_synthetic(cfg, args.days, args.seed, 1.0, invalid_every=1000)
        _write_demo_calendar(cfg, synthetic_events)
        log(f"starting Spark ({cfg.spark.master}) …")
        spark = build_spark(cfg.spark.master)
        run_stream(cfg, available_now=True, log=log, backend=args.backend, spark=spark)
        summarize_warehouse(cfg)
        cmd_forecast(cfg, argparse.Namespace(metric=None))
        log(f"pipeline done in {time.monotonic() - t0:.0f} s")
        if args.no_dashboard:
            return 0
        from ingest.feed import LiveFeed

        feed = LiveFeed(cfg.broker.bootstrap_servers, cfg.topics.posts, cfg.topics.dead_letter,
                        cfg.load_topics(), log=log).start()
        query = start_stream(spark, cfg, available_now=False, log=lambda m: None,
                             backend=args.backend)
        threading.Thread(target=_forecast_loop, args=(cfg, args.forecast_every),
                         name="polarwatch-forecast", daemon=True).start()
        log(f"live: new posts stream every {cfg.spark.trigger_seconds:g} s and the forecast (with "
            f"its alerts) re-runs every {args.forecast_every:g} s while the dashboard runs; stop "
            f"everything with Ctrl-C (the embedded broker is stopped with it)")
        return serve_dashboard(cfg, args.port)
    finally:  # each step on its own: one failing (e.g. the JVM already gone) must not skip the rest
        steps = [feed.stop if feed else None,
                 query.stop if query is not None else None,
                 spark.stop if spark is not None else None,
                 _broker(cfg).stop if cfg.broker.embedded else None]
        for step in steps:
            if step is not None:
                with contextlib.suppress(Exception):
                    step()
        if cfg.broker.embedded:
            log("broker stopped")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="polarwatch", description="Streaming social-media polarization monitor.")
    parser.add_argument("--config", help=f"config file [env: {CONFIG_ENV}; default "
                                         f"./polarwatch.toml]")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="run the whole chain on a synthetic corpus and serve the "
                                    "dashboard")
    p.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--backend", help="extractor backend (default from config)")
    p.add_argument("--no-dashboard", action="store_true", help="stop after the forecast")
    p.add_argument("--forecast-every", type=float, default=60.0, metavar="SECONDS",
                   help="while live, re-run the forecast and alerts this often (default 60)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("broker", help="start/stop/status of the embedded Kafka-compatible broker")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("ingest", help="produce posts to Kafka")
    isub = p.add_subparsers(dest="source", required=True)
    s = isub.add_parser("synthetic", help="an event-driven synthetic corpus of reply threads")
    s.add_argument("--days", type=int, default=14)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--rate", type=float, default=1.0, help="conversation-rate multiplier")
    s.add_argument("--invalid-every", type=int, default=0,
                   help="slip one malformed record in every N posts (0 = none)")
    s.set_defaults(func=cmd_ingest)
    _extend("ingest.cli", isub)  # file / live sources

    p = sub.add_parser("stream", help="run the Spark job: Kafka → labels → DuckDB")
    p.add_argument("--continuous", action="store_true",
                   help="keep running (default: drain what is in the topic and stop)")
    p.add_argument("--reset", action="store_true",
                   help="delete the checkpoint and start from the topic's first offset")
    p.add_argument("--backend", help="extractor backend (default from config)")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("forecast", help="forecast the per-topic series and flag outliers")
    p.add_argument("--metric", help="topic_windows column (default from config)")
    p.set_defaults(func=cmd_forecast)

    p = sub.add_parser("dashboard", help="serve the Streamlit dashboard")
    p.add_argument("--port", type=int, default=8501)
    p.set_defaults(func=cmd_dashboard)

    for module in PLUGIN_COMMANDS:
        _extend(module, sub)
    return parser


# Stage packages add their own sub-commands: each module has `register(subparsers)` adding
# parsers whose `func(cfg, args) -> int` is a thin driver over that package's library code.
PLUGIN_COMMANDS = ("scoring.cli", "forecast.cli")


def _extend(module: str, subparsers: Any) -> None:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return
    mod.register(subparsers)


_STOP = threading.Event()
_SERVING = threading.Event()


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM: while the dashboard is served, end its wait loop (cleanup follows normally);
    otherwise exit through `finally` blocks (stop the broker, Spark, the feed)."""
    _STOP.set()
    if not _SERVING.is_set():
        raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config)
        return int(args.func(cfg, args) or 0)
    except PolarwatchError as exc:
        print(f"polarwatch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
