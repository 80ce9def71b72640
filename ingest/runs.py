"""What the ``broker start`` and ``ingest …`` commands run, as library functions (``ingest/cli.py``
only parses arguments; the demo and the benchmarks call these directly).

Every ingest validates and de-duplicates through :class:`~ingest.producer.PostProducer`, routes
posts to topics (a fixed topic id or the keywords in ``topics.toml``) and saves its position in
a progress file under the state directory only after the broker confirmed delivery, so running
it again after a crash resumes where the confirmed records end.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ingest.broker import EmbeddedBroker, embedded_broker, ensure_topics
from ingest.normalize import TopicRouter
from ingest.producer import PostProducer
from ingest.retention import start_pruner
from polarwatch.broker_probe import require_broker
from polarwatch.config import Config
from polarwatch.errors import BrokerError, ConfigError

DEFAULT_STATE_DIR = ".polarwatch/ingest"  # progress files, next to polarwatch.toml
LOG = logging.getLogger(__name__)
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")  # what --token-env may echo (not a token)
CONFIG_TOKEN = "$POLARWATCH_INGEST_MASTODON_TOKEN"  # where a 401 points without --token-env


def require_embedded(cfg: Config, action: str) -> None:
    """A ConfigError when ``[broker] embedded = false``: `action` manages the embedded broker
    only, and this config points at an external one."""
    if not cfg.broker.embedded:
        raise ConfigError(f"`broker {action}` manages the embedded broker, but [broker] embedded "
                          f"= false points at an external one ({cfg.broker.bootstrap_servers}): "
                          f"run that Kafka yourself, or set embedded = true")


def start_broker(cfg: Config, *, again: bool = True) -> EmbeddedBroker:
    """Start the embedded broker with the posts and dead-letter topics, and its pruner with s3
    storage (``broker start``)."""
    require_embedded(cfg, "start")
    broker = embedded_broker(cfg)
    fresh = not broker.running()
    pid = broker.start()
    try:
        _prepare(cfg, broker, pid)
    except BrokerError as exc:
        if fresh:  # a broker this command started does not outlive its failure
            broker.stop()
            raise
        if broker.pid() is None and again:  # ours was dying when asked (killed just before)
            return start_broker(cfg, again=False)
        # not the security settings' fault (audit R): our own process answers no more
        raise BrokerError(f"the embedded broker already {_not_answering(broker, pid)}") from exc
    except BaseException:
        if fresh:
            broker.stop()
        raise
    return broker


def _not_answering(broker: EmbeddedBroker, pid: int | None) -> str:
    return (f"running (pid {pid}, log {broker.log_file}) does not answer: it may be too busy "
            f"(try again), hung, stopped (SIGSTOP) or dying. If it stays so, `polarwatch broker "
            f"stop`, then `polarwatch broker start`, replaces it (memory storage loses its "
            f"messages)")


def _prepare(cfg: Config, broker: EmbeddedBroker, pid: int) -> None:
    """The topics, what the storage means, and the pruner of s3 storage."""
    created = ensure_topics(broker.bootstrap, [cfg.topics.posts, cfg.topics.dead_letter],
                            cfg.topics.partitions)
    LOG.info(f"broker up at {broker.bootstrap} (pid {pid}, log {broker.log_file}); "
             f"topics created: {', '.join(created) or 'none (already there)'}")
    if cfg.broker.storage == "memory":
        LOG.info("storage is in memory: stopping the broker loses its messages, and the "
                 "retention_* keys do not apply (set [broker] storage = \"s3\" to keep "
                 "messages across broker restarts and prune them)")
        if chosen := retention_chosen(cfg):
            LOG.warning(f"[broker] {', '.join(chosen)} is set, but memory storage "
                        "cannot be pruned (Tansu has no retention): it grows, ~230 B per "
                        "message, until the broker stops; set [broker] storage = \"s3\" "
                        "and run `polarwatch broker prune`")
    else:
        LOG.info("storage is a local S3 server: messages survive broker restarts; "
                 "`polarwatch broker stop` stops that server too")
        start_pruner(cfg, broker)


def retention_chosen(cfg: Config) -> list[str]:
    """``key = value`` of each retention key the file or the environment sets to a limit other
    than its default (the shipped polarwatch.toml spells the defaults out: that is no choice)."""
    b, defaults = cfg.broker, type(cfg.broker)()
    return [f"{k} = {getattr(b, k):g}" for k in
            ("retention_hours", "retention_mb", "retention_batches")
            if k in b.model_fields_set and getattr(b, k) and getattr(b, k) != getattr(defaults, k)]


def stop_broker(cfg: Config) -> bool:
    """Stop the embedded broker, its S3 server and pruner; False when it was not running."""
    require_embedded(cfg, "stop")
    stopped = embedded_broker(cfg).stop()
    LOG.info("broker stopped" if stopped else "broker was not running")
    return stopped


def broker_status(cfg: Config) -> bool:
    """Log whether the embedded broker runs (with ``embedded = false``: whether the external
    broker accepts a connection), and return that."""
    if not cfg.broker.embedded:
        try:  # every address of the list, each one's reason when none answers
            at = require_broker(cfg.broker.bootstrap_servers, embedded=False)
        except BrokerError as exc:
            LOG.info(f"external broker (embedded = false): {exc}")
            return False
        LOG.info(f"external broker (embedded = false) at {at} accepts connections" if at else
                 f"external broker (embedded = false) at {cfg.broker.bootstrap_servers}: not "
                 f"a host:port list, so not checked here")
        return True
    broker = embedded_broker(cfg)
    if not broker.running():
        LOG.info(f"broker not running (expected at {broker.bootstrap})")
        return False
    try:  # a hung or stopped (SIGSTOP) broker's port still accepts TCP connections
        ensure_topics(broker.bootstrap, [], cfg.topics.partitions)
    except BrokerError:
        LOG.info(f"broker at {broker.bootstrap} {_not_answering(broker, broker.pid())}")
        return False
    LOG.info(f"broker running at {broker.bootstrap} (pid {broker.pid()})")
    return True


def produce_synthetic(cfg: Config, days: int, seed: int, rate: float,
                      invalid_every: int, start: datetime | None = None) -> list[Any]:
    """Produce the synthetic corpus (ending now unless `start` is given); returns its events
    (SyntheticEvent)."""
    from ingest.sources.synthetic import default_events, generate, with_invalid

    topics = cfg.load_topics()
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions, embedded=cfg.broker.embedded, **cfg.kafka_options())
    if start is None:
        start = (datetime.now(UTC) - timedelta(days=days)).replace(minute=0, second=0,
                                                                   microsecond=0)
    events = default_events(topics, start, days)
    for ev in events:
        LOG.info(f"synthetic {ev.kind} event {ev.name!r} on {ev.topic} at "
                 f"{ev.at:%Y-%m-%d %H:%M} UTC")
    posts = generate(topics, days=days, seed=seed, start=start, rate=rate)
    with PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts,
                      cfg.topics.dead_letter, **cfg.kafka_options()) as producer:
        if invalid_every:  # each invalid record keyed by this corpus and its place in it
            corpus = f"synthetic days={days} seed={seed} rate={rate:g} start={start.isoformat()}"
            for i, raw in enumerate(with_invalid(posts, every=invalid_every, seed=seed)):
                producer.send_raw(raw, (corpus, i))
        else:
            producer.send_many(posts)
    st = producer.stats
    LOG.info(f"{st.sent:,} posts produced to {cfg.topics.posts}; {st.dead_lettered} invalid "
             f"records sent to {cfg.topics.dead_letter} ({st.reasons or 'none'})")
    return events


def routing(cfg: Config, topic: str | None) -> TopicRouter:
    """The router of ``topics.toml``, after checking that a fixed `topic` is one of its ids."""
    if topic is not None:
        cfg.topic(topic)
    return TopicRouter.from_topics(cfg.load_topics())


def open_producer(cfg: Config) -> PostProducer:
    """A de-duplicating producer to the configured topics (created when missing)."""
    ensure_topics(cfg.broker.bootstrap_servers, [cfg.topics.posts, cfg.topics.dead_letter],
                  cfg.topics.partitions, embedded=cfg.broker.embedded, **cfg.kafka_options())
    return PostProducer(cfg.broker.bootstrap_servers, cfg.topics.posts, cfg.topics.dead_letter,
                        dedup=True,
                        max_future_skew=timedelta(hours=cfg.ingest.max_future_skew_hours),
                        **cfg.kafka_options())


def mastodon_source(cfg: Config, instance: str, *, tag: str | None = None, public: bool = False,
                    local: bool = False, token_env: str | None = None,
                    catch_up: bool = True) -> Any:
    """A Mastodon source of a hashtag (`tag`) or the `public` timeline; its access token from
    the variable `token_env`, else ``[ingest] mastodon_token`` (none when empty)."""
    from ingest.sources.mastodon import MastodonSource

    if not tag and not public:
        raise ConfigError("mastodon: pass --tag TAG or --public")
    token = (env_token(token_env) if token_env
             else cfg.ingest.mastodon_token.get_secret_value()) or None
    source: Any = MastodonSource(instance, tag=tag, local=local, token=token, catch_up=catch_up)
    source.token_env = token_env  # what a 401 tells the user to check (ingest_live)
    return source


def env_token(name: str) -> str:
    """The value of the environment variable *named* `name` (``--token-env``), refused before
    anything connects, as ``alerts test --secret-env`` does, when `name` is not a variable name
    (a token pasted in its place) or the variable is unset or empty. Errors show `name` only
    when it looks like one (upper case, digits, _): it may be the token itself."""
    example = "export MASTODON_TOKEN='…' and pass --token-env MASTODON_TOKEN"
    if not name.isidentifier():
        raise ConfigError("--token-env takes the name of an environment variable (letters, "
                          "digits, _), not a token (the value is not shown): " + example)
    if not os.environ.get(name):
        shown = (name if ENV_NAME.fullmatch(name) else f"(a name of {len(name)} characters, not "
                 f"shown: it has lower-case letters and may be the token itself)")
        raise ConfigError(f"--token-env {shown}: that variable is not set or is empty; "
                          + example)
    return os.environ[name]


def _summary(what: str, stats: Any, producer: PostProducer, position: Any) -> None:
    reasons = f" {producer.stats.reasons}" if stats.dead_lettered else ""
    changed = (f" ({stats.resent_changed:,} of them an id sent before with other content: the "
               f"stream keeps the first version and dead-letters the other)"
               if stats.resent_changed else "")
    LOG.info(f"{what}: {stats.read:,} records read ({stats.replayed:,} before the resume point), "
             f"{stats.sent:,} posts sent{changed}, {stats.duplicates:,} duplicates dropped, "
             f"{stats.dead_lettered:,} dead-lettered{reasons}, {stats.no_topic:,} matched no "
             f"topic, {stats.ignored:,} ignored; "
             + (f"confirmed position {position}" if position is not None else
                "no position confirmed yet (nothing to resume from)"))


def ingest_files(cfg: Config, paths: Sequence[str | Path], mapping: dict[str, str], *,
                 fmt: str | None = None, assume_utc: bool = False, topic: str | None = None,
                 state_dir: str | Path | None = None, restart: bool = False, confirm_every: int = 5_000,
                 replay_speed: float | None = None, progress: bool = False) -> None:
    """``ingest file``: each file from its confirmed position; `mapping` is post field →
    column (``ingest.sources.files.parse_mapping``); `state_dir`: where progress files live
    (relative to the config file; default :data:`DEFAULT_STATE_DIR`); `progress`: a bar of the
    rows read on stderr."""
    from tqdm import tqdm

    from ingest.sources.base import Replay, pump
    from ingest.sources.files import FileSource
    from ingest.sources.mapping import RowMapper
    from ingest.sources.progress import broker_lost, open_progress, saver

    router = routing(cfg, topic)
    sources = [FileSource(p, fmt, RowMapper(mapping, assume_utc=assume_utc))
               for p in paths]  # fail on a missing file before sending anything
    sources = list({s.name: s for s in sources}.values())  # a file named twice is read once
    for source in sources:  # ... and on a file none of whose rows has a text (or id, ...)
        source.check_columns()

    def lost(delivered: list[dict[str, Any]]) -> str | None:  # the broker lost them?
        return broker_lost(cfg.broker.bootstrap_servers, cfg.kafka_options(), delivered)

    with open_producer(cfg) as producer:
        # every file's progress is checked before any is sent: a refusal sends nothing
        resumes = [open_progress(source, cfg.path(str(state_dir or DEFAULT_STATE_DIR)),
                                 cfg.topics.posts, restart=restart, lost=lost)
                   for source in sources]
        for source, resume in zip(sources, resumes, strict=True):
            if resume.position:
                LOG.info(f"{source.path}: resuming after row {resume.position:,} "
                         f"(progress file {resume.checkpoint.path})")
            records = tqdm(source.records(resume.position), desc=str(source.path.name),
                           unit="rows", file=sys.stderr, disable=not progress)
            try:
                stats = pump(records, producer, router=router, topic=topic,
                             checkpoint=saver(resume, source, producer),
                             confirm_every=confirm_every,
                             replay=Replay(replay_speed), origin=source.checkpoint_key())
            except (KeyboardInterrupt, SystemExit):  # what was sent is confirmed and saved
                done = (f"the broker confirmed rows 1-{resume.position:,}, and the same command "
                        f"resumes after row {resume.position:,}" if resume.position else
                        "no row of it was confirmed, and the same command starts at row 1")
                LOG.warning(f"{source.path}: stopped; {done}")
                raise
            _summary(str(source.path), stats, producer, resume.position)
            if (unread := source.mapper.unread_parents()) is not None:
                LOG.warning(f"{source.path}: {unread}")
            if early := source.mapper.threads.early:
                LOG.warning(
                    f"{source.path}: {early:,} replies came before their parent in the file "
                    f"(newest first?): each was routed without its thread's topic (one naming "
                    f"no keyword matched no topic) and, without a conversation_id column, took "
                    f"its parent's id as its conversation; sort the file oldest first (by "
                    f"created_at) and ingest it again with --restart")


def ingest_live(cfg: Config, source: Any, kind: str, *, topic: str | None = None,
                state_dir: str | Path | None = None, restart: bool = False, cursor: Any = None,
                duration: float | None = None, confirm_interval: float = 2.0,
                max_posts: int | None = None) -> bool:
    """``ingest jetstream|mastodon``: a live `source` from `cursor` (default: the saved one)
    until `max_posts` posts or `duration` seconds (default: until stopped), also while the
    server cannot be reached (mid-backoff or mid-connect); `state_dir` as in
    :func:`ingest_files`. False when the server could not be reached in the whole run."""
    from ingest.sources.base import Checkpoint, SourceError, pump
    from ingest.sources.live_progress import open_live
    from ingest.sources.progress import broker_lost

    router = routing(cfg, topic)
    ckpt = Checkpoint(cfg.path(str(state_dir or DEFAULT_STATE_DIR)), kind, f"{source.checkpoint_key()}|{cfg.topics.posts}")
    if restart:
        ckpt.clear()
    saved = ckpt.load() or {}  # a damaged progress file: its error before the broker's
    with open_producer(cfg) as producer:  # no broker: its one line at once
        start = open_live(saved, cursor, kind, lambda delivered: broker_lost(
            cfg.broker.bootstrap_servers, cfg.kafka_options(), delivered))
        position = start.position
        if position is not None:
            LOG.info(f"{kind}: resuming from position {position} (progress file {ckpt.path})")
        deadline = time.monotonic() + duration if duration else None
        source.deadline = deadline
        source.position_was_sent = start.was_sent  # --cursor N: the record at N is wanted
        _, conversations, save = ckpt.resume_live(lambda: start.fields(producer), saved)
        try:
            stats = pump(start.tap(source.records(position), source.cursor_including),
                         producer, router=router, topic=topic,
                         checkpoint=save, conversations=conversations,
                         confirm_seconds=confirm_interval, max_posts=max_posts,
                         deadline=deadline, origin=source.checkpoint_key())
        except SourceError as exc:  # a 401 names the variable the token came from
            if not getattr(source, "token_env", None) or CONFIG_TOKEN not in str(exc):
                raise
            raise SourceError(str(exc).replace(CONFIG_TOKEN, f"${source.token_env} (--token-env)")
                              ) from exc
        _summary(kind, stats, producer,
                 stats.position if stats.position is not None else position)
    if source.connections == 0:
        why, where = source.last_error or "no answer", source.checkpoint_key()
        redirected = getattr(source, "redirected_to", None)
        head = f"{kind}: {stats.sent:,} posts sent: the server at {where}"
        if why.startswith("HTTP "):  # it runs and answered: 429/503/5xx to every attempt
            LOG.error(f"{head} answered {why} to every attempt in {duration or 0:g} s; it runs "
                      f"but refused the stream (rate limit or overload): try again later")
        elif redirected:
            why = why.replace(f" after a redirect to {redirected}", "")
            LOG.error(f"{head} redirected to {redirected}, which could not be reached in "
                      f"{duration or 0:g} s ({why}); pass the address that works with --url")
        else:
            LOG.error(f"{head} could not be reached in {duration or 0:g} s ({why}); check the "
                      f"URL and that the server runs")
        return False
    return True
