"""pandas → pandas functions Spark runs in ``mapInPandas``: parse, validate, label.

One output row per input record. Valid posts carry their Post and Labels fields; malformed JSON,
schema violations and oversize texts carry ``dead_reason`` and the raw value instead, so the sink
dead-letters them with topic, partition and offset and nothing is lost.

Extractors are built once per Python worker process (Spark reuses workers across tasks and
micro-batches) and cached by configuration, never per row or per batch.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from polarwatch.config import ExtractorConfig, Topic
from polarwatch.records import Labels, Post, fields_of, validate_post
from scoring.extractors.base import Extractor, PostPair

PROVENANCE_DDL = "kafka_partition int, kafka_offset long, broker_ts timestamp, " \
                 "dead_reason string, raw string"
TEXT_CACHE_SIZE = 200_000  # recent post texts kept per worker to pair replies with parents

_extractors: dict[str, Extractor] = {}
_texts: OrderedDict[str, str] = OrderedDict()


# computed once: fields_of() introspects type hints, not something to redo per micro-batch
POST_FIELDS = [s.name for s in fields_of(Post)]
LABEL_FIELDS = [s.name for s in fields_of(Labels) if s.name != "post_id"]
_KINDS = {s.name: s.kind for s in [*fields_of(Post), *fields_of(Labels)]}
_KINDS.update(dead_reason="string", raw="string")


def output_ddl() -> str:
    """Spark DDL of the labeled stream: Post + Labels (− post_id) + provenance."""
    from polarwatch.records import spark_ddl

    labels = spark_ddl(Labels).split(", ", 1)[1]  # drop `post_id`, which is Post.id
    return f"{spark_ddl(Post)}, {labels}, {PROVENANCE_DDL}"


@dataclass(frozen=True)
class LabelStage:
    """Picklable configuration of the labeling stage (what Spark ships to executors)."""

    backend: str
    fallback: tuple[str, ...]
    topics: tuple[Topic, ...]
    settings: ExtractorConfig = ExtractorConfig()  # cascade and llm options of [extractor]

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
        for i, value in enumerate(pdf["value"].tolist()):
            row: dict[str, Any] = {"raw": None, "dead_reason": None}
            try:
                obj = json.loads(value)
                reason = validate_post(obj)
            except (json.JSONDecodeError, TypeError) as exc:
                obj, reason = None, f"malformed JSON: {exc}"
            if reason is None:
                row.update({k: obj.get(k) for k in POST_FIELDS})
                row["schema_version"] = int(obj.get("schema_version") or 1)
                good.append(i)
            else:
                row["dead_reason"], row["raw"] = reason, value
            rows.append(row)
        pairs = []
        for i in good:
            row = rows[i]
            _remember(row["id"], row["text"])
        for i in good:
            row = rows[i]
            parent_text = None
            if row["parent_id"] is not None:
                parent_text = _texts.get(row["parent_id"], "")  # "" = reply, parent not seen
            pairs.append(PostPair(row["id"], row["text"], row["topic"], parent_text))
        for i, labels in zip(good, self.extract(pairs), strict=True):
            row = rows[i]
            for name in LABEL_FIELDS:  # getattr, not dataclasses.asdict: asdict deep-copies (slow)
                row[name] = getattr(labels, name)
        out = pd.DataFrame(rows, columns=[*POST_FIELDS, *LABEL_FIELDS, "dead_reason", "raw"])
        _coerce_types(out)
        for col in ("kafka_partition", "kafka_offset", "broker_ts"):
            out[col] = pdf[col].to_numpy()
        return out

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
        elif kind == "number":
            out[col] = out[col].astype("float64")
        elif kind == "timestamp":
            out[col] = pd.to_datetime(out[col], utc=True, format="ISO8601")


def _remember(post_id: str, text: str) -> None:
    _texts[post_id] = text
    if len(_texts) > TEXT_CACHE_SIZE:
        _texts.popitem(last=False)
