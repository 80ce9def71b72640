"""`polarwatch forecast`, `detect`, `alerts test`, `events list|add|remove` and `report`:
argparse over forecast.run, forecast.detect_csv, forecast.alerts, forecast.event_calendar and
forecast.reports. Every time option takes the one duration grammar (``30m``, ``6h``, ``2d``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from polarwatch.fields import WEBHOOK_FORMATS
from polarwatch.safe_write import check_new_output


def cmd_forecast(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.alerts.delivery import check_webhooks
    from forecast.run import run_forecast
    from polarwatch.console import log
    from polarwatch.warehouse import lock_explained

    check_webhooks(cfg)
    with lock_explained(cfg.warehouse_path, "polarwatch forecast"):
        summary = run_forecast(cfg, metric=args.metric)
    log(f"forecast done: {summary}")
    failed = (summary.alerts or {}).get("failed", 0)
    if failed:  # a scheduler sees it; the messages stay pending for the next run
        print(f"polarwatch forecast: {failed} alert message(s) did not reach every webhook; "
              f"they stay pending and the next forecast sends them again (the alerts log line "
              f"above counts what each endpoint took); exit 1", file=sys.stderr)
        return 1
    return 0


def cmd_detect(cfg: Config, args: argparse.Namespace) -> int:
    from forecast import detect_csv
    from forecast.detect import DetectorConfig

    def note(msg: str) -> None:  # stderr: stdout may carry the output CSV
        print(f"polarwatch detect: {msg}", file=sys.stderr)

    config = DetectorConfig(alpha=cfg.forecast.alpha, threshold=args.threshold, season=args.season,
                            crossing=args.crossing, horizon=cfg.forecast.horizon,
                            suppress_seconds=args.refractory, patterns=cfg.forecast.patterns,
                            routine=cfg.forecast.routine, weekly=cfg.forecast.weekly)
    source = sys.stdin if args.series == "-" else Path(args.series)
    if args.output:  # checked before the input is read
        check_new_output(source if isinstance(source, Path) else None, args.output,
                         "the detector's output would replace the series")
    if args.agg and not (args.snap or args.resample):
        raise ConfigError(f"--agg {args.agg} says how rows that share a grid point are combined, "
                          f"so it needs --snap or --resample FREQ; add one or drop --agg")
    frame, freq, naive = detect_csv.read_series_csv(
        source, duplicates=args.duplicates, note=note, snap=args.snap, resample=args.resample,
        agg=args.agg or "mean")
    result, info = detect_csv.run_detect(frame, freq, config)
    note(detect_csv.describe(result, info, freq))
    if not args.output:
        detect_csv.write_output(result, sys.stdout, naive)
        return 0
    with open(args.output, "w", newline="") as fh:
        detect_csv.write_output(result, fh, naive)
    note(f"wrote {args.output}")
    return 0


def cmd_alerts_test(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.alerts.sample import sample_secret, send_sample_alert
    from polarwatch.redact import url_for_log

    secret = sample_secret(cfg, args.secret_env)
    if secret is None:  # stderr, like every note: stdout carries only data
        print("polarwatch alerts: no --secret-env and no [alerts] secret "
              "($POLARWATCH_ALERTS_SECRET): sending unsigned", file=sys.stderr)
    results = send_sample_alert(cfg, args.url, secret, format=args.format,
                                attempts=args.attempts, log=not args.no_log)
    ok = all(r.delivered for r in results)
    print(f"polarwatch alerts: {'delivered' if ok else 'NOT delivered'} to "
          f"{url_for_log(args.url)} after {results[0].attempts} attempt(s), last status "
          f"{results[0].status}", file=sys.stderr)
    return 0 if ok else 1


def cmd_events(cfg: Config, args: argparse.Namespace) -> int:
    from forecast import event_calendar as cal
    from polarwatch.events import off_topic, remove_event

    path = cal.calendar_path(cfg, args.file)
    if args.events_command == "list":
        shown = cal.list_events(path, args.topic)
        stale = off_topic(shown, cal.topic_ids(cfg))
        for e in shown:
            print(cal.describe(e, unknown_topic=e in stale))
        print(f"{len(shown)} event(s) in {path}", file=sys.stderr)
        if stale:
            print(f"polarwatch events: warning: {cal.off_topic_warning(path, stale)}",
                  file=sys.stderr)
    elif args.events_command == "add":
        fields = {k: getattr(args, k) for k in ("name", "topic", "start", "end", "kind")}
        event = cal.add_event(path, fields, cal.topic_ids(cfg), replace=args.replace)
        print(f"added {event.kind} event {event.name!r} on {event.topic} to {path}")
    else:
        remove_event(path, args.topic, args.name)  # any topic: see remove_event
        print(f"removed {args.name.strip()!r} on {args.topic.strip()} from {path}")
    return 0


def cmd_report(cfg: Config, args: argparse.Namespace) -> int:
    from forecast.reports import report_loop
    from forecast.run import run_forecast

    def forecast_first() -> None:
        run_forecast(cfg)

    if args.count is not None and args.every is None:
        raise ConfigError(f"--count {args.count} needs --every (how often to write a report); "
                          f"without --every one report is written, so drop --count")
    if args.forecast:
        from forecast.alerts.delivery import check_webhooks

        check_webhooks(cfg)
    report_loop(cfg, output=args.output, topics=args.topic or None, since=args.since,
                every=args.every, count=args.count,
                before=forecast_first if args.forecast else None)
    return 0


@argtypes.shown_as("T|DURATION", "a date, an ISO time or a duration")
def _since(text: str) -> str:
    """``--since``: a date, an ISO time or a duration back from the newest window."""
    from forecast.reports import parse_since

    text = argtypes.utf8_text(text)
    try:
        parse_since(text, None)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--since: ")) from None
    argtypes.moment(text)  # a zero duration: pandas reads '0s' as the date 0001-01-01
    return text


class ReportHelpFormatter(argtypes.HelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``report --help``: the options' ``[type; default]`` brackets, and the description and
    the cron epilog as written (line breaks kept)."""


