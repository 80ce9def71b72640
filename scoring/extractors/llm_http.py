"""The `llm` backend: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI).

One request per distinct (topic, text, parent text) with the prompt and answer schema of
:mod:`scoring.extractors.llm_prompt`; the answer is parsed leniently and validated against the
label enums. Requests go through one httpx client on a bounded thread pool, with timeouts and
retries with exponential backoff (tenacity); answers are cached (cachetools LRU) by (model,
prompt version, topic, text, parent text), so retweets and duplicate texts cost nothing. A server
that is not listening raises :class:`BackendError` naming it at once (no retries) and opens a
short circuit breaker so a whole batch fails fast and the fallback chain (``scoring.fallback``)
takes over. Each exchange is bounded (:mod:`scoring.extractors.llm_exchange`): an answer longer
than ``max_response_bytes``, compressed, or not complete ``timeout`` seconds after the request
(connect, headers and body in all) is an error, not memory growth or a hung worker; a SIGTERM or
Ctrl-C during a batch ends its requests in flight at once. A redirect is never followed (a POST
to another address would silently re-send the post and the API key).

Options (keyword arguments of :func:`scoring.extractors.get_extractor`; ``[extractor]`` keys):
``base_url`` [llm_base_url, default http://127.0.0.1:8080/v1], ``model``
[llm_model, default "default"], ``api_key`` [llm_api_key, a secret], ``timeout``
(seconds for the whole answer), ``retries``, ``concurrency``, ``max_tokens``, ``temperature``,
``response_format`` ("json_object_schema" = llama.cpp style, "json_schema" = OpenAI/vLLM style,
"none"), ``cache_size``, ``explanation_chars`` (schema maxLength of each explanation; it bounds
the tokens generated, hence the latency; a longer explanation in the answer is cut to it), ``batch_timeout`` (seconds per ``extract`` call: after
it, no new request starts and the remaining posts fail to the fallback), ``max_response_bytes``,
``max_retry_after`` (the longest ``Retry-After`` waited for; a server asking for longer is not
asked again). A refused connection, or a post that timed out on every attempt, trips a breaker:
for BREAKER_SECONDS every post fails at once instead of waiting on a dead or hung server.

Messages show the server as ``scheme://host:port/…/v1`` (a URL's user, path or query may hold a
key); those quoting its answer (error body, redirect target, non-JSON or unusable answer) cut it,
reduce HTML to text and redact the API key and Bearer tokens (gateways may echo the Authorization
header). Each HTTP attempt, retries included, asks ``call_gate`` first if set (the cascade's budget
counts calls, not posts). A post with no text gets the shared "no text" labels without a request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import httpx
from cachetools import LRUCache
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.http_limits import InFlight
from polarwatch.records import Labels
from polarwatch.redact import url_for_log
from scoring.extractors.base import (
    Bounds,
    Extractor,
    OverBudget,
    PostPair,
    blank,
    no_text_labels,
)
from scoring.extractors.llm_exchange import DROPPED, MAX_RESPONSE_BYTES, Exchange, refused
from scoring.extractors.llm_exchange import Failed as _Failed
from scoring.extractors.llm_prompt import (
    INTENSITIES,
    MAX_EXPLANATION_CHARS,
    answer_labels,
    answer_schema,
    build_messages,
    parse_answer,
    reply_content,
)

__all__ = ["INTENSITIES", "LLMExtractor", "answer_schema", "build_messages", "parse_answer",
           "reply_content"]

PROMPT_VERSION = "pw-llm-3"  # bump whenever the prompt or schema changes (it keys the cache)
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
BREAKER_SECONDS = 10.0  # after a refused connection or a timeout, fail fast for this long
# The longest Retry-After (HTTP 429/503) waited for before the next attempt: a minute keeps a
# batch (batch_timeout 600 s) moving; a server asking for longer is not asked again.
MAX_RETRY_AFTER = 60.0


class LLMExtractor(Exchange, Extractor):
    name = "llm"
    counts_calls = True  # each HTTP attempt asks call_gate (the cascade's budget) first
    option_bounds: ClassVar[dict[str, Bounds]] = {
        "timeout": Bounds(0, 3_600, "seconds to wait for one answer", above_low=True),
        "retries": Bounds(0, 100, "attempts after the first"),
        "backoff": Bounds(0, 600, "seconds before the first retry, doubling"),
        "concurrency": Bounds(1, 256, "requests in flight"),
        "max_tokens": Bounds(1, 1_000_000, "tokens an answer may take"),
        "temperature": Bounds(0, 2, "sampling temperature, OpenAI's range"),
        "cache_size": Bounds(0, 10_000_000, "answers kept in memory"),
        "explanation_chars": Bounds(0, 10_000, "characters kept of each explanation"),
        "batch_timeout": Bounds(0, 86_400, "seconds after which no new request of a batch "
                                           "starts", above_low=True),
        "max_response_bytes": Bounds(1_024, 1_000_000_000, "bytes read of one answer"),
        "max_retry_after": Bounds(0, 86_400, "the longest Retry-After waited for, seconds"),
    }

    def __init__(self, topics: Sequence[Topic], base_url: str | None = None,
                 model: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 2, backoff: float = 0.5, concurrency: int = 4,
                 max_tokens: int = 400, temperature: float = 0.0,
                 response_format: str = "json_object_schema", cache_size: int = 100_000,
                 explanation_chars: int = MAX_EXPLANATION_CHARS,
                 batch_timeout: float = 600.0,
                 max_response_bytes: int = MAX_RESPONSE_BYTES,
                 max_retry_after: float = MAX_RETRY_AFTER) -> None:
        super().__init__(topics)
        url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.shown_url = url_for_log(self.base_url.removesuffix("/v1")) + "/v1"  # in messages
        self.model = model or "default"
        self._api_key = api_key or None
        if response_format not in ("json_object_schema", "json_schema", "none"):
            raise BackendError(f"llm: response_format {response_format!r} is not one of "
                               f"json_object_schema, json_schema, none")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency, self.max_tokens = max(1, int(concurrency)), int(max_tokens)
        self.temperature, self.response_format = float(temperature), response_format
        self.explanation_chars = int(explanation_chars)
        self.batch_timeout = float(batch_timeout)  # no new request starts after this many s
        self.max_response_bytes = int(max_response_bytes)
        self.max_retry_after = float(max_retry_after)
        self._cache: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=max(0, int(cache_size)))
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        self._down_until, self._down_reason = 0.0, ""  # the breaker: open until, and why
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "failures": 0}

    # -- attempts ------------------------------------------------------------------------

    def _unreachable(self, reason: str) -> BackendError:
        return BackendError(f"llm: the server at {self.shown_url} is unreachable ({reason}); "
                            f"start it or set POLARWATCH_EXTRACTOR_LLM_BASE_URL")

    def _attempt(self, payload: dict[str, Any], reply: bool, flight: InFlight) -> dict[str, Any]:
        if time.monotonic() < self._down_until:
            raise self._unreachable(self._down_reason)
        try:
            return parse_answer(reply_content(self._post("/chat/completions", payload, flight)),
                                reply, self.explanation_chars)
        except httpx.TimeoutException as exc:
            raise _Failed(f"no answer from {self.shown_url} within {self.timeout:g} s ({exc!r})",
                          hung=self._late) from exc
        except httpx.ConnectError as exc:
            why = refused(exc)
            if why is None:
                raise _Failed(f"cannot reach {self.shown_url}: {exc}") from exc
            self._down_until = time.monotonic() + BREAKER_SECONDS
            self._down_reason = f"connection refused: {why}"
            raise self._unreachable(self._down_reason) from exc
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            raise _Failed(f"the server at {self.shown_url} dropped the connection before its "
                          f"answer ({type(exc).__name__}: {exc})", hung=DROPPED) from exc
        except httpx.TransportError as exc:
            raise _Failed(f"cannot reach {self.shown_url}: {exc!r}") from exc
        except (KeyError, IndexError, TypeError, ValueError, AttributeError,
                RecursionError) as exc:
            # greedy decoding (temperature 0): asking again gets the same answer. The message
            # quotes the answer: redacted, and not chained (the cause holds it unredacted).
            raise _Failed(f"unusable answer: {self._redact(str(exc))}",
                          retry=self.temperature != 0) from None

    def _wait(self, state: RetryCallState) -> float:
        """Exponential backoff (backoff, 2×backoff, 4×backoff…), or the server's Retry-After
        when longer (already capped by max_retry_after)."""
        delay = float(wait_exponential(multiplier=self.backoff)(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        asked = exc.retry_after if isinstance(exc, _Failed) else None
        return delay if asked is None else max(delay, asked)

    def _count_retry(self, _state: RetryCallState) -> None:
        with self._lock:
            self.stats["retries"] += 1

    def _request(self, pair: PostPair, topic: Topic, flight: InFlight) -> dict[str, Any]:
        reply = pair.parent_text is not None
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(topic, pair.text, pair.parent_text,
                                       example=self.response_format == "none"),
            "temperature": self.temperature, "max_tokens": self.max_tokens,
        }
        schema = answer_schema(reply, self.explanation_chars)
        if self.response_format == "json_object_schema":  # llama.cpp server
            payload["response_format"] = {"type": "json_object", "schema": schema}
        elif self.response_format == "json_schema":  # OpenAI, vLLM
            payload["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "annotate", "schema": schema}}
        def pause(seconds: float) -> None:  # a cancelled batch ends its backoff at once
            flight.cancelled.wait(seconds)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, _Failed) and e.retry
                                     and not flight.cancelled.is_set()),
            before_sleep=self._count_retry, reraise=True, sleep=pause)
        try:
            return retrying(self._attempt, payload, reply, flight)
        except OverBudget as exc:
            done = retrying.statistics.get("attempt_number", 1) - 1
            raise OverBudget(f"llm: post {pair.post_id!r} not sent"
                             + (f" again after {done} failed attempt(s)" if done else "")
                             + f": {exc}") from None
        except _Failed as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            if exc.hung and attempts == self.retries + 1:  # a hung server: fail the next fast
                self._down_until = time.monotonic() + BREAKER_SECONDS
                self._down_reason = f"{exc.hung}, {attempts} times"
            with self._lock:
                self.stats["failures"] += 1
            raise BackendError(f"llm: post {pair.post_id!r} failed after {attempts} "
                               f"attempt(s): {self._redact(str(exc))}") from exc

    # -- caching ---------------------------------------------------------------------------

    def cache_key(self, pair: PostPair) -> str:
        topic = self.topics.get(pair.topic)
        parts = [self.model, PROMPT_VERSION, str(self.explanation_chars), pair.topic,
                 f"{topic.name}|{topic.pro}|{topic.anti}" if topic else "", pair.text,
                 "\x00" if pair.parent_text is None else pair.parent_text]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def _cached(self, key: str) -> dict[str, Any] | None:
        with self._lock:  # cachetools caches are not thread-safe; a get reorders the LRU
            hit: dict[str, Any] | None = self._cache.get(key)
            return hit

    def _store(self, key: str, answer: dict[str, Any]) -> None:
        with self._lock:
            if self._cache.maxsize:  # cache_size = 0: no cache
                self._cache[key] = answer

    # -- the interface ---------------------------------------------------------------------

    def _answer(self, pair: PostPair, flight: InFlight) -> dict[str, Any]:
        topic = self.topics.get(pair.topic)
        if topic is None:
            raise BackendError(f"llm: post {pair.post_id!r} has topic {pair.topic!r}, which is "
                               f"not configured (known: {', '.join(sorted(self.topics))})")
        key = self.cache_key(pair)
        hit = self._cached(key)
        if hit is not None:
            with self._lock:
                self.stats["cache_hits"] += 1
            return hit
        answer = self._request(pair, topic, flight)
        self._store(key, answer)
        return answer

    def extract_each(self, batch: Sequence[PostPair]) -> list[Labels | BackendError]:
        """Label every post; a post that fails yields its BackendError instead of Labels."""
        if any(blank(p) for p in batch):  # nothing to ask about: the shared "no text" labels
            texts = iter(self.extract_each([p for p in batch if not blank(p)]))
            return [no_text_labels(p, self.name) if blank(p) else next(texts) for p in batch]
        keys = [self.cache_key(p) for p in batch]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):  # duplicates inside the batch: one request
            first.setdefault(key, i)
        results: dict[str, dict[str, Any] | BackendError] = {}
        deadline = time.monotonic() + self.batch_timeout
        flight = InFlight()  # the requests in flight, cancelled together (SIGTERM, Ctrl-C)

        def run(i: int) -> None:
            if flight.cancelled.is_set():
                return
            if time.monotonic() > deadline:  # the batch's time is spent: do not start more
                results[keys[i]] = BackendError(
                    f"llm: post {batch[i].post_id!r} not sent: the batch deadline of "
                    f"{self.batch_timeout:g} s passed (llm batch_timeout)")
                return
            try:
                results[keys[i]] = self._answer(batch[i], flight)
            except BackendError as exc:
                results[keys[i]] = exc

        unique = list(first.values())
        if len(unique) <= 1 or self.concurrency == 1:
            for i in unique:
                run(i)
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(unique))) as pool:
                try:
                    list(pool.map(run, unique))
                except BaseException:  # SIGTERM's SystemExit, Ctrl-C: before the pool joins
                    flight.cancel()  # its threads, end their requests (and retries) now
                    raise
        with self._lock:
            self.stats["cache_hits"] += len(batch) - len(unique)
        out: list[Labels | BackendError] = []
        for pair, key in zip(batch, keys, strict=True):
            res = results[key]
            out.append(res if isinstance(res, BackendError) else answer_labels(pair, res, self.name))
        return out

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        out = []
        for res in self.extract_each(batch):
            if isinstance(res, BackendError):
                raise res
            out.append(res)
        return out
