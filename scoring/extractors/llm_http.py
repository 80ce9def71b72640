"""The `llm` backend: any OpenAI-compatible chat server (vLLM, Ollama, llama.cpp server, OpenAI).

One request per distinct (topic, text, parent text): the seed paper's annotation prompt — stance
toward the topic, affect (hostility toward the other side) and agreement with the parent, each
with a short explanation — generalized to any configured topic through its ``name``, ``pro`` and
``anti`` descriptions. The answer is constrained by a JSON schema, parsed leniently
(``strict=False``: small models emit raw control characters) and validated against the label
enums. Requests run on a bounded thread pool with timeouts and retries with exponential backoff;
answers are cached by (model, prompt version, topic, text, parent text), so retweets and duplicate
texts cost nothing. A server that is not listening raises :class:`BackendError` naming the URL
at once (no retries) and opens a short circuit breaker so a whole batch fails fast and the
fallback chain (``scoring.fallback``) takes over.

Options (keyword arguments of :func:`scoring.extractors.get_extractor`; environment defaults):
``base_url`` [env POLARWATCH_LLM_BASE_URL, default http://127.0.0.1:8080/v1], ``model``
[POLARWATCH_LLM_MODEL, default "default"], ``api_key`` [POLARWATCH_LLM_API_KEY], ``timeout``,
``retries``, ``concurrency``, ``max_tokens``, ``temperature``, ``response_format``
("json_object_schema" = llama.cpp style, "json_schema" = OpenAI/vLLM style, "none"),
``cache_size``, ``explanation_chars`` (schema maxLength of each explanation; it bounds the
tokens generated, hence the latency), ``batch_timeout`` (seconds per ``extract`` call: after it,
no new request starts and the remaining posts fail to the fallback). A refused connection, or a
post that timed out on every attempt, trips a breaker: for BREAKER_SECONDS every post fails at
once instead of waiting on a dead or hung server.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from polarwatch.config import Topic
from polarwatch.errors import BackendError
from polarwatch.records import AFFECTS, AGREEMENTS, EMOTIONS, STANCES, Labels
from scoring.extractors.base import Extractor, PostPair

PROMPT_VERSION = "pw-llm-2"  # bump whenever the prompt or schema changes (it keys the cache)
DEFAULT_BASE_URL = "http://127.0.0.1:8080/v1"
INTENSITIES = {"none": 0.0, "low": 0.33, "medium": 0.67, "high": 1.0}
# The server gives no calibrated probability; these nominal confidences only separate a definite
# label from "unclear" (so a cascade never escalates *from* the LLM). Not a measured accuracy.
NOMINAL_CONF = 0.9
UNCLEAR_CONF = 0.5
BREAKER_SECONDS = 10.0  # after a refused connection or a timeout, fail fast for this long
MAX_EXPLANATION_CHARS = 160

SYSTEM_PROMPT = (
    "You annotate social-media posts for a study of political polarization. Read the post (and, "
    "for a reply, the post it replies to) and call the annotation function by answering with "
    "JSON only. Be literal: when the text does not show a label, answer \"unclear\"."
)


def _dimension(labels: Sequence[str], what: str, max_chars: int) -> dict[str, Any]:
    return {"type": "object", "description": what,
            "properties": {"label": {"type": "string", "enum": list(labels)},
                           "explanation": {"type": "string", "maxLength": max_chars}},
            "required": ["label", "explanation"]}


def answer_schema(reply: bool, max_chars: int = MAX_EXPLANATION_CHARS) -> dict[str, Any]:
    """The JSON schema of the annotation function's arguments (agreement only for replies)."""
    props: dict[str, Any] = {
        "stance": _dimension(STANCES, "stance of the post toward the topic", max_chars),
        "affect": _dimension(AFFECTS, "hostility toward people holding the opposing view",
                             max_chars),
    }
    if reply:
        props["agreement"] = _dimension(AGREEMENTS, "does the reply agree with its parent",
                                        max_chars)
    props["emotion"] = {"type": "string", "enum": list(EMOTIONS)}
    props["intensity"] = {"type": "string", "enum": list(INTENSITIES)}
    return {"type": "object", "properties": props, "required": list(props)}


def answer_example(reply: bool) -> str:
    """A one-line answer in the expected shape, shown to servers without a JSON mode."""
    dims = ["stance", "affect"] + (["agreement"] if reply else [])
    labels = {"stance": "pro", "affect": "no", "agreement": "disagree"}
    parts = [f'"{d}": {{"label": "{labels[d]}", "explanation": "..."}}' for d in dims]
    return "{" + ", ".join(parts + ['"emotion": "anger"', '"intensity": "low"']) + "}"


