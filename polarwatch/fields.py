"""The value types of the configuration's keys (:mod:`polarwatch.config`): the one duration
grammar (``parse_duration``), booleans and finite numbers that refuse the file's strings
(numbers its booleans too), interaction scores, Kafka topic names, comma-separated lists, and
the enumerated keys. Pydantic reports a value outside its type with the words given here."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from polarwatch.errors import ConfigError

_SECONDS_PER_UNIT = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
    **dict.fromkeys(("w", "week", "weeks"), 7 * 86400),
}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
DURATION_HELP = ("a positive duration like 30m, 1h or 7d, or '5 minutes', '1 hour', '1.5 days' "
                 "(<number>[ ]<unit>, unit one of s/sec/second(s), m/min/minute(s), "
                 "h/hr/hour(s), d/day(s), w/week(s))")


def _seconds(text: str) -> float | None:
    """The seconds ``<number>[ ]<unit>`` says, or None when `text` is not in the grammar."""
    m = _DURATION_RE.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    seconds = _SECONDS_PER_UNIT.get(m.group(2)) if m else None
    return None if m is None or seconds is None else float(m.group(1)) * seconds


def parse_duration(text: str) -> timedelta:
    """The one duration grammar: ``<number>[ ]<unit>``, e.g. ``30m``, ``1 hour``, ``1.5d``.

    Raises ConfigError (saying what is accepted) for anything else, for zero (also a value
    under timedelta's microsecond, ``0.0000001s``, which was taken as 0), and past timedelta's
    range (about 2.7 million years).
    """
    seconds = _seconds(text)
    if seconds is not None and seconds > 0:
        try:
            span = timedelta(seconds=seconds)
        except OverflowError:
            pass
        else:
            if span:  # under a microsecond is 0 to timedelta: refused as 0 is
                return span
    raise ConfigError(f"expected {DURATION_HELP}, got {text!r}")


# The time keys' upper bounds. pandas holds dates only up to 2262-04-11 (and time spans up to
# ~292 years), a socket timeout overflows past ~9.2e9 s: with no bound a large value crashed
# `ingest file`, `stream`, `forecast` and `broker prune` in datetime arithmetic, or stored posts
# dated 2262 that no forecast could read (audit finding 5). Ten years is far beyond any use.
MAX_DURATION = timedelta(days=3650)
MAX_SKEW_HOURS = 87_600  # [ingest] max_future_skew_hours, [broker] retention_hours: 10 years
MAX_KEEP_DAYS = 3_650  # [warehouse] keep_days: 10 years
MAX_DURATION_HELP = ("of at most 3650 days (10 years: pandas, which reads the windows, holds dates "
                     "only up to 2262-04-11, and longer spans overflow the time arithmetic)")


def under_a_microsecond(text: str) -> bool:
    """Whether `text` is a positive duration in the grammar that timedelta holds as 0
    (``0.0000001s``): :func:`parse_duration` refuses it as it refuses 0."""
    seconds = _seconds(text)
    return seconds is not None and 0 < seconds < 1e-6


def duration_text(text: str) -> str:
    """A valid duration of at most MAX_DURATION, spelled ``<whole number> <unit>`` (``90m`` ->
    ``90 minutes``) so that DuckDB intervals, Spark and pandas read it too."""
    try:
        span = parse_duration(text)
    except ConfigError:
        raise PydanticCustomError("duration", DURATION_HELP) from None
    if span > MAX_DURATION:
        raise PydanticCustomError("duration_too_long", f"a duration {MAX_DURATION_HELP}")
    seconds = span.total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{seconds:.6f}".rstrip("0") + " seconds"  # never 1e-05: parse_duration reads it


class TomlText(str):
    """A string as the config file spelled it (``load_config`` marks the file's strings). Where
    a boolean or a number is expected it is refused, like ``bootstrap_servers = 5`` is; an
    environment variable's text (a plain ``str``: variables hold nothing else) is parsed."""


def toml_number(value: Any) -> Any:
    # TOML true is not a number (pydantic would take it as 1), nor is "5" (it would take 5)
    if isinstance(value, (bool, TomlText)):
        raise PydanticCustomError("number", "a number")
    return value


def toml_bool(value: Any) -> Any:
    if isinstance(value, TomlText):  # "yes" and "false" are strings in TOML: write true/false
        raise PydanticCustomError("boolean", "true/false")
    return value


# The paper's interaction scores run from 0 to 10 (scoring/rules.py): a threshold outside
# that range would make every conversation extreme, or none.
SCORE_RANGE = (0.0, 10.0)
SCORE_HELP = "a number from 0 to 10 (interaction scores run from 0 to 10)"


def score_value(value: float) -> float:
    if not SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
        raise PydanticCustomError("score", SCORE_HELP)
    return value


# Kafka's rule for a topic name (kafka.common.internals.Topic.validate): 1-249 characters of
# ASCII letters, digits, '.', '_' and '-', and not "." or "..".
_KAFKA_TOPIC_RE = re.compile(r"[a-zA-Z0-9._-]{1,249}")
KAFKA_TOPIC_HELP = ("a Kafka topic name: 1-249 characters of letters, digits, '.', '_' and "
                    "'-' (not '.' or '..')")


def kafka_topic(value: str) -> str:
    if not _KAFKA_TOPIC_RE.fullmatch(value) or value in (".", ".."):
        raise PydanticCustomError("kafka_topic", KAFKA_TOPIC_HELP)
    return value


def comma_list(value: Any) -> Any:
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


def at_most(limit: float, why: str) -> AfterValidator:
    """A number key's upper bound; its error says the bound and `why` (one line)."""
    def check(value: float) -> float:
        if value > limit:
            raise PydanticCustomError("too_large", f"a number of at most {limit:,g} ({why})")
        return value
    return AfterValidator(check)


def prune_every(value: float) -> float:
    # `broker start` runs `broker prune --every <value>s`, whose duration has no exponent
    # (1e-05s, 1e+06s were refused there and the pruner died, while the broker said it runs)
    if value != 0 and not 0.001 <= value <= 86_400:
        raise PydanticCustomError("prune_every", "0 (never) or from 0.001 to 86,400 seconds "
                                  "(a day): `broker start` passes it to `broker prune --every`")
    return value


Duration = Annotated[str, AfterValidator(duration_text)]
Bool = Annotated[bool, BeforeValidator(toml_bool)]
Int = Annotated[int, BeforeValidator(toml_number)]
# Floats are finite: TOML's inf and nan (and 1e400) are refused, not compared with a bound
Float = Annotated[float, BeforeValidator(toml_number), Field(allow_inf_nan=False)]
NonNegativeInt = Annotated[int, BeforeValidator(toml_number), Field(ge=0)]
NonNegativeFloat = Annotated[float, BeforeValidator(toml_number), Field(ge=0, allow_inf_nan=False)]
StrList = Annotated[list[str], BeforeValidator(comma_list)]
PositiveInt = Annotated[int, BeforeValidator(toml_number), Field(ge=1)]
Share = Annotated[float, BeforeValidator(toml_number), Field(ge=0, le=1, allow_inf_nan=False)]
PositiveFloat = Annotated[float, BeforeValidator(toml_number), Field(gt=0, allow_inf_nan=False)]
Score = Annotated[float, BeforeValidator(toml_number), Field(allow_inf_nan=False),
                  AfterValidator(score_value)]
KafkaTopic = Annotated[str, AfterValidator(kafka_topic)]
# Time keys with an upper bound (see MAX_DURATION): the bound and why are in the error
TEN_YEARS = "10 years: pandas holds dates only up to 2262-04-11"
FutureSkewHours = Annotated[NonNegativeFloat, at_most(
    MAX_SKEW_HOURS, f"{TEN_YEARS}, and a post may be dated this far after the ingest clock")]
RetentionHours = Annotated[NonNegativeFloat, at_most(MAX_SKEW_HOURS,
                                                     f"{TEN_YEARS}; 0 keeps everything")]
KeepDays = Annotated[NonNegativeFloat, at_most(MAX_KEEP_DAYS, f"{TEN_YEARS}; 0 keeps everything")]
PruneEverySeconds = Annotated[NonNegativeFloat, AfterValidator(prune_every)]
TriggerSeconds = Annotated[PositiveFloat, at_most(
    86_400, "a day: Spark starts a micro-batch this often and refuses huge intervals")]
BackoffSeconds = Annotated[PositiveFloat, at_most(
    86_400, "a day: the forecast run sleeps this long between attempts")]
TimeoutSeconds = Annotated[PositiveFloat, at_most(
    3_600, "an hour: a request waits this long, and sockets overflow past ~9.2e9 s")]
AssistSeconds = Annotated[NonNegativeFloat, at_most(
    3_600, "an hour: the Label page waits this long for the LLM; 0 = no button")]
# [topics] partitions: CreateTopics' partition count is an INT32 (kafka-python failed with
# struct.error past 2,147,483,647), and a real cluster's limit is far lower: Kafka's maintainers
# advise at most ~4,000 partitions per broker (Confluent, "Apache Kafka Supports 200K
# Partitions Per Cluster", 2018). polarwatch creates two topics of this many partitions (both on
# the one embedded broker: 2,000 at the bound), and the stream plans a read of every partition
# each micro-batch. A stream of posts needs a handful.
MAX_PARTITIONS = 1_000
Partitions = Annotated[PositiveInt, at_most(
    MAX_PARTITIONS, "the posts and dead-letter topics are created with this many each, and "
    "Kafka advises at most ~4,000 partitions per broker")]
# [alerts] max_attempts: the waits are backoff_seconds * 2**k (a float: it overflows past
# k = 1,023, and the forecast's delivery stopped with OverflowError), each up to a day. 100
# attempts at the default 120 s cap retry for over 3 hours: a receiver down longer is gone.
MAX_ATTEMPTS = 100
Attempts = Annotated[PositiveInt, at_most(
    MAX_ATTEMPTS, "the forecast retries a webhook this many times, waiting up to "
    "max_backoff_seconds between attempts")]

# [forecast] horizon: every window ahead is a stored `forecasts` row per topic and forecast run
# (100,000 took 15 s to write; 10,000,000 ran past 5 minutes), and the band is far too wide to
# read long before 1,000 steps. 1,000 hourly windows reach 41 days ahead, daily ones 2.7 years.
MAX_HORIZON = 1_000
Horizon = Annotated[PositiveInt, at_most(
    MAX_HORIZON, "windows ahead: each is a stored forecasts row per topic and run")]

# Enumerated keys. The spine imports no stage, so the backend names are spelled here and a test
# holds them equal to scoring's registry (tests/polarwatch/test_config.py).
Backend = Literal["lexicon", "learned", "transformers", "llm"]
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
CascadeTo = Literal["", "lexicon", "learned", "transformers", "llm"]  # "" = no cascade
Storage = Literal["memory", "s3"]
WebhookFormat = Literal["standard", "alertmanager"]
ResponseFormat = Literal["", "json_object_schema", "json_schema", "none"]
# The numeric columns of `topic_windows` (polarwatch.tables) that can be forecast: [forecast]
# metric and `forecast --metric`; forecast.series.METRICS is this tuple.
ForecastMetric = Literal["volume", "n_interactions", "mean_score", "n_conversations",
                         "extreme_share", "hostility_share", "pro_share", "anti_share"]
BACKENDS: tuple[str, ...] = get_args(Backend)
WEBHOOK_FORMATS: tuple[str, ...] = get_args(WebhookFormat)
FORECAST_METRICS: tuple[str, ...] = get_args(ForecastMetric)
DEFAULT_WEBHOOK_FORMAT: WebhookFormat = "standard"  # [alerts] format, `alerts test`, Endpoint
