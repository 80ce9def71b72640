"""pandas → pandas functions Spark runs in ``mapInPandas``: parse, validate, label.

One output row per input record. Valid posts carry their Post and Labels fields. Anything the
record contract (:mod:`polarwatch.records`) rejects — malformed or deeply nested JSON, oversize
records, fields outside their domain, a ``created_at`` later than the record's broker time plus
``[ingest] max_future_skew_hours`` — carries ``dead_reason`` and the raw value (cut to
MAX_DEAD_LETTER_BYTES, with ``raw_size`` the original size) instead, so the sink dead-letters it
with topic, partition and offset; nothing raises and nothing is lost.

Every post is labelled on its own (stance, affect, emotion): a worker cannot know for sure
whether a reply's parent was seen elsewhere, so a reply's *agreement* with its parent is labelled
once, in the sink, where both posts are stored (:mod:`stream.pairing`).

Extractors are built once per Python worker process (Spark reuses workers across tasks and
micro-batches) and cached by configuration, never per row or per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from polarwatch.config import ExtractorConfig, Topic
from polarwatch.records import DEFAULT_MAX_FUTURE_SKEW, MAX_DEAD_LETTER_BYTES, Labels, Post
from polarwatch.schemas import fields_of
from polarwatch.validation import (
    cut_reason,
    parent_of,
    parse_created_at,
    parse_record,
    raw_size,
    validate_post,
)
from scoring.extractors.base import Extractor, PostPair

PROVENANCE_DDL = "kafka_partition int, kafka_offset long, broker_ts timestamp, " \
                 "dead_reason string, raw string, raw_size long"

_extractors: dict[str, Extractor] = {}


# computed once: fields_of() introspects type hints, not something to redo per micro-batch
POST_FIELDS = [s.name for s in fields_of(Post)]
LABEL_FIELDS = [s.name for s in fields_of(Labels) if s.name != "post_id"]
_KINDS = {s.name: s.kind for s in [*fields_of(Post), *fields_of(Labels)]}
_KINDS.update(dead_reason="string", raw="string", raw_size="long")


def output_ddl() -> str:
    """Spark DDL of the labeled stream: Post + Labels (− post_id) + provenance."""
    from polarwatch.schemas import spark_ddl

    labels = spark_ddl(Labels).split(", ", 1)[1]  # drop `post_id`, which is Post.id
    return f"{spark_ddl(Post)}, {labels}, {PROVENANCE_DDL}"


@dataclass(frozen=True)
class LabelStage:
    """Picklable configuration of the labeling stage (what Spark ships to executors)."""

    backend: str
    fallback: tuple[str, ...]
    topics: tuple[Topic, ...]
    settings: ExtractorConfig = ExtractorConfig()  # cascade and llm options of [extractor]
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW  # [ingest] max_future_skew_hours
    # when the driver built it, i.e. read `topics` (the stream's start): named in the unknown
    # topic reason; not in the repr, which keys the extractor cache
    topics_read_at: datetime = field(default_factory=lambda: datetime.now(UTC), repr=False,
                                     compare=False)

    def extractor(self) -> Extractor:
        """The backend chain, built once per Python worker: a post the main backend fails on
        goes to the next backend (scoring.fallback), each label names its backend, and unsure
        posts go to the cascade backend when ``[extractor] cascade_to`` is set."""
        key = repr(self)
        if key not in _extractors:
            from scoring.fallback import build_from_config

            _extractors[key] = build_from_config(self.settings, self.topics, self.backend,
                                                 self.fallback)
        return _extractors[key]

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for pdf in batches:
            yield self.label_frame(pdf)

    def label_frame(self, pdf: pd.DataFrame) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        good: list[int] = []
        wall = datetime.now(UTC)

        def column(name: str) -> list[Any]:
            return pdf[name].tolist() if name in pdf else [None] * len(pdf)

        for value, stamp, error, size in zip(pdf["value"].tolist(), column("broker_ts"),
                                             column("read_error"), column("value_size"),
                                             strict=True):
            row = self.parse(value, _ingest_clock(stamp, wall), error, size)
            if row["dead_reason"] is None:
                good.append(len(rows))
            rows.append(row)
        # each post on its own: agreement needs the parent and is labelled in the sink
        pairs = [PostPair(rows[i]["id"], rows[i]["text"], rows[i]["topic"]) for i in good]
        for i, labels in zip(good, self.extract(pairs), strict=True):
            row = rows[i]
            for name in LABEL_FIELDS:  # getattr, not dataclasses.asdict: asdict deep-copies (slow)
                row[name] = getattr(labels, name)
        out = pd.DataFrame(rows, columns=[*POST_FIELDS, *LABEL_FIELDS, "dead_reason", "raw",
                                          "raw_size"])
        _coerce_types(out)
        for col in ("kafka_partition", "kafka_offset", "broker_ts"):
            out[col] = pdf[col].to_numpy()
        return out

    def parse(self, value: Any, now: datetime, read_error: str | None = None,
              size: int | None = None) -> dict[str, Any]:
        """One Kafka value → a row with the Post fields, or with ``dead_reason``, ``raw`` and
        ``raw_size``. `now` is the ingest clock ``created_at`` is checked against;
        `read_error` is the source's reason the value could not be read whole (then `value` is
        what it kept and `size` the real size)."""
        row: dict[str, Any] = {"raw": None, "dead_reason": None, "raw_size": None}
        if not isinstance(value, str | bytes):
            value = "" if value is None else str(value)
        obj: Any = None
        reason = read_error if isinstance(read_error, str) and read_error else None  # NaN: none
        if reason is None:
            obj, reason = parse_record(value)
        if reason is None:
            reason = validate_post(obj, now, self.max_future_skew)
        if reason is None:
            reason = self.unknown_topic(obj["topic"])
        if reason is not None:
            raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            row["dead_reason"] = cut_reason(reason)
            row["raw_size"] = raw_size(raw) if size is None or pd.isna(size) else int(size)
            row["raw"] = raw[:MAX_DEAD_LETTER_BYTES].decode("utf-8", "replace")
            return row
        row.update({k: obj.get(k) for k in POST_FIELDS})
        row["parent_id"] = parent_of(obj)  # "" or its own id: a root, never paired with itself
        row["created_at"] = parse_created_at(obj["created_at"], now, self.max_future_skew)[0]
        row["schema_version"] = int(obj.get("schema_version") or 1)
        return row

    def unknown_topic(self, topic: str) -> str | None:
        """A post's topic must be one of topics.toml's: an id from the wire never creates a
        topic (a dashboard card, a model fit, a report chart, a title rendered from it). The
        topics are the ones read when the stream started (reloading them between micro-batches
        would mean new extractors and stance heads on every worker mid-stream), so the reason
        says when, and what to do if the topic was added since."""
        known = [t.id for t in self.topics]
        if topic in known:
            return None
        shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
        return (f"topic {topic[:80]!r} is not in topics.toml as this stream read it when it "
                f"started ({self.topics_read_at:%Y-%m-%d %H:%M} UTC); if it was added since, "
                f"restart the stream and send these posts again (`polarwatch ingest file FILE "
                f"--restart`); else add a [[topic]] with that id to topics.toml, or assign "
                f"posts a known topic with `ingest file --topic ID` (known: {shown})")

    def extract(self, pairs: Sequence[PostPair]) -> list[Labels]:
        return self.extractor().extract(pairs) if pairs else []


def _coerce_types(out: pd.DataFrame) -> None:
    """Give every column the dtype its Spark type needs, even when it is all null (pandas would
    otherwise infer float64 for an all-None column and Arrow would refuse it as a string)."""
    for col in out.columns:
        kind = _KINDS.get(col)
        if kind == "string":
            out[col] = out[col].astype(object).where(out[col].notna(), None)
        elif kind == "integer":
            out[col] = out[col].astype("Int32")
        elif kind == "long":
            out[col] = out[col].astype("Int64")
        elif kind == "number":
            out[col] = out[col].astype("float64")
        elif kind == "timestamp":  # datetimes parsed by the record contract, or None
            out[col] = pd.to_datetime(out[col], utc=True)


def _ingest_clock(stamp: Any, wall: datetime) -> datetime:
    """The time a record was ingested: its broker timestamp, never later than the wall clock
    (a client may set any timestamp); the wall clock when there is none."""
    if stamp is None or pd.isna(stamp):
        return wall
    ts = pd.Timestamp(stamp)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts
    return min(ts.to_pydatetime(), wall)

