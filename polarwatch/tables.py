"""The contracts of the warehouse tables that are not a record of :mod:`polarwatch.records`.

One frozen dataclass per table (plus the Kafka provenance that ``posts`` adds to ``Post`` and
``Labels``). :mod:`polarwatch.warehouse` generates every table's DDL from these and from
``records.py`` (:func:`polarwatch.schemas.duckdb_columns`): a field's Python type gives the
DuckDB type (``str`` VARCHAR, ``int`` INTEGER, ``float`` DOUBLE, ``bool`` BOOLEAN, ``datetime``
TIMESTAMPTZ; :data:`BigInt` for BIGINT), ``| None`` makes it nullable, and ``PRIMARY_KEY`` names
the key. Field order is column order: writers that insert positionally rely on it, so a new
field goes at the end, together with a migration in ``polarwatch.migrations.MIGRATIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, ClassVar

BigInt = Annotated[int, "BIGINT"]


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """``schema_version``: one row per migration applied to the file (``polarwatch.migrations.MIGRATIONS``);
    the file's version is the largest."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("version",)

    version: int
    description: str
    applied_at: datetime


@dataclass(frozen=True, slots=True)
class KafkaProvenance:
    """Where a stored post came from (None for a row written outside the stream)."""

    kafka_partition: int | None
    kafka_offset: BigInt | None
    ingested_at: datetime | None


@dataclass(frozen=True, slots=True)
class Relabelling:
    """What ``polarwatch relabel`` records on a stored post it labelled again: the backend and
    head that produced its labels now (``learned:stance_climate@1a2b3c4d5e6f``) and when. Both
    None: the labels are the stream's, from when the post arrived (``backend`` and, for the
    `learned` backend, ``explanation`` name them)."""

    labelled_by: str | None
    relabelled_at: datetime | None


@dataclass(frozen=True, slots=True)
class TopicWindow:
    """``topic_windows``: one row per topic and window, written by ``stream/windows.py``."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("topic", "window_start")

    topic: str
    window_start: datetime
    window_end: datetime
    volume: int
    n_interactions: int
    mean_score: float | None
    n_conversations: int
    extreme_share: float | None
    hostility_share: float | None
    pro_share: float | None
    anti_share: float | None
    cross_stance_rate: float | None  # share of scored replies opposing their parent
    esteban_ray: float | None  # scoring.indices.esteban_ray of the stance shares
    bimodality: float | None  # Sarle's coefficient of the window's conversation scores
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class StreamBatch:
    """``stream_batches``: one row per committed micro-batch (the exactly-once marker)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("query", "batch_id")

    query: str
    batch_id: BigInt
    n_posts: int
    n_dead: int
    n_interactions: int
    committed_at: datetime
    n_late: int | None  # posts in a window ended before the watermark: stored, window not reopened
    # end-to-end latency at commit: now − created_at (the post) and now − broker timestamp
    latency_created_p50_s: float | None
    latency_created_p95_s: float | None
    latency_broker_p50_s: float | None
    latency_broker_p95_s: float | None