DETECT_HELP = ("Run the causal streaming detector on a CSV with a `timestamp,value` header (any "
               "regular interval; --snap or --resample FREQ put an irregular one on a grid). "
               "Writes timestamp, value, forecast, lower, upper, anomaly_score "
               "(0..1), flag (none|spike|dip|reactive: set on the alarm row, the first row of an "
               "episode, only; classed as `forecast` classes flags with an empty calendar: a "
               "rise is a spike, a fall a dip, a level jump or drop without a build-up reactive, "
               "and nothing is anticipatory, as there is no scheduled event to anticipate) and "
               "episode (the id of the alarm episode the row belongs to, empty outside "
               "episodes). Problems in the input are reported on stderr; the gaps may add at "
               "most 1,000,000 missing points.")
REPORT_HELP = ("Write a self-contained HTML report (charts embedded as PNG): the current state of "
               "each topic, its labels' accuracy measured on the analysts' random labels (with "
               "'not validated' and 'unreliable' as on the Topic page), the forecast for the next [forecast] horizon, the active flags with "
               "their class, the conversations driving them and the before/during/after table of "
               "every event. The forecast shown is that of [forecast] metric "
               "($POLARWATCH_FORECAST_METRIC). -o may hold strftime codes "
               "(report-%Y%m%d-%H%M.html) for one file per run; a symlink is written through to "
               "its file, and a directory, a device or a FIFO is refused before anything is "
               "read.")
REPORT_EPILOG = """\
cron instead of --every: one dated report an hour, after a forecast run (crontab needs % as \\%):
  0 * * * * cd /path/to/polarwatch && .venv/bin/polarwatch report --forecast -o reports/report-\\%Y\\%m\\%d-\\%H.html >> reports/cron.log 2>&1
"""