def build_messages(topic: Topic, text: str, parent_text: str | None,
                   example: bool = False) -> list[dict[str, str]]:
    """The annotation prompt for one post, generalized to any topic; `example` adds a sample
    answer for servers that cannot constrain the output to the JSON schema."""
    lines = [
        f"Topic: {topic.name}",
        f'- "pro": {topic.pro}',
        f'- "anti": {topic.anti}',
        '- "unclear": neither, or the post does not say.',
        "",
        "Answer with a JSON object with these fields:",
        "stance: {label: pro|anti|unclear, explanation}: the author's position on the topic.",
        "affect: {label: yes|no|unclear, explanation}: \"yes\" if the post is hostile, insulting "
        "or contemptuous toward people who hold the opposing view, else \"no\".",
    ]
    if parent_text is not None:
        lines.append("agreement: {label: agree|disagree|unclear, explanation}: does the reply "
                     "agree with the post it replies to?")
    lines += [f"emotion: one of {', '.join(EMOTIONS)}.",
              f"intensity: how strongly it is expressed, one of {', '.join(INTENSITIES)}.",
              "Keep each explanation under 25 words.", ""]
    if example:
        lines += ["Answer with one JSON object only, shaped like this example:",
                  answer_example(parent_text is not None), ""]
    if parent_text is not None:
        lines += [f"Parent post: {parent_text or '(not available)'}", f"Reply: {text}"]
    else:
        lines.append(f"Post: {text}")
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "\n".join(lines)}]


def _json_object(raw: str) -> Any:
    """The answer's JSON: the whole text, or else the first JSON object inside it (servers
    without a JSON mode wrap it in prose or a ```json fence)."""
    try:
        return json.loads(raw, strict=False)
    except json.JSONDecodeError as exc:
        first = exc
    decoder = json.JSONDecoder(strict=False)
    start = raw.find("{")
    while start != -1:
        try:
            return decoder.raw_decode(raw, start)[0]
        except json.JSONDecodeError:
            start = raw.find("{", start + 1)
    raise ValueError(f"not JSON ({first}): {raw[:120]!r}")


def parse_answer(raw: str, reply: bool) -> dict[str, Any]:
    """Parse and validate the model's JSON; raises ValueError naming what is wrong."""
    obj = _json_object(raw)
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    out: dict[str, Any] = {}
    dims = [("stance", STANCES), ("affect", AFFECTS)] + ([("agreement", AGREEMENTS)] if reply
                                                          else [])
    for name, allowed in dims:
        value = obj.get(name)
        label = value.get("label") if isinstance(value, dict) else value
        if label not in allowed:
            raise ValueError(f"{name}: {label!r} is not one of {', '.join(allowed)}")
        out[name] = label
        expl = value.get("explanation") if isinstance(value, dict) else None
        out[f"{name}_explanation"] = str(expl).strip() if expl else ""
    out["emotion"] = obj.get("emotion") if obj.get("emotion") in EMOTIONS else "neutral"
    out["intensity"] = INTENSITIES.get(str(obj.get("intensity")), 0.0)
    return out


