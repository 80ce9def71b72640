"""Configuration on pydantic-settings: ``polarwatch.toml`` + the environment (``topics.toml`` is
read by :mod:`polarwatch.topics`; ``Topic`` and ``load_topics`` are re-exported here).

Every key ``[section] key`` has one environment variable, ``POLARWATCH_<SECTION>_<KEY>``, which
wins over the file (lists: comma-separated); ``$POLARWATCH_CONFIG`` names the file. Relative
paths resolve against the file's directory. Durations have one grammar
(:func:`polarwatch.fields.parse_duration`; the keys' value types are in :mod:`polarwatch.fields`).
Secrets are ``SecretStr`` (``**********`` in repr and logs; readers call
``.get_secret_value()``). Unknown sections and keys in the file, unknown keys of a section in
the environment and renamed variables are errors (:mod:`polarwatch.config_errors`): one-line
``ConfigError``s naming the key, the file (or variable) and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from polarwatch.config_errors import ENV_PREFIX, describe, renamed_env, unknown_env
from polarwatch.errors import ConfigError
from polarwatch.fields import (
    DEFAULT_WEBHOOK_FORMAT,
    AssistSeconds,
    Attempts,
    Backend,
    BackoffSeconds,
    Bool,
    CascadeTo,
    Duration,
    ForecastMetric,
    FutureSkewHours,
    Horizon,
    KafkaTopic,
    KeepDays,
    NonNegativeFloat,
    NonNegativeInt,
    Partitions,
    PositiveInt,
    PruneEverySeconds,
    ResponseFormat,
    RetentionHours,
    SaslMechanism,
    Score,
    SecurityProtocol,
    Share,
    Storage,
    StrList,
    TimeoutSeconds,
    TomlText,
    TriggerSeconds,
    WebhookFormat,
    toml_number,
)
from polarwatch.topics import Topic, load_topics, read_toml  # Topic, load_topics: re-exported

CONFIG_ENV = "POLARWATCH_CONFIG"
# ------------------------------------------------------------------------------ sections


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BrokerConfig(_Section):
    bootstrap_servers: str = "127.0.0.1:19092"
    embedded: Bool = True
    state_dir: str = ".polarwatch/broker"
    storage: Storage = "memory"  # embedded broker: "memory" or "s3" (survives broker restarts)
    # Retention of the embedded broker's topics (ingest/broker.py prunes): records older than
    # this many hours (0 = keep everything) ...
    retention_hours: RetentionHours = 168.0
    # ... and beyond this many MB per partition (0 = no limit) may be removed, once consumed.
    retention_mb: NonNegativeInt = 1024
    # ... and beyond this many record batches per partition (0 = no limit): Tansu's s3 storage
    # keeps one object per batch and its fetches stall past ~1,000-2,000 objects per partition
    retention_batches: NonNegativeInt = 500
    # `broker start` with s3 storage runs `broker prune --every` this often (0 = never)
    prune_every_s: PruneEverySeconds = 60.0
    # A secured Kafka (managed services want SASL_SSL): every client polarwatch opens (producer,
    # stream source, dead-letter drain, offset commits, topic creation) uses these.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")  # set POLARWATCH_BROKER_SASL_PASSWORD
    ssl_cafile: str = ""  # PEM bundle of the CA that signed the brokers' certificates ("" = system)

    @model_validator(mode="after")
    def _secured(self) -> BrokerConfig:
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username "
                             f"(and sasl_password, from $POLARWATCH_BROKER_SASL_PASSWORD)")
        if self.embedded and self.security_protocol != "PLAINTEXT":
            raise ValueError(f"the embedded broker speaks PLAINTEXT only; security_protocol "
                             f"{self.security_protocol} needs embedded = false and a Kafka "
                             f"that offers it")
        return self


class TopicsConfig(_Section):
    posts: KafkaTopic = "polarwatch.posts"
    dead_letter: KafkaTopic = "polarwatch.dead_letter"
    partitions: Partitions = 2  # each topic's, when polarwatch creates it (MAX_PARTITIONS)


class SparkConfig(_Section):
    master: str = "local[2]"
    checkpoint_dir: str = ".polarwatch/checkpoints"
    trigger_seconds: TriggerSeconds = 2.0
    max_records_per_trigger: PositiveInt = 10000


class IngestConfig(_Section):
    # created_at later than the ingest clock + this is dead-lettered (ingest and stream)
    max_future_skew_hours: FutureSkewHours = 24.0
    mastodon_token: SecretStr = SecretStr("")  # access token for `ingest mastodon` ("" = none)


class WarehouseConfig(_Section):
    path: str = ".polarwatch/polarwatch.duckdb"
    lake_dir: str = ".polarwatch/lake"  # Parquet copy of scored posts ("" disables)
    # Retention: posts and interactions older than the newest post's created_at minus this many
    # days, and dead letters stored longer ago than this, are deleted (0 = keep everything).
    keep_days: KeepDays = 0.0


class ExtractorConfig(_Section):
    backend: Backend = "learned"  # learned needs the `learned` extra (make installs it)
    fallback: StrList = Field(default_factory=lambda: ["lexicon"])
    topics_file: str = "topics.toml"
    cascade_to: CascadeTo = ""  # e.g. "llm": posts the main backend is unsure of go there ("" = off)
    cascade_threshold: NonNegativeFloat = 0.6  # above 1: every post is escalated  # escalate when min(stance, affect, agreement conf) is below
    llm_calls_per_minute: PositiveInt = 60  # cascade budget: at most this many escalated posts a minute
    llm_base_url: str = ""  # the llm backend's OpenAI-compatible server ("" = its default)
    llm_model: str = ""  # model name sent to that server ("" = its default)
    llm_api_key: SecretStr = SecretStr("")  # sent as a Bearer token ("" = none)
    # how the llm backend asks for JSON: json_object_schema (llama.cpp), json_schema (OpenAI,
    # vLLM) or none (servers without JSON mode, e.g. `transformers serve`; "" = the default)
    llm_response_format: ResponseFormat = ""
    transformers_model: str = ""  # transformers backend: a model folder, .gguf file or hub id
    transformers_gguf_file: str = ""  # the .gguf file inside that folder, if any
    # learned backend: topic stance heads written by `train --from-warehouse`
    # (stance_<topic>.npz); they serve their topic ahead of the shipped heads ("" = none)
    learned_topic_heads_dir: str = ".polarwatch/heads"

    def backend_options(self) -> dict[str, dict[str, str]]:
        """Per-backend keyword options set in this section (the llm server, model, key, JSON
        mode; the transformers model). The api key is revealed here, for the backend only: do
        not log the result."""
        options = {"llm": {"base_url": self.llm_base_url, "model": self.llm_model,
                           "api_key": self.llm_api_key.get_secret_value(),
                           "response_format": self.llm_response_format},
                   "transformers": {"model_path": self.transformers_model,
                                    "gguf_file": self.transformers_gguf_file},
                   "learned": {"topic_heads_dir": self.learned_topic_heads_dir}}
        return {name: {k: v for k, v in opts.items() if v}
                for name, opts in options.items() if any(opts.values())}


# The paper: a conversation whose mean interaction score is above 7 is "extreme".
DEFAULT_EXTREME_THRESHOLD = 7.0


class AggregateConfig(_Section):
    window: Duration = "1 hour"
    extreme_threshold: Score = DEFAULT_EXTREME_THRESHOLD
    watermark: Duration = "1 day"  # windows older than (latest event time − watermark) are final
    orphan_horizon: Duration = "1 day"  # a reply whose parent is missing this long is an orphan


class ForecastConfig(_Section):
    metric: ForecastMetric = "mean_score"
    horizon: Horizon = 12  # at most MAX_HORIZON
    alpha: Annotated[float, BeforeValidator(toml_number), Field(gt=0, lt=1)] = 0.05
    min_volume: NonNegativeInt = 10  # windows with fewer posts/interactions neither raise nor resolve flags
    # the detector's pattern test (forecast/patterns.py: a sequence memory); on: it beat the
    # detector without it on NAB's real series (benchmarks/README.md, "Sequence memory")
    patterns: Bool = True
    # a burst at a time of day that burst on 2 of the last 3 days does not alarm
    # (forecast/routine.py; benchmarks/README.md, "Routine exceedances")
    routine: Bool = True
    # subtract the residual usual at this hour of the week, learned from earlier weeks
    # (forecast/weekly.py; benchmarks/README.md, "Time-of-week bias")
    weekly: Bool = True


class DashboardConfig(_Section):
    address: str = "127.0.0.1"  # interface the server binds ("0.0.0.0" exposes it: opt in)
    edit_events: Bool = False  # the Events page may write events.toml (reading stays open)
    # the Label page may write analysts' labels to the `labels` table (from the ?token= link)
    allow_labels: Bool = False
    # share of the posts the Label page shows that are drawn at random (the unbiased accuracy
    # estimate); the rest are the model's least confident posts (they teach the most)
    label_random_share: Share = 0.3
    # a topic's stance accuracy below this (on its random labels) marks its scores unreliable
    min_stance_accuracy: Share = 0.6
    # random stance labels a topic needs before its accuracy counts as measured ("validated")
    min_validation_labels: PositiveInt = 30
    # the Label page's "Ask the LLM" (when [extractor] names the llm backend or sets
    # llm_base_url) waits at most this many seconds for the server's answer; 0 = no button
    llm_assist_seconds: AssistSeconds = 20.0
    # Host names the server answers besides the bound address and its own names (a reverse
    # proxy's name); any other Host header is refused, which stops DNS rebinding
    allowed_hosts: StrList = Field(default_factory=list)
    # `polarwatch dashboard` readers work on a copy of the DuckDB file at most this many seconds
    # old: the writer waits for one file copy per period, not for every query (0 = the live file)
    snapshot_seconds: NonNegativeFloat = 5.0


class AlertsConfig(_Section):
    webhooks: StrList = Field(default_factory=list)
    secret: SecretStr = SecretStr("")  # whsec_<base64> signing key ("" = unsigned)
    format: WebhookFormat = DEFAULT_WEBHOOK_FORMAT  # payload: "standard" ({type, timestamp, data}) or "alertmanager"
    # Delivery retries (forecast/alerts/webhooks.py RetryPolicy): 2, 4, ... 64 s then 120 s: 12
    # attempts span 12 minutes of receiver downtime (the issue asks for at least 10).
    max_attempts: Attempts = 12  # at most MAX_ATTEMPTS
    backoff_seconds: BackoffSeconds = 2.0
    max_backoff_seconds: BackoffSeconds = 120.0
    timeout_seconds: TimeoutSeconds = 10.0


class Config(BaseSettings):
    """The whole configuration. ``Config(...)`` alone is the defaults plus what it is given;
    ``load_config`` adds the file and the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="_", env_nested_max_split=1,
        enable_decoding=False,  # lists are comma-separated, not JSON
        frozen=True, extra="forbid")

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    warehouse: WarehouseConfig = Field(default_factory=WarehouseConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    extractor: ExtractorConfig = Field(default_factory=ExtractorConfig)
    aggregate: AggregateConfig = Field(default_factory=AggregateConfig)
    forecast: ForecastConfig = Field(default_factory=ForecastConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    root: Path = Field(default_factory=Path.cwd)  # directory relative paths resolve against
    file: Path | None = None  # the config file this was loaded from (None: defaults only)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: Any, *_: Any, **__: Any) -> tuple[Any, ...]:
        # Only what the caller passes: load_config reads the file and the environment it is
        # given, so Config() never picks up the process environment behind a test's back.
        return (init_settings,)

    def path(self, value: str) -> Path:
        """Resolve a configured path against the config file's directory."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.root / p

    @property
    def warehouse_path(self) -> Path:
        return self.path(self.warehouse.path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path(self.spark.checkpoint_dir)

    @property
    def extractor_settings(self) -> ExtractorConfig:
        """``[extractor]`` with its paths resolved against the config file's directory (what
        the backends get: a relative heads directory means the same wherever they run)."""
        heads = self.extractor.learned_topic_heads_dir
        return self.extractor.model_copy(
            update={"learned_topic_heads_dir": str(self.path(heads)) if heads else ""})

    def load_topics(self) -> list[Topic]:
        return load_topics(self.path(self.extractor.topics_file))

    def topic(self, topic_id: str) -> Topic:
        """The topic with this id (``--topic``), or a ConfigError listing the known ids."""
        topics = {t.id: t for t in self.load_topics()}
        if topic_id not in topics:
            raise ConfigError(f"--topic {topic_id!r} is not in {self.extractor.topics_file}; "
                              f"known topics are {', '.join(sorted(topics)) or 'none'}")
        return topics[topic_id]

    def kafka_options(self) -> dict[str, Any]:
        """kafka-python keyword arguments for ``[broker]``'s security settings ({} for
        PLAINTEXT). Holds the SASL password: pass it to clients, never log it."""
        b = self.broker
        if b.security_protocol == "PLAINTEXT":
            return {}
        options: dict[str, Any] = {"security_protocol": b.security_protocol}
        if b.security_protocol.endswith("SSL"):
            options["ssl_check_hostname"] = True
            if b.ssl_cafile:
                options["ssl_cafile"] = str(self.path(b.ssl_cafile))
        if b.security_protocol.startswith("SASL"):
            options.update(sasl_mechanism=b.sasl_mechanism, sasl_plain_username=b.sasl_username,
                           sasl_plain_password=b.sasl_password.get_secret_value())
        return options

    def child_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a polarwatch child process: ``base`` (this process's environment)
        with ``$POLARWATCH_CONFIG`` naming the file this config was loaded from (a config built
        without one names the root's ``polarwatch.toml`` unless ``base`` names a file)."""
        env = dict(os.environ if base is None else base)
        if self.file is not None:  # the file this process read (--config wins over the env)
            env[CONFIG_ENV] = str(self.file)
        elif (self.root / "polarwatch.toml").exists():
            env.setdefault(CONFIG_ENV, str(self.root / "polarwatch.toml"))
        return env


