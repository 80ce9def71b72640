"""``polarwatch broker`` and ``polarwatch ingest synthetic|file|jetstream|mastodon``: thin
drivers over :mod:`ingest.broker` and :mod:`ingest.sources`.

Every driver validates and de-duplicates through :class:`~ingest.producer.PostProducer`, routes
posts to topics (``--topic`` or the keywords in ``topics.toml``) and saves its position in a
progress file under ``--state-dir`` only after the broker confirmed delivery, so re-running the
same command after a crash resumes where the confirmed records end.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from polarwatch import argtypes
from polarwatch.config import Config
from polarwatch.console import SERVING, STOP, log
from polarwatch.errors import BrokerError, ConfigError, PolarwatchError

DEFAULT_STATE_DIR = ".polarwatch/ingest"
LOG = logging.getLogger(__name__)


def embedded_broker(cfg: Config) -> Any:
    from ingest.broker import EmbeddedBroker, parse_hostport

    host, port = parse_hostport(cfg.broker.bootstrap_servers)
    if host not in ("127.0.0.1", "localhost"):
        raise PolarwatchError(f"the embedded broker only runs on 127.0.0.1, but bootstrap_servers "
                              f"is {cfg.broker.bootstrap_servers!r}; start that Kafka yourself")
    return EmbeddedBroker(port, cfg.path(cfg.broker.state_dir), storage=cfg.broker.storage)


def cmd_broker(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.broker import ensure_topics

    broker = embedded_broker(cfg)
    if args.action == "start":
        pid = broker.start()
        created = ensure_topics(broker.bootstrap, [cfg.topics.posts, cfg.topics.dead_letter],
                                cfg.topics.partitions)
        log(f"broker up at {broker.bootstrap} (pid {pid}, log {broker.log_file}); "
            f"topics created: {', '.join(created) or 'none (already there)'}")
        if cfg.broker.storage == "memory":
            log("storage is in memory: stopping the broker loses its messages "
                "(set [broker] storage = \"s3\" to keep them across broker restarts)")
            if any(_retention(cfg)):
                LOG.warning("[broker] retention_hours/retention_mb are set, but memory storage "
                            "cannot be pruned (Tansu has no retention): it grows, ~230 B per "
                            "message, until the broker stops; set [broker] storage = \"s3\" "
                            "and run `polarwatch broker prune`")
        else:
            log("storage is a local S3 server: messages survive broker restarts; "
                "`polarwatch broker stop` stops that server too")
            start_pruner(cfg, broker)
    elif args.action == "stop":
        log("broker stopped" if broker.stop() else "broker was not running")
    elif args.action == "prune":
        return _prune(cfg, broker, args)
    else:
        log(f"broker running at {broker.bootstrap} (pid {broker.pid()})" if broker.running()
            else f"broker not running (expected at {broker.bootstrap})")
        return 0 if broker.running() else 3
    return 0


def _retention(cfg: Config) -> tuple[float, int, int]:
    """[broker] retention_hours, retention_mb and retention_batches (0 = that limit is off)."""
    return cfg.broker.retention_hours, cfg.broker.retention_mb, cfg.broker.retention_batches


def _prune(cfg: Config, broker: Any, args: argparse.Namespace) -> int:
    """``broker prune``: remove consumed record batches beyond the retention (s3 storage). With
    ``--every`` it runs until stopped, and a round the S3 server fails is logged and retried."""
    from ingest.retention import prune

    hours, mb, batches = _retention(cfg)
    if cfg.broker.storage != "s3":
        raise PolarwatchError("`broker prune` needs [broker] storage = \"s3\": memory storage "
                              "cannot be pruned (Tansu has no retention and its DeleteRecords "
                              "panics); only a broker restart frees it, and loses every message")
    if not (hours or mb or batches):
        log("retention is off ([broker] retention_hours, retention_mb and retention_batches "
            "are 0): nothing to prune")
        return 0
    SERVING.set()
    try:
        while True:
            try:
                endpoint = broker.s3_endpoint()
                if endpoint is None:
                    raise BrokerError(f"the broker's S3 server is not running (state in "
                                      f"{broker.state_dir}): start it with `polarwatch broker "
                                      f"start`")
                report = prune(endpoint, retention_hours=hours, retention_mb=mb,
                               retention_batches=batches, dry_run=args.dry_run)
                log(("dry run, would be: " if args.dry_run else "pruned: ") + report.summary())
            except BrokerError as exc:
                if not args.every:
                    raise
                LOG.warning("prune round failed, retrying in %g s: %s", args.every, exc)
            if not args.every or STOP.wait(args.every):
                return 0
    finally:
        SERVING.clear()


def start_pruner(cfg: Config, broker: Any, env: dict[str, str] | None = None) -> None:
    """With s3 storage, keep a ``broker prune --every [broker] prune_every_s`` process running
    next to the broker (Tansu's fetches stall once a partition holds thousands of batches);
    ``env``: the pruner's environment (default: this process's)."""
    every = cfg.broker.prune_every_s
    if cfg.broker.storage != "s3" or not every or not any(_retention(cfg)):
        return
    pid = broker.start_pruner([sys.executable, "-m", "polarwatch.cli", "broker", "prune",
                               "--every", f"{every:g}s"], cfg.child_env(env))
    log(f"pruner running every {every:g} s (pid {pid}, log {broker.pruner_log_file}): "
        f"consumed batches beyond [broker] retention_* are removed")


def produce_synthetic(cfg: Config, days: int, seed: int, rate: float,
                      invalid_every: int, start: datetime | None = None) -> list[Any]:
    """Produce the synthetic corpus (ending now unless `start` is given); returns its events
    (SyntheticEvent)."""
    from ingest.broker import ensure_topics
    from ingest.producer import PostProducer
    from ingest.sources.synthetic import default_events, generate, with_invalid

    topics = cfg.load_topics()
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions, **cfg.kafka_options())
    if start is None:
        start = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0,
                                                                   microsecond=0)
    events = default_events(topics, start, days)
    for ev in events:
        log(f"synthetic {ev.kind} event {ev.name!r} on {ev.topic} at {ev.at:%Y-%m-%d %H:%M} UTC")
    posts = generate(topics, days=days, seed=seed, start=start, rate=rate)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter, **cfg.kafka_options()) as producer:
        if invalid_every:
            for raw in with_invalid(posts, every=invalid_every, seed=seed):
                producer.send_raw(raw)
        else:
            producer.send_many(posts)
    st = producer.stats
    log(f"{st.sent:,} posts produced to {cfg.topics.posts}; {st.dead_lettered} invalid records "
        f"sent to {cfg.topics.dead_letter} ({st.reasons or 'none'})")
    return events


def cmd_synthetic(cfg: Config, args: argparse.Namespace) -> int:
    produce_synthetic(cfg, args.days, args.seed, args.rate, args.invalid_every)
    return 0


def _verbose(args: argparse.Namespace) -> None:
    """``ingest … -v``: log every confirmation (``ingest.sources.base`` at DEBUG)."""
    if args.verbose:
        logging.getLogger("ingest.sources.base").setLevel(logging.DEBUG)


def _show_progress(args: argparse.Namespace) -> bool:
    """A progress bar (rows read) on stderr: with ``--progress`` or when stderr is a terminal;
    never under the global ``-q``."""
    if getattr(args, "log_level", 0) < 0:
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def _state_dir(cfg: Config, args: argparse.Namespace) -> Path:
    return cfg.path(args.state_dir or DEFAULT_STATE_DIR)


def _replay_speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        speed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'max', got {value!r}") from None
    if speed <= 0:
        raise argparse.ArgumentTypeError(f"replay speed must be > 0, got {value!r}")
    return speed


def _routing(cfg: Config, topic: str | None) -> tuple[Any, str | None]:
    from ingest.normalize import TopicRouter

    router = TopicRouter.from_topics(cfg.load_topics())
    if topic is not None and topic not in router.ids:
        raise ConfigError(f"--topic {topic!r} is not in {cfg.extractor.topics_file}; known "
                          f"topics are {', '.join(router.ids)}")
    return router, topic


def _producer(cfg: Config) -> Any:
    from ingest.broker import ensure_topics
    from ingest.producer import PostProducer

    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions, **cfg.kafka_options())
    return PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts, cfg.topics.dead_letter,
                        dedup=True,
                        max_future_skew=timedelta(hours=cfg.ingest.max_future_skew_hours),
                        **cfg.kafka_options())


def _summary(what: str, stats: Any, producer: Any, position: Any) -> None:
    reasons = f" {producer.stats.reasons}" if stats.dead_lettered else ""
    log(f"{what}: {stats.read:,} records read ({stats.replayed:,} before the resume point), "
         f"{stats.sent:,} posts sent, {stats.duplicates:,} duplicates dropped, "
         f"{stats.dead_lettered:,} dead-lettered{reasons}, {stats.no_topic:,} matched no topic, "
         f"{stats.ignored:,} ignored; confirmed position {position}")


def cmd_file(cfg: Config, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ingest.sources.base import Replay, pump
    from ingest.sources.files import FileSource, RowMapper, open_progress, parse_mapping, saver

    mapping = parse_mapping(args.map, args.preset)
    if args.platform:
        mapping["platform"] = f"={args.platform}"
    router, topic = _routing(cfg, args.topic)
    _verbose(args)
    sources = [FileSource(p, args.format, RowMapper(mapping, assume_utc=args.assume_utc))
               for p in args.paths]  # fail on a missing file before sending anything
    state_dir = _state_dir(cfg, args)
    with _producer(cfg) as producer:
        for source in sources:
            progress = open_progress(source, state_dir, cfg.topics.posts, restart=args.restart)
            if progress.position:
                log(f"{source.path}: resuming after row {progress.position:,} "
                     f"(progress file {progress.checkpoint.path})")
            records = tqdm(source.records(progress.position), desc=str(source.path.name),
                           unit="rows", file=sys.stderr, disable=not _show_progress(args))
            stats = pump(records, producer, router=router,
                         topic=topic, checkpoint=saver(progress, source),
                         confirm_every=args.confirm_every, replay=Replay(args.replay_speed))
            _summary(str(source.path), stats, producer, progress.position)
    return 0


def _run_live(cfg: Config, args: argparse.Namespace, source: Any, kind: str) -> int:
    from ingest.sources.base import Checkpoint, pump

    router, topic = _routing(cfg, args.topic)
    _verbose(args)
    ckpt = Checkpoint(_state_dir(cfg, args), kind, f"{source.checkpoint_key()}|{cfg.topics.posts}")
    if args.restart:
        ckpt.clear()
    saved_position, conversations, save = ckpt.resume_live()
    position = args.cursor if args.cursor is not None else saved_position
    if position is not None:
        log(f"{kind}: resuming from position {position} (progress file {ckpt.path})")
    deadline = time.monotonic() + args.duration if args.duration else None
    with _producer(cfg) as producer:
        stats = pump(source.records(position), producer, router=router, topic=topic,
                     checkpoint=save, conversations=conversations,
                     confirm_seconds=args.confirm_seconds,
                     max_posts=args.max_posts, deadline=deadline)
        _summary(kind, stats, producer,
                 stats.position if stats.position is not None else position)
    return 0


def cmd_jetstream(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.sources.jetstream import JetstreamSource

    return _run_live(cfg, args, JetstreamSource(args.url), "jetstream")


def cmd_mastodon(cfg: Config, args: argparse.Namespace) -> int:
    from ingest.sources.mastodon import MastodonSource

    if not args.tag and not args.public:
        raise ConfigError("mastodon: pass --tag TAG or --public")
    token = (os.environ.get(args.token_env) if args.token_env  # else [ingest] mastodon_token
             else cfg.ingest.mastodon_token.get_secret_value()) or None
    source = MastodonSource(args.instance, tag=args.tag, local=args.local, token=token,
                            catch_up=not args.no_catch_up)
    return _run_live(cfg, args, source, "mastodon")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", help="assign every post to this topic id (default: route by the "
                                   "keywords/hashtags in topics.toml; unmatched posts are skipped)")
    p.add_argument("--state-dir", help=f"where progress files live (default {DEFAULT_STATE_DIR} "
                                       f"next to polarwatch.toml)")
    p.add_argument("--restart", action="store_true",
                   help="ignore the saved progress and start from the beginning")
    p.add_argument("-v", "--verbose", action="store_true", help="log every confirmation")


def _live(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--max-posts", type=argtypes.count(1),
                   help="stop after sending this many posts")
    p.add_argument("--duration", type=argtypes.duration,
                   help="stop after this long, e.g. 90s, 10m, 2h (default: run until stopped)")
    p.add_argument("--confirm-seconds", type=argtypes.at_least(0.1), default=2.0,
                   help="confirm delivery and save the cursor this often (default 2)")


def register(sub: Any) -> None:
    """The ``broker`` and ``ingest`` commands."""
    from ingest.sources.files import FORMATS, PRESETS

    p = sub.add_parser("broker", help="start/stop/status of the embedded Kafka-compatible broker, "
                                      "and prune of its s3 storage")
    p.add_argument("action", choices=["start", "stop", "status", "prune"])
    p.add_argument("--dry-run", action="store_true",
                   help="prune: only report what would be removed")
    p.add_argument("--every", type=argtypes.duration_or_zero, metavar="DURATION",
                   help="prune: run again this often until stopped, e.g. 60s, 5m "
                        "(default: once)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("ingest", help="produce posts to Kafka")
    isub = p.add_subparsers(dest="source", required=True)
    p = isub.add_parser("synthetic", help="an event-driven synthetic corpus of reply threads")
    p.add_argument("--days", type=argtypes.count(1), default=14)
    p.add_argument("--seed", type=argtypes.count(0), default=7)
    p.add_argument("--rate", type=argtypes.positive, default=1.0,
                   help="conversation-rate multiplier")
    p.add_argument("--invalid-every", type=argtypes.count(0), default=0,
                   help="slip one malformed record in every N posts (0 = none)")
    p.set_defaults(func=cmd_synthetic)

    p = isub.add_parser("file", help="posts from JSONL, CSV or Parquet files",
                        description="Ingest posts from files, resuming after the last row the "
                                    "broker confirmed when run again.")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--format", choices=FORMATS,
                   help="file format (default: from the extension; .gz is decompressed)")
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="column mapping of a Reddit comment/submission or Twitter export")
    p.add_argument("--map", metavar="FIELD=COLUMN,...",
                   help="post field → column, e.g. text=body,created_at=created_utc; a dotted "
                        "column reads nested JSON (author_id=user.id_str); =VALUE is a constant")
    p.add_argument("--platform", help="platform name stored with each post (default: file)")
    p.add_argument("--assume-utc", action="store_true",
                   help="read timestamps without a timezone as UTC (default: dead-letter them)")
    p.add_argument("--replay-speed", type=_replay_speed, default=None, metavar="N|max",
                   help="replay the posts' timestamps at N× real time (default max: no waiting)")
    p.add_argument("--confirm-every", type=argtypes.count(1), default=5_000,
                   help="confirm delivery and save progress every N rows (default 5000)")
    p.add_argument("--progress", action="store_true",
                   help="a progress bar of the rows read on stderr even when it is not a "
                        "terminal (default: only on a terminal; never with -q)")
    _common(p)
    p.set_defaults(func=cmd_file)

    p = isub.add_parser("jetstream", help="live Bluesky posts from a Jetstream websocket")
    from ingest.sources.jetstream import DEFAULT_URL

    p.add_argument("--url", default=DEFAULT_URL, help=f"Jetstream subscribe URL "
                                                      f"(default {DEFAULT_URL})")
    p.add_argument("--cursor", type=argtypes.count(0), help="start at this time_us (default: the saved cursor, "
                                              "else now)")
    _live(p)
    p.set_defaults(func=cmd_jetstream)

    p = isub.add_parser("mastodon", help="live statuses from a Mastodon streaming API")
    p.add_argument("--instance", required=True, help="e.g. https://mastodon.social")
    p.add_argument("--tag", help="a hashtag timeline (without #)")
    p.add_argument("--public", action="store_true", help="the public (federated) timeline")
    p.add_argument("--local", action="store_true", help="only statuses of this instance")
    p.add_argument("--token-env", metavar="VAR",
                   help="read the access token from VAR instead of [ingest] mastodon_token "
                        "[env: POLARWATCH_INGEST_MASTODON_TOKEN]")
    p.add_argument("--no-catch-up", action="store_true",
                   help="after a reconnect, do not fetch the statuses missed meanwhile")
    p.add_argument("--cursor", help="resume after this status id (default: the saved one)")
    _live(p)
    p.set_defaults(func=cmd_mastodon)