def reply_content(body: Any) -> str:
    """The assistant's text in an OpenAI-style chat completion; ValueError naming what is
    missing for any other shape (``"message": null``, no choices, a non-string content, …)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices:
        raise ValueError(f"no 'choices' list in the reply: {str(body)[:120]!r}")
    message = choices[0].get("message") if isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        raise ValueError(f"choices[0].message is {type(message).__name__}, not an object")
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise ValueError(f"choices[0].message.content is {type(content).__name__}, not text")
    return content


class LLMExtractor(Extractor):
    name = "llm"

    def __init__(self, topics: Sequence[Topic], base_url: str | None = None,
                 model: str | None = None, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 2, backoff: float = 0.5, concurrency: int = 4,
                 max_tokens: int = 400, temperature: float = 0.0,
                 response_format: str = "json_object_schema", cache_size: int = 100_000,
                 explanation_chars: int = MAX_EXPLANATION_CHARS,
                 batch_timeout: float = 600.0) -> None:
        super().__init__(topics)
        url = (base_url or os.environ.get("POLARWATCH_LLM_BASE_URL") or DEFAULT_BASE_URL)
        url = url.rstrip("/")
        self.base_url = url if url.endswith("/v1") else url + "/v1"
        self.model = model or os.environ.get("POLARWATCH_LLM_MODEL") or "default"
        self._api_key = api_key or os.environ.get("POLARWATCH_LLM_API_KEY")
        if response_format not in ("json_object_schema", "json_schema", "none"):
            raise BackendError(f"llm: response_format {response_format!r} is not one of "
                               f"json_object_schema, json_schema, none")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency, self.max_tokens = max(1, int(concurrency)), int(max_tokens)
        self.temperature, self.response_format = float(temperature), response_format
        self.explanation_chars = int(explanation_chars)
        self.batch_timeout = float(batch_timeout)  # no new request starts after this many s
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._cache_size = int(cache_size)
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._down_reason = ""
        self.stats = {"requests": 0, "cache_hits": 0, "retries": 0, "failures": 0}

    # -- HTTP ------------------------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        req = urllib.request.Request(self.base_url + path, data=json.dumps(payload).encode(),
                                     headers=headers, method="POST")
        with self._lock:
            self.stats["requests"] += 1
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        return body

    def _unreachable(self, reason: str) -> BackendError:
        return BackendError(f"llm: the server at {self.base_url} is unreachable ({reason}); "
                            f"start it or set POLARWATCH_LLM_BASE_URL")

    def _request(self, pair: PostPair, topic: Topic) -> dict[str, Any]:
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
        last = ""
        for attempt in range(self.retries + 1):
            if time.monotonic() < self._down_until:
                raise self._unreachable(self._down_reason)
            if attempt:
                with self._lock:
                    self.stats["retries"] += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                body = self._post("/chat/completions", payload)
                return parse_answer(reply_content(body), reply)
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:200].decode("utf-8", "replace")
                last = f"HTTP {exc.code} from {self.base_url}/chat/completions: {detail}"
                if exc.code in (400, 401, 403, 404, 422):  # our request is wrong: do not retry
                    break
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, ConnectionRefusedError | FileNotFoundError):
                    self._down_until = time.monotonic() + BREAKER_SECONDS
                    self._down_reason = f"connection refused: {exc.reason}"
                    raise self._unreachable(self._down_reason) from exc
                last = f"cannot reach {self.base_url}: {exc.reason}"
            except (TimeoutError, ConnectionError) as exc:
                last = f"no answer from {self.base_url} within {self.timeout:g} s ({exc!r})"
                if attempt == self.retries:  # a hung server: fail the next posts fast too
                    self._down_until = time.monotonic() + BREAKER_SECONDS
                    self._down_reason = f"no answer within {self.timeout:g} s, {attempt + 1} times"
            except (KeyError, IndexError, TypeError, ValueError, AttributeError,
                    RecursionError) as exc:
                last = f"unusable answer: {exc}"
                if self.temperature == 0:  # greedy decoding: asking again gets the same answer
                    break
        with self._lock:
            self.stats["failures"] += 1
        raise BackendError(f"llm: post {pair.post_id!r} failed after {self.retries + 1} "
                           f"attempt(s): {last}")

    # -- caching ---------------------------------------------------------------------------

    def cache_key(self, pair: PostPair) -> str:
        topic = self.topics.get(pair.topic)
        parts = [self.model, PROMPT_VERSION, str(self.explanation_chars), pair.topic,
                 f"{topic.name}|{topic.pro}|{topic.anti}" if topic else "", pair.text,
                 "\x00" if pair.parent_text is None else pair.parent_text]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def _cached(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
            return hit

    def _store(self, key: str, answer: dict[str, Any]) -> None:
        with self._lock:
            self._cache[key] = answer
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    # -- the interface ---------------------------------------------------------------------

    def _answer(self, pair: PostPair) -> dict[str, Any]:
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
        answer = self._request(pair, topic)
        self._store(key, answer)
        return answer

    def extract_each(self, batch: Sequence[PostPair]) -> list[Labels | BackendError]:
        """Label every post; a post that fails yields its BackendError instead of Labels."""
        keys = [self.cache_key(p) for p in batch]
        first: dict[str, int] = {}
        for i, key in enumerate(keys):  # duplicates inside the batch: one request
            first.setdefault(key, i)
        results: dict[str, dict[str, Any] | BackendError] = {}
        deadline = time.monotonic() + self.batch_timeout

        def run(i: int) -> None:
            if time.monotonic() > deadline:  # the batch's time is spent: do not start more
                results[keys[i]] = BackendError(
                    f"llm: post {batch[i].post_id!r} not sent: the batch deadline of "
                    f"{self.batch_timeout:g} s passed (llm batch_timeout)")
                return
            try:
                results[keys[i]] = self._answer(batch[i])
            except BackendError as exc:
                results[keys[i]] = exc

        unique = list(first.values())
        if len(unique) <= 1 or self.concurrency == 1:
            for i in unique:
                run(i)
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(unique))) as pool:
                list(pool.map(run, unique))
        with self._lock:
            self.stats["cache_hits"] += len(batch) - len(unique)
        out: list[Labels | BackendError] = []
        for pair, key in zip(batch, keys, strict=True):
            res = results[key]
            out.append(res if isinstance(res, BackendError) else self._labels(pair, res))
        return out

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        out = []
        for res in self.extract_each(batch):
            if isinstance(res, BackendError):
                raise res
            out.append(res)
        return out

    def _labels(self, pair: PostPair, a: dict[str, Any]) -> Labels:
        def conf(label: str) -> float:
            return UNCLEAR_CONF if label == "unclear" else NOMINAL_CONF

        reply = pair.parent_text is not None
        expl = "; ".join(f"{d}: {a[f'{d}_explanation']}"
                         for d in ("stance", "affect", "agreement")
                         if a.get(f"{d}_explanation"))
        return Labels(
            post_id=pair.post_id, stance=a["stance"], affect=a["affect"],
            agreement=a["agreement"] if reply else None, emotion=a["emotion"],
            intensity=a["intensity"], stance_conf=conf(a["stance"]),
            affect_conf=conf(a["affect"]),
            agreement_conf=conf(a["agreement"]) if reply else None,
            emotion_conf=UNCLEAR_CONF if a["emotion"] == "neutral" else NOMINAL_CONF,
            backend=self.name, explanation=expl or None)