SECTIONS: dict[str, type[_Section]] = {
    name: info.default_factory  # type: ignore[misc]
    for name, info in Config.model_fields.items() if name not in ("root", "file")}

# ------------------------------------------------------------------------------ loading


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source (prefix, ``_`` between section and key, case
    insensitive) over a given mapping instead of ``os.environ``."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(Config)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._env.items()}


def default_config_path() -> Path | None:
    """$POLARWATCH_CONFIG, else ./polarwatch.toml if it exists."""
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    local = Path.cwd() / "polarwatch.toml"
    return local if local.exists() else None


def _read_file(cfg_path: Path) -> dict[str, Any]:
    raw = read_toml(cfg_path, f"config file {cfg_path} does not exist (set ${CONFIG_ENV} or "
                              f"pass --config)",
                    f"name the config file (--config or ${CONFIG_ENV})")
    unknown = set(raw) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"{cfg_path}: unknown section(s) {sorted(unknown)}; valid sections "
                          f"are {sorted(SECTIONS)}")
    for name, section in raw.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{cfg_path}: [{name}] must be a table")
    return raw


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Load the config file (or defaults when there is none) and apply env overrides."""
    env = dict(os.environ if env is None else env)
    for mistake in (renamed_env(env), unknown_env(env, SECTIONS)):
        if mistake is not None:
            raise ConfigError(mistake)
    cfg_path = Path(path) if path is not None else default_config_path()
    raw = _read_file(cfg_path) if cfg_path is not None else {}
    source = str(cfg_path) if cfg_path is not None else "<defaults>"
    root = cfg_path.resolve().parent if cfg_path is not None else Path.cwd()
    # the file's strings are marked: a boolean or number key refuses them (not the env's text)
    values: dict[str, Any] = {name: {k: TomlText(v) if isinstance(v, str) else v
                                     for k, v in raw.get(name, {}).items()} for name in SECTIONS}
    from_env = set()
    for section, overrides in _EnvSource(env)().items():
        if section not in SECTIONS or not isinstance(overrides, dict):
            continue  # POLARWATCH_CONFIG, POLARWATCH_EVENTS_FILE, ...: not a [section] key
        for key, value in overrides.items():
            if key in SECTIONS[section].model_fields:  # the others: NOT_SETTINGS_ENV
                values[section][key] = value
                from_env.add((section, key))
    try:
        return Config(root=root, file=cfg_path.resolve() if cfg_path is not None else None,
                      **values)
    except ValidationError as exc:
        raise ConfigError(describe(exc.errors(), source, from_env, SECTIONS)) from None