@dataclass(frozen=True, slots=True)
class StreamMetric:
    """``stream_metrics``: Spark's progress per micro-batch (``stream/metrics.py``)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("query", "batch_id")

    query: str
    batch_id: BigInt
    input_rows: BigInt
    input_rows_per_s: float | None
    processed_rows_per_s: float | None
    batch_ms: BigInt | None
    lag_total: BigInt | None
    lag_by_partition: str | None  # JSON {partition: lag}
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """``dead_letters``: every rejected record, from ingest (drained from the dead-letter
    topic: ``source_topic`` is that topic) and from the stream (the posts topic). ``raw`` is cut
    to ``records.MAX_DEAD_LETTER_BYTES``; ``raw_size`` is the original size in bytes."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("source_topic", "topic_generation",
                                              "kafka_partition", "kafka_offset")

    source_topic: str
    kafka_partition: int
    kafka_offset: BigInt
    reason: str
    raw: str | None
    seen_at: datetime  # when the warehouse stored it
    source: str | None  # "ingest" (producer) | "stream" (the stream's parser)
    raw_size: BigInt | None
    rejected_at: datetime | None  # when it was rejected (the dead letter's broker time)
    # ingest's identity of the record (source, position, bytes; records.DEAD_LETTER_KEY_HEADER):
    # one row per key. NULL for the stream's rejects and dead letters sent without one
    dead_letter_key: str | None
    # which life of `source_topic` the offset belongs to: 0, then one more each time the drain
    # finds the topic begun again (a memory broker restarted: offsets count from 0 again;
    # stream/topic_generation.py). The stream's own rejects are 0.
    topic_generation: Annotated[int, "INTEGER DEFAULT 0"]


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """``forecasts``: one row per topic, metric and window (observed, or ``flag = 'forecast'``
    for the horizon), written by ``forecast/run.py``. forecast/lower/upper are the chosen
    model's one-step band, except on an alarm or routine-burst row: there they are the
    detector's expected value and band at its alarm threshold, and ``model`` is
    ``detector: <test>`` (``forecast/alarms.py``)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("topic", "metric", "ts")

    topic: str
    metric: str
    ts: datetime
    y: float | None  # None on the horizon's rows
    forecast: float | None
    lower: float | None
    upper: float | None
    flag: str  # none | spike | dip | reactive | anticipatory | forecast
    model: str
    created_at: datetime
    anomaly_score: float | None  # the causal detector's 0..1 score
    explanation: str | None  # why a flag has its class
    episode: int | None  # the detector's episode id (forecast.alarms)
    episode_event: str | None  # "open" | "resolve" | "routine" (past its limit, not flagged) | None


@dataclass(frozen=True, slots=True)
class AlertState:
    """``alert_state``: every alert ever raised and which of its messages were sent
    (``forecast/alerts/state.py``). ``flag`` is the episode's class now, ``labels`` those of
    its latest firing message (an escalation sends a new one)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("fingerprint", "starts_at")

    fingerprint: str
    starts_at: datetime
    topic: str
    metric: str
    flag: str
    labels: str  # JSON
    annotations: str  # JSON
    ends_at: datetime | None  # set when the episode resolved
    firing_sent: bool
    resolved_sent: bool
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AlertDelivery:
    """``alert_deliveries``: one row per webhook POST attempt (``forecast/alerts/webhooks.py``)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("webhook_id", "attempt")

    endpoint: str
    fingerprint: str
    state: str  # firing | resolved
    starts_at: datetime
    webhook_id: str
    attempt: int
    status_code: int | None
    error: str | None
    outcome: str  # delivered | retry | failed
    attempted_at: datetime


@dataclass(frozen=True, slots=True)
class AnalystLabel:
    """``labels``: one analyst's verdict on one task of one post, written by the dashboard's
    Label page (``dashboard/label_store.py``), the only table the dashboard writes. A later
    click by the same labeller on the same task replaces the row (a correction)."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("platform", "post_id", "task", "labeller")

    platform: str  # posts are keyed by (platform, id)
    post_id: str
    topic: str
    task: str  # stance | affect | agreement (records.LABEL_TASKS)
    value: str  # one of records.STANCES / AFFECTS / AGREEMENTS for the task
    sample: str  # random (counts towards the unbiased accuracy) | informative (low confidence)
    model_value: str | None  # the model's label for the task when the post was shown
    model_confidence: float | None
    labeller: str
    labelled_at: datetime
    # a stance label's sides: the topic's pro and anti descriptions (topics.toml) the Label page
    # showed when it was given; a retrain flips a label given under today's sides swapped and
    # leaves out one given under other sides (polarwatch.reads). NULL for the other tasks and
    # on labels from before migration 11 (taken as given under today's sides).
    pro_description: str | None = None
    anti_description: str | None = None


@dataclass(frozen=True, slots=True)
class LabelSuggestion:
    """``label_suggestions``: what the LLM suggested for one task of one post when an analyst
    asked for it on the Label page (``dashboard/label_store.py`` writes it). Never an
    analyst's label: accuracy and retraining read ``labels`` only; this table measures how
    often the LLM agrees with the analysts. Asking again with the same model replaces the row."""

    PRIMARY_KEY: ClassVar[tuple[str, ...]] = ("platform", "post_id", "task", "model")

    platform: str
    post_id: str
    topic: str
    task: str  # stance | affect | agreement (records.LABEL_TASKS)
    value: str  # the LLM's label, one of the task's values
    model: str  # the model the server answered with ([extractor] llm_model)
    prompt_version: str  # scoring.extractors.llm_http.PROMPT_VERSION
    explanation: str | None  # the LLM's reason, as it wrote it (shown as text)
    asked_by: str  # the analyst who asked
    suggested_at: datetime