def register(subparsers: Any) -> None:
    add = subparsers.add_parser
    p = add("forecast", help="forecast the per-topic series and flag outliers")
    p.add_argument("--metric", type=argtypes.utf8_text, config="forecast.metric",
                   help="the topic_windows column to forecast: volume, n_interactions, "
                        "mean_score, n_conversations, extreme_share, hostility_share, "
                        "pro_share or anti_share")
    p.set_defaults(func=cmd_forecast)

    p = add("detect", help="causal anomaly detection on a timestamp,value CSV",
            description=DETECT_HELP)
    p.add_argument("series", help="input CSV (- for stdin)")
    p.add_argument("-o", "--output", help="output CSV, not the input file (default: stdout)")
    p.add_argument("--threshold", type=argtypes.unit_interval,
                   help="alarm threshold on anomaly_score (default 0.99999)")
    p.add_argument("--refractory", type=argtypes.duration_or_zero, metavar="DURATION",
                   help="how long an episode stays open at least, unless a stronger wave "
                        "ends it: a duration with its unit (90m, 12h, 2d; a bare number is "
                        "refused), or 0 for the floor of 3 points (default 12h)")
    p.add_argument("--season", default="auto", type=argtypes.season,
                   help="auto (daily cycle, weekly for daily data), none, or points per cycle "
                        "(>= 2)")
    p.add_argument("--crossing", type=argtypes.finite, help="also flag (as a spike) when the "
                   "forecast crosses this level within [forecast] horizon")
    p.add_argument("--duplicates", choices=["last", "error"], default="last",
                   help="duplicate timestamps: keep the last row (default) or fail")
    grid = p.add_mutually_exclusive_group()
    grid.add_argument("--snap", action="store_true",
                      help="move rows off the grid of the most common step to its nearest "
                           "point (a tie: the later one); the grid keeps the phase most rows "
                           "have, so a regular series is unchanged")
    grid.add_argument("--resample", type=argtypes.interval,
                      help="put the series on a FREQ grid aligned to 1970-01-01 UTC: each row "
                           "goes to the start of the interval [t, t+FREQ) it falls in")
    p.add_argument("--agg", choices=["mean", "sum", "last"],
                   help="with --snap or --resample: how rows on one grid point are combined, "
                        "from their observed values (default mean); the output keeps the grid "
                        "timestamps, not the rows' own")
    p.set_defaults(func=cmd_detect)

    p = add("alerts", help="alert webhooks")
    t = p.add_subparsers(dest="alerts_command", required=True).add_parser(
        "test", help="send a signed sample alert to URL",
        allow_abbrev=False)  # --secret must not pass for --secret-env
    t.add_argument("url", type=argtypes.utf8_text)
    t.add_argument("--secret-env", type=argtypes.utf8_text, metavar="VAR",
                   help="sign with the whsec_<base64> secret in this environment variable "
                        "(default: [alerts] secret, $POLARWATCH_ALERTS_SECRET); a secret is "
                        "never an argument, as every user of the machine can read arguments")
    t.add_argument("--format", choices=WEBHOOK_FORMATS, config="alerts.format",
                   help="payload format (default: [alerts] format, standard)")
    t.add_argument("--attempts", type=argtypes.count(1), default=3,
                   help="delivery attempts (default 3)")
    t.add_argument("--no-log", action="store_true", help="do not write the DuckDB delivery log")
    t.set_defaults(func=cmd_alerts_test)

    p = add("events", help="list / add / remove events of the calendar")
    p.add_argument("--file", help="calendar file [env: POLARWATCH_EVENTS_FILE; default "
                                  "events.toml next to the config]")
    esub = p.add_subparsers(dest="events_command", required=True)
    e = esub.add_parser("list", help="events sorted by start")
    e.add_argument("--topic", type=argtypes.utf8_text, help="only this topic")
    e = esub.add_parser("add", help="add an event (scheduled: known in advance; sudden)")
    e.add_argument("name", type=argtypes.utf8_text)
    e.add_argument("--topic", type=argtypes.utf8_text, required=True, help="topic id from topics.toml")
    e.add_argument("--start", type=argtypes.utf8_text, required=True,
                   help="e.g. 2026-03-04T18:00:00Z (or a date)")
    e.add_argument("--end", type=argtypes.utf8_text, help="optional end (default: a point in time)")
    e.add_argument("--kind", choices=["scheduled", "sudden"], required=True,
                   help="scheduled: known in advance (a vote, a hearing); sudden: not (a "
                        "shooting, a leak); flags before a scheduled event can be "
                        "anticipatory")
    e.add_argument("--replace", action="store_true", help="overwrite an event of that name")
    e = esub.add_parser("remove", help="remove the event NAME of --topic")
    e.add_argument("name", type=argtypes.utf8_text)
    e.add_argument("--topic", type=argtypes.utf8_text, required=True, help="topic id of the event (from topics.toml)")
    p.set_defaults(func=cmd_events)

    p = add("report", help="an HTML report: state, forecast, flags, drivers, event studies",
            description=REPORT_HELP, epilog=REPORT_EPILOG,
            formatter_class=ReportHelpFormatter)
    p.add_argument("-o", "--output", default="report.html",
                   help="output HTML (default report.html)")
    p.add_argument("--topic", type=argtypes.utf8_text, action="append",
                   help="only this topic (repeatable)")
    p.add_argument("--since", type=_since, shown_default="all",
                   help="start of the report: 2026-03-01, an ISO time, or a duration (7d, "
                        "48h) before the newest window")
    p.add_argument("--every", type=argtypes.duration_text, shown_default="once",
                   help="repeat every interval (30m, 1h, 1d) until Ctrl-C")
    p.add_argument("--count", type=argtypes.count(1), shown_default="no limit",
                   help="with --every (refused without it): stop after this many reports")
    p.add_argument("--forecast", action="store_true",
                   help="run the forecast (and its alerts) before each report")
    p.set_defaults(func=cmd_report)
