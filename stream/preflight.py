"""What ``polarwatch stream`` checks before Spark starts: that a Kafka broker answers at
``[broker] bootstrap_servers`` (:func:`polarwatch.broker_probe.require_broker`), and that the
broker still holds what the checkpoint says the stream has read (:func:`check_offsets`).

Without the first a stream with no broker took minutes to fail (Spark's start, then every
supervised restart of stream/supervise.py timing out on the broker); a TCP connect says the same
in seconds. Without the second a broker restarted with memory storage (it lost its messages)
failed the query's first batch with ~35 lines of Spark ERROR, Python and Java traces before the
one-line cause. Both check only the start: a broker that goes away or is reset later is the
supervisor's (stream/kafka_source.py refuses the regression; the supervisor says it in one line).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from polarwatch.broker_probe import CONNECT_TIMEOUT_S, require_broker
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from stream.supervise import StreamError

LOG = logging.getLogger(__name__)


def check_lake(cfg: Config) -> None:
    """``[warehouse] lake_dir`` must be a directory (or not exist yet): a file there failed the
    first micro-batch after Spark's start (``FileExistsError: [Errno 17] File exists``, naming
    neither the key nor the fix)."""
    lake = cfg.path(cfg.warehouse.lake_dir) if cfg.warehouse.lake_dir else None
    if lake is not None and lake.exists() and not lake.is_dir():
        raise ConfigError(f"[warehouse] lake_dir (env POLARWATCH_WAREHOUSE_LAKE_DIR) is {lake}, "
                          f"which is a file: the Parquet lake is a directory; point the key at "
                          f"one (a missing one is created), or set it to \"\" for no lake")


def check_broker(cfg: Config, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:func:`require_broker` for ``[broker]``."""
    require_broker(cfg.broker.bootstrap_servers, embedded=cfg.broker.embedded, timeout=timeout)


def checkpoint_offsets(checkpoint: Path) -> dict[str, int] | None:
    """The posts topic's offsets (``{"<partition>": next offset}``) of the last micro-batch
    Spark planned in `checkpoint` (``offsets/<batch id>``: a version line, the batch's metadata,
    then the source's offsets); None when there is none or it cannot be read as such."""
    folder = checkpoint / "offsets"
    ids = [int(f.name) for f in folder.iterdir() if f.name.isdigit()] if folder.is_dir() else []
    if not ids:
        return None
    try:
        lines = (folder / str(max(ids))).read_text().splitlines()
        offsets = json.loads(lines[2])
        return {str(p): int(o) for p, o in offsets.items()}
    except (OSError, IndexError, ValueError, AttributeError, TypeError) as exc:
        LOG.debug(f"checkpoint offsets at {folder} not read ({exc}): not compared")
        return None


def check_offsets(cfg: Config, checkpoint: Path) -> None:
    """Raise StreamError (one line) when the broker's posts topic ends before the offsets the
    checkpoint has read: the broker was reset (memory storage restarted) or the topic recreated.
    A checkpoint, broker or topic that cannot be read says nothing here (the query does)."""
    from kafka.errors import KafkaError

    from stream.kafka_source import (
        ONE_BATCH,
        consumer_for,
        latest_offsets,
        regressed,
        regression_message,
    )
    from stream.topic_generation import begun_again_message

    read = checkpoint_offsets(checkpoint)
    if not read or not any(read.values()):
        return
    topic = cfg.topics.posts
    try:
        consumer = consumer_for(cfg.broker.bootstrap_servers, cfg.kafka_options(),
                                fetch_bytes=ONE_BATCH)
    except (KafkaError, OSError) as exc:
        LOG.debug(f"checkpoint offsets not compared with the broker's: {exc}")
        return
    try:
        ends = latest_offsets(consumer, topic) if consumer.partitions_for_topic(topic) else {}
        detail = regressed(read, ends)
        if detail:
            raise StreamError(regression_message(topic, detail, not ends, str(checkpoint)))
        other = _other_life(cfg, consumer, checkpoint)
    except (KafkaError, OSError, RuntimeError) as exc:
        LOG.debug(f"checkpoint offsets not compared with the broker's: {exc}")
        return
    finally:
        consumer.close()
    if other:
        raise StreamError(begun_again_message(topic, other, checkpoint))


def _other_life(cfg: Config, consumer: Any, checkpoint: Path) -> str | None:
    """:func:`stream.topic_generation.posts_begun_again` on the checkpoint's last posts."""
    from stream.topic_generation import load_last_read, posts_begun_again

    marks = load_last_read(checkpoint, cfg.topics.posts)
    return posts_begun_again(consumer, cfg.topics.posts, marks) if marks else None


def check_backend(cfg: Config, backend: str | None = None) -> None:
    """The `learned` backend's files, checked on the driver before Spark starts when the run
    may use it (main backend, fallback or cascade): its head files load (one damaged, e.g. cut
    short by a killed `train`, was found only inside Spark's Python workers: ~190 lines of
    traces) and its encoder's cache directory can be written (a read-only HOME: ~500 lines).
    Raises the backend's one-line BackendError."""
    ext = cfg.extractor_settings  # the topic heads directory as the workers resolve it
    if "learned" not in {backend or ext.backend, *ext.fallback, ext.cascade_to}:
        return
    from scoring.extractors.learned import HEADS_DIR, load_heads
    from scoring.extractors.onnx_runtime import cache_dir, check_cache_dir, onnx_available

    topic_heads = ext.learned_topic_heads_dir
    load_heads(HEADS_DIR, Path(topic_heads) if topic_heads else None)
    if onnx_available():
        check_cache_dir(cache_dir())
