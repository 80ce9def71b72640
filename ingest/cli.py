"""``polarwatch broker start|stop|status|prune`` and ``polarwatch ingest
synthetic|file|jetstream|mastodon``: argument parsing over :mod:`ingest.runs`,
:mod:`ingest.broker` and :mod:`ingest.retention`."""

from __future__ import annotations

import argparse
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from polarwatch.console import show_progress


def cmd_broker(cfg: Config, args: argparse.Namespace) -> int:
    from ingest import runs
    from ingest.broker import embedded_broker
    from ingest.retention import prune_storage

    if args.action == "start":
        runs.start_broker(cfg)
    elif args.action == "stop":
        runs.stop_broker(cfg)
    elif args.action == "status":
        return 0 if runs.broker_status(cfg) else 3
    else:
        runs.require_embedded(cfg, "prune")
        prune_storage(cfg, embedded_broker(cfg), dry_run=args.dry_run, every=args.every)
    return 0


def cmd_synthetic(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.runs import produce_synthetic

    produce_synthetic(cfg, args.days, args.seed, args.rate, args.invalid_every)
    return 0


def cmd_file(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.runs import ingest_files
    from ingest.sources.mapping import parse_mapping

    mapping = parse_mapping(args.map, args.preset)
    if args.platform:
        mapping["platform"] = f"={args.platform}"
    ingest_files(cfg, args.paths, mapping, fmt=args.format, assume_utc=args.assume_utc,
                 topic=args.topic, state_dir=args.state_dir, restart=args.restart,
                 confirm_every=args.confirm_every, replay_speed=args.replay_speed,
                 progress=show_progress(args))
    return 0


def cmd_live(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.runs import ingest_live, mastodon_source

    if args.source == "jetstream":
        from ingest.sources.jetstream import JetstreamSource

        source = JetstreamSource(args.url)
    else:
        source = mastodon_source(cfg, args.instance, tag=args.tag, public=args.public,
                                 local=args.local, token_env=args.token_env,
                                 catch_up=not args.no_catch_up)
    return 0 if ingest_live(cfg, source, args.source, topic=args.topic, state_dir=args.state_dir,
                            restart=args.restart, cursor=args.cursor, duration=args.duration,
                            confirm_interval=args.confirm_interval, max_posts=args.max_posts) else 1


def _shared(p: Any, live: bool) -> None:
    p.add_argument("--topic", type=argtypes.utf8_text, help="assign every post to this topic id",
                   shown_default="route by the keywords/hashtags in topics.toml; unmatched posts are skipped")
    p.add_argument("--state-dir", shown_default=".polarwatch/ingest next to polarwatch.toml",
                   help="where progress files live")
    p.add_argument("--restart", action="store_true",
                   help="ignore the saved progress and start from the beginning")
    if live:
        p.add_argument("--max-posts", type=argtypes.count(1),
                       help="stop after sending this many posts")
        p.add_argument("--duration", type=argtypes.duration, shown_default="until stopped",
                       help="stop after this long")
        p.add_argument("--confirm-interval", type=argtypes.duration, default="2s",
                       help="confirm delivery and save the cursor this often")


def register(sub: Any) -> None:
    """The ``broker`` and ``ingest`` commands."""
    from ingest.sources.files import FORMATS
    from ingest.sources.jetstream import DEFAULT_URL
    from ingest.sources.mapping import PRESETS

    p = sub.add_parser("broker", help="the embedded Kafka-compatible broker: start, stop, "
                                      "status, prune (s3 storage)")
    p.set_defaults(func=cmd_broker)
    bsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    bsub.add_parser("start", help="start it with the topics (and its pruner with s3 storage)")
    bsub.add_parser("stop", help="stop it (and its S3 server and pruner)")
    bsub.add_parser("status", help="say whether it runs and answers (exit code 3 when not)")
    p = bsub.add_parser("prune", help="remove consumed record batches beyond [broker] "
                                      "retention_* (s3 storage)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    p.add_argument("--every", type=argtypes.duration, shown_default="once",
                   help="run again this often until stopped")

    p = sub.add_parser("ingest", help="produce posts to Kafka")
    isub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    p = isub.add_parser("synthetic", help="an event-driven synthetic corpus of reply threads")
    p.add_argument("--days", type=argtypes.count(1), default=14, help="simulated days")
    p.add_argument("--seed", type=argtypes.count(0), default=7, help="random seed")
    p.add_argument("--rate", type=argtypes.positive, default=1.0,
                   help="conversation-rate multiplier")
    p.add_argument("--invalid-every", type=argtypes.count(0), default=0,
                   help="slip one malformed record in every N posts (0 = none)")
    p.set_defaults(func=cmd_synthetic)

    p = isub.add_parser("file", help="posts from JSONL, CSV or Parquet files",
                        description="Ingest posts from files, resuming after the last row the "
                                    "broker confirmed when run again.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=FORMATS, help="file format",
                   shown_default="from the extension; .gz is decompressed")
    p.add_argument("--preset", choices=sorted(PRESETS), help="a Reddit or Twitter export's columns")
    p.add_argument("--map", type=argtypes.utf8_text, metavar="FIELD=COLUMN,...", help="post field → "
                   "column, e.g. text=body; user.id_str, a.0.id and a[type=replied_to].id read nested "
                   "JSON, A|B the first not null, =VALUE is a constant (docs/cli.md)")
    p.add_argument("--platform", type=argtypes.utf8_text, shown_default="file",
                   help="platform name stored with each post")
    p.add_argument("--assume-utc", action="store_true", help="read timestamps without a "
                   "timezone as UTC (without it they are dead-lettered)")
    p.add_argument("--replay-speed", type=argtypes.speed_or_max, shown_default="max: no waiting",
                   help="replay the posts' timestamps at N× real time")
    p.add_argument("--confirm-every", type=argtypes.count(1), default=5_000,
                   help="confirm delivery and save progress every N rows")
    _shared(p, live=False)
    p.set_defaults(func=cmd_file)

    p = isub.add_parser("jetstream", help="live Bluesky posts from a Jetstream websocket")
    p.add_argument("--url", type=argtypes.utf8_text, default=DEFAULT_URL, help="Jetstream subscribe URL")
    p.add_argument("--cursor", type=argtypes.count(0), shown_default="the saved cursor, else now",
                   help="start at this time_us")
    _shared(p, live=True)
    p.set_defaults(func=cmd_live)

    p = isub.add_parser("mastodon", help="live statuses from a Mastodon streaming API")
    p.add_argument("--instance", type=argtypes.utf8_text, required=True, help="e.g. https://mastodon.social")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--tag", type=argtypes.utf8_text, help="a hashtag timeline (without #)")
    which.add_argument("--public", action="store_true", help="the public (federated) timeline")
    p.add_argument("--local", action="store_true", help="only statuses of this instance")
    p.add_argument("--token-env", type=argtypes.utf8_text, metavar="VAR", config="ingest.mastodon_token",
                   help="read the access token from the variable VAR instead")
    p.add_argument("--no-catch-up", action="store_true",
                   help="after a reconnect, do not fetch the statuses missed meanwhile")
    p.add_argument("--cursor", type=argtypes.utf8_text, shown_default="the saved one", help="resume after this status id")
    _shared(p, live=True)
    p.set_defaults(func=cmd_live)
