"""`polarwatch detect`, `alerts test`, `events list|add|remove` and `report`: thin drivers over
forecast.detect / webhooks, polarwatch.events and forecast.reports.

CSV input rules for ``detect`` (every problem is reported with line numbers and counts, on
stderr, so stdout can carry the output CSV):

- A header with ``timestamp`` and ``value`` columns (any order, extra columns ignored).
- Unparseable timestamps are an error (a row that cannot be placed in time cannot be kept).
- Non-numeric or empty values become missing points (reported), never zero.
- Duplicate timestamps: the **last** row wins (a re-export or correction is appended later);
  each duplicate is reported. ``--duplicates error`` refuses them instead.
- Rows out of order are sorted (reported).
- The interval is the most common step. Timestamps off that grid are an error; missing grid
  timestamps (gaps) are filled as missing points (reported: how many, the largest gap).
- Too few observed rows for the detector's warm-up is an error that says how many are needed.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from polarwatch import argtypes
from polarwatch.config import WEBHOOK_FORMATS, Config
from polarwatch.errors import PolarwatchError
from polarwatch.redact import url_for_log

OUTPUT_COLUMNS = ["timestamp", "value", "forecast", "lower", "upper", "anomaly_score", "flag",
                  "episode"]
MAX_LISTED = 5  # line numbers quoted per problem; the count is always complete


class InputError(PolarwatchError):
    """The CSV cannot be used as a regular series; the message says where and how many."""


def _lines(lines: list[int]) -> str:
    head = ", ".join(str(n) for n in lines[:MAX_LISTED])
    return head + (f" and {len(lines) - MAX_LISTED} more" if len(lines) > MAX_LISTED else "")


def read_series_csv(source: str | Path | IO[str], *, duplicates: str = "last",
                    note: Callable[[str], Any] = print) -> tuple[pd.DataFrame, pd.Timedelta, bool]:
    """Read ``timestamp,value`` rows into a regular series.

    Returns ``(frame, interval, naive)``: ``frame`` has ``ts`` (UTC) and ``value`` (float, NaN
    missing) on a regular grid; ``naive`` tells whether the input had no time zone.
    """
    name = str(source) if isinstance(source, (str, Path)) else "<stdin>"
    try:
        raw = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{name}: not a readable CSV ({exc})") from exc
    cols = {c.strip().lower(): c for c in raw.columns}
    missing = [c for c in ("timestamp", "value") if c not in cols]
    if missing:
        raise InputError(f"{name}: missing column(s) {', '.join(missing)}; found "
                         f"{', '.join(map(str, raw.columns)) or 'no header'}. The file needs a "
                         f"header line `timestamp,value`")
    ts_text = raw[cols["timestamp"]].str.strip()
    val_text = raw[cols["value"]].str.strip()
    line = np.arange(len(raw)) + 2  # 1-based, after the header line
    ts = pd.to_datetime(ts_text, errors="coerce", utc=True, format="mixed")
    bad_ts = line[ts.isna().to_numpy()].tolist()
    if bad_ts:
        raise InputError(f"{name}: {len(bad_ts)} unparseable timestamp(s) on line(s) "
                         f"{_lines(bad_ts)} (e.g. {ts_text.iloc[bad_ts[0] - 2]!r})")
    naive = pd.to_datetime(ts_text.iloc[:1], format="mixed").dt.tz is None if len(raw) else True
    value = pd.to_numeric(val_text, errors="coerce").astype(float)
    value[~np.isfinite(value.to_numpy())] = np.nan
    empty = (val_text == "").to_numpy()
    junk = value.isna().to_numpy() & ~empty
    if junk.any():
        examples = ", ".join(repr(v) for v in val_text[junk].unique()[:3])
        note(f"{name}: {int(junk.sum())} non-numeric value(s) on line(s) "
             f"{_lines(line[junk].tolist())} ({examples}): treated as missing")
    if empty.any():
        note(f"{name}: {int(empty.sum())} empty value(s) on line(s) "
             f"{_lines(line[empty].tolist())}: treated as missing")
    df = pd.DataFrame({"ts": ts, "value": value, "line": line})
    if not df["ts"].is_monotonic_increasing:
        n_back = int((df["ts"].diff() < pd.Timedelta(0)).sum())
        note(f"{name}: {n_back} row(s) out of time order: sorted by timestamp")
        df = df.sort_values(["ts", "line"], kind="stable")
    dup = df["ts"].duplicated(keep="last").to_numpy()
    if dup.any():
        pairs = [f"{t:%Y-%m-%d %H:%M:%S} (line {a} < {b})" for t, a, b in zip(
            df["ts"][dup], df["line"][dup],
            df.drop_duplicates("ts", keep="last").set_index("ts").loc[df["ts"][dup], "line"],
            strict=True)][:MAX_LISTED]
        if duplicates == "error":
            raise InputError(f"{name}: {int(dup.sum())} duplicate timestamp(s): "
                             f"{'; '.join(pairs)}")
        note(f"{name}: {int(dup.sum())} duplicate timestamp(s), kept the last row of each: "
             f"{'; '.join(pairs)}")
        df = df[~dup]
    if len(df) < 2:
        raise InputError(f"{name}: {len(df)} distinct timestamp(s); at least 2 are needed to "
                         f"infer the interval")
    steps = df["ts"].diff().dropna()
    freq = pd.Timedelta(steps.mode().iloc[0])
    offsets = ((df["ts"] - df["ts"].iloc[0]) / freq).to_numpy(float)
    off_grid = ~np.isclose(offsets, np.round(offsets), atol=1e-6)
    if off_grid.any():
        raise InputError(f"{name}: irregular intervals: the most common step is {freq}, but "
                         f"{int(off_grid.sum())} timestamp(s) are off that grid starting at "
                         f"{df['ts'].iloc[0]}, on line(s) {_lines(df['line'][off_grid].tolist())}."
                         f" Resample the series to one interval first")
    grid = pd.date_range(df["ts"].iloc[0], df["ts"].iloc[-1], freq=freq)
    n_missing = len(grid) - len(df)
    if n_missing:
        big = steps[steps > freq]
        where = big.idxmax()
        note(f"{name}: {n_missing} missing timestamp(s) in {len(big)} gap(s) filled as missing "
             f"points; largest gap {big.max() - freq} before line {df['line'][where]}")
    out = df.set_index("ts")["value"].reindex(grid)
    return pd.DataFrame({"ts": grid, "value": out.to_numpy(float)}), freq, naive


def run_detect(frame: pd.DataFrame, freq: pd.Timedelta,
               config: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The detector over a regular frame (``ts``, ``value``) -> (output columns, model info)."""
    from forecast.detect import detect_values, warmup_points

    values = frame["value"].to_numpy(float)
    seconds = freq.total_seconds()
    need = warmup_points(config.period(seconds)) + 1
    n_obs = int(np.isfinite(values).sum())
    if n_obs < need:
        raise InputError(f"too few rows: {n_obs} observed value(s), the detector needs at least "
                         f"{need} at a {freq} interval ({need - 1} of warm-up, which learns "
                         f"the daily/weekly cycle when there is one; `--season none` needs "
                         f"{warmup_points(None) + 1})")
    out = detect_values(values, seconds, config)
    cols = {c: out[c] for c in OUTPUT_COLUMNS[2:]}
    cols["episode"] = pd.array(out["episode"], dtype="Int64")
    return pd.DataFrame({"timestamp": frame["ts"], "value": values, **cols}), out["info"]


def write_output(result: pd.DataFrame, target: Any, naive: bool) -> None:
    fmt = "%Y-%m-%d %H:%M:%S" if naive else "%Y-%m-%dT%H:%M:%S%z"
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(OUTPUT_COLUMNS)
    for row in result.itertuples(index=False):
        cells = [row.timestamp.strftime(fmt)]
        for v in (row.value, row.forecast, row.lower, row.upper):
            cells.append("" if math.isnan(v) else f"{v:.10g}")
        score = row.anomaly_score
        cells.append("" if math.isnan(score) else f"{score:.6f}")
        cells.append(row.flag)
        cells.append("" if row.episode is None or pd.isna(row.episode) else str(row.episode))
        writer.writerow(cells)


def cmd_detect(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.detect import DetectorConfig

    def note(msg: str) -> None:
        print(f"polarwatch detect: {msg}", file=sys.stderr)

    config = DetectorConfig(alpha=cfg.forecast.alpha, threshold=args.threshold, season=args.season,
                            crossing=args.crossing, horizon=cfg.forecast.horizon,
                            suppress_seconds=args.refractory)
    source = sys.stdin if args.series == "-" else Path(args.series)
    if isinstance(source, Path) and not source.exists():
        raise InputError(f"{source} does not exist")
    frame, freq, naive = read_series_csv(source, duplicates=args.duplicates, note=note)
    result, info = run_detect(frame, freq, config)
    counts = result["flag"].value_counts()
    note(f"{len(result)} rows at {freq} interval; model {info.get('model')} (season "
         f"{info.get('period') or 'none'}, {'log' if info.get('log') else 'linear'} scale, "
         f"warm-up {info['warmup']} points, {info['fits']} fit(s)); flags: "
         + ", ".join(f"{k} {counts.get(k, 0)}" for k in ("spike", "reactive", "anticipatory"))
         + f" (one alarm per episode: {result['episode'].dropna().nunique()} episode(s))")
    if args.output:
        with open(args.output, "w", newline="") as fh:
            write_output(result, fh, naive)
        note(f"wrote {args.output}")
    else:
        write_output(result, sys.stdout, naive)
    return 0


def cmd_alerts_test(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.alerts.webhooks import (
        Endpoint,
        RetryPolicy,
        WebhookSender,
        sample_alert,
    )

    if args.secret_env:  # a variable's name, not the secret: argv is visible to every user
        if not args.secret_env.isidentifier():
            raise PolarwatchError("--secret-env takes the name of an environment variable "
                                  "(letters, digits, _), not a secret (the value is not shown)")
        if not os.environ.get(args.secret_env):
            raise PolarwatchError(f"--secret-env {args.secret_env}: that variable is not set "
                                  f"or is empty")
        secret: str | None = os.environ[args.secret_env]
    else:
        secret = cfg.alerts.secret.get_secret_value() or None
    endpoint = Endpoint(args.url, secret=secret, format=args.format or cfg.alerts.format)
    if secret is None:
        print("polarwatch alerts: no --secret-env and no [alerts] secret "
              "($POLARWATCH_ALERTS_SECRET): sending unsigned")
    retry = RetryPolicy(max_attempts=args.attempts)
    sender = WebhookSender([endpoint], db_path=None if args.no_log else cfg.warehouse_path,
                           retry=retry)
    results = sender.send(sample_alert(), dedupe=False)
    ok = all(r.delivered for r in results)
    print(f"polarwatch alerts: {'delivered' if ok else 'NOT delivered'} to "
          f"{url_for_log(args.url)} "
          f"after {results[0].attempts} attempt(s), last status {results[0].status}")
    return 0 if ok else 1


def _calendar(cfg: Config, args: argparse.Namespace) -> Path:
    from polarwatch.events import events_path

    return Path(args.file) if args.file else events_path(cfg.root)


def _topic_ids(cfg: Config) -> list[str] | None:
    try:
        return [t.id for t in cfg.load_topics()]
    except PolarwatchError:
        return None  # no topics file: events are not checked against it


def cmd_events(cfg: Config, args: argparse.Namespace) -> int:
    from polarwatch.events import load_events, make_event, remove, save_events, upsert

    path = _calendar(cfg, args)
    events = load_events(path)
    if args.events_command == "list":
        shown = [e for e in events if args.topic in (None, e.topic)]
        for e in shown:
            end = f" → {e.end:%Y-%m-%d %H:%M}" if e.end else ""
            print(f"{e.start:%Y-%m-%d %H:%M}{end} UTC  {e.kind:9}  {e.topic:16}  {e.name}")
        print(f"{len(shown)} event(s) in {path}", file=sys.stderr)
        return 0
    if args.events_command == "add":
        event = make_event({"name": args.name, "topic": args.topic, "start": args.start,
                            "end": args.end, "kind": args.kind}, "new event", _topic_ids(cfg))
        replacing = (event.topic, event.name) if args.replace else None
        if not args.replace and any((e.topic, e.name) == (event.topic, event.name)
                                    for e in events):
            raise PolarwatchError(f"{path} already has {event.name!r} on {event.topic!r}; "
                                  f"use --replace to overwrite it")
        save_events(path, upsert(events, event, replacing))
        print(f"added {event.kind} event {event.name!r} on {event.topic} to {path}")
        return 0
    kept = remove(events, (args.topic, args.name))
    if len(kept) == len(events):
        raise PolarwatchError(f"no event {args.name!r} on topic {args.topic!r} in {path} "
                              f"(`polarwatch events list` shows them)")
    save_events(path, kept)
    print(f"removed {args.name!r} on {args.topic} from {path}")
    return 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.reports import report_loop
    from forecast.run import run_forecast

    def forecast_first() -> None:
        run_forecast(cfg)

    report_loop(cfg, output=args.output, topics=args.topic or None, since=args.since,
                every=args.every, count=args.count,
                before=forecast_first if args.forecast else None)
    return 0


REPORT_EPILOG = """\
cron instead of --every: one dated report an hour, after a forecast run (crontab needs % as \\%):
  0 * * * * cd /path/to/polarwatch && .venv/bin/polarwatch report --forecast -o reports/report-\\%Y\\%m\\%d-\\%H.html >> reports/cron.log 2>&1
"""


def register_events_and_report(subparsers: Any) -> None:
    p = subparsers.add_parser("events", help="list / add / remove events of the calendar")
    p.add_argument("--file", help="calendar file [env: POLARWATCH_EVENTS_FILE; default "
                                  "events.toml next to the config]")
    esub = p.add_subparsers(dest="events_command", required=True)
    e = esub.add_parser("list", help="events sorted by start")
    e.add_argument("--topic", help="only this topic")
    e = esub.add_parser("add", help="add an event (scheduled: known in advance; sudden)")
    e.add_argument("name")
    e.add_argument("--topic", required=True, help="topic id from topics.toml")
    e.add_argument("--start", required=True, help="e.g. 2026-03-04T18:00:00Z (or a date)")
    e.add_argument("--end", help="optional end (default: a point in time)")
    e.add_argument("--kind", choices=["scheduled", "sudden"], required=True)
    e.add_argument("--replace", action="store_true", help="overwrite an event of that name")
    e = esub.add_parser("remove", help="remove the event NAME of --topic")
    e.add_argument("name")
    e.add_argument("--topic", required=True)
    p.set_defaults(func=cmd_events)

    p = subparsers.add_parser(
        "report", help="an HTML report: state, forecast, flags, drivers, event studies",
        description="Write a self-contained HTML report (charts embedded as PNG): the current "
                    "state of each topic, the forecast for the next [forecast] horizon, the "
                    "active flags with their class, the conversations driving them and the "
                    "before/during/after table of every event. -o may hold strftime codes "
                    "(report-%Y%m%d-%H%M.html) for one file per run.",
        epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="report.html", help="output HTML (default "
                                                                "report.html)")
    p.add_argument("--topic", action="append", help="only this topic (repeatable)")
    p.add_argument("--since", help="start of the report: 2026-03-01, an ISO time, or 7d / 48h "
                                   "before the newest window (default: all)")
    p.add_argument("--every", type=argtypes.duration_text,
                   help="repeat every interval (30m, 1h, 1d) until Ctrl-C")
    p.add_argument("--count", type=argtypes.count(1), help="with --every: stop after this many reports")
    p.add_argument("--forecast", action="store_true",
                   help="run the forecast (and its alerts) before each report")
    p.set_defaults(func=cmd_report)


def cmd_forecast(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.run import run_forecast
    from polarwatch.console import log

    summary = run_forecast(cfg, metric=args.metric)
    log(f"forecast done: {summary}")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("forecast", help="forecast the per-topic series and flag outliers")
    p.add_argument("--metric", help="topic_windows column (default from config)")
    p.set_defaults(func=cmd_forecast)

    p = subparsers.add_parser(
        "detect", help="causal anomaly detection on a timestamp,value CSV",
        description="Run the causal streaming detector on a CSV with a `timestamp,value` "
                    "header (any regular interval). Writes timestamp, value, forecast, lower, "
                    "upper, anomaly_score (0..1), flag (none|spike|reactive|anticipatory: set "
                    "on the alarm row, the first row of an episode, only) and episode (the id "
                    "of the alarm episode the row belongs to, empty outside episodes). "
                    "Problems in the input are reported on stderr.")
    p.add_argument("series", help="input CSV (- for stdin)")
    p.add_argument("-o", "--output", help="output CSV (default: stdout)")
    p.add_argument("--threshold", type=argtypes.unit_interval,
                   help="alarm threshold on anomaly_score, in (0, 1] (default 0.9999)")
    p.add_argument("--refractory", type=argtypes.duration_or_zero, metavar="DURATION",
                   help="an episode stays open at least this long, e.g. 12h, 2d, or 0 "
                        "(default 24h)")
    p.add_argument("--season", default="auto", type=argtypes.season,
                   help="auto (daily cycle, weekly for daily data), none, or points per cycle "
                        "(>= 2)")
    p.add_argument("--crossing", type=argtypes.finite, help="also flag anticipatory when the forecast "
                                                  "crosses this level within [forecast] horizon")
    p.add_argument("--duplicates", choices=["last", "error"], default="last",
                   help="duplicate timestamps: keep the last row (default) or fail")
    p.set_defaults(func=cmd_detect)

    p = subparsers.add_parser("alerts", help="alert webhooks")
    asub = p.add_subparsers(dest="alerts_command", required=True)
    t = asub.add_parser("test", help="send a signed sample alert to URL",
                        allow_abbrev=False)  # --secret must not pass for --secret-env
    t.add_argument("url")
    t.add_argument("--secret-env", metavar="VAR",
                   help="sign with the whsec_<base64> secret in this environment variable "
                        "(default: [alerts] secret, $POLARWATCH_ALERTS_SECRET); a secret is "
                        "never an argument, as every user of the machine can read arguments")
    t.add_argument("--format", choices=WEBHOOK_FORMATS,
                   help="payload format (default: [alerts] format, standard)")
    t.add_argument("--attempts", type=argtypes.count(1), default=3, help="delivery attempts (default 3)")
    t.add_argument("--no-log", action="store_true", help="do not write the DuckDB delivery log")
    t.set_defaults(func=cmd_alerts_test)

    register_events_and_report(subparsers)
