"""Live sources against local servers that speak the real protocols (a Jetstream websocket and a
Mastodon Server-Sent-Events stream + timeline API), through the real producer and broker:
HTTP 429 with Retry-After, a connection dropped mid-stream, resume from the cursor."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ingest.broker import EmbeddedBroker
from ingest.producer import DEAD_LETTER_REASON_HEADER, PostProducer
from ingest.sources.base import Checkpoint, TopicMemory, pump
from ingest.sources.jetstream import JetstreamSource, parse_message, subscribe_url
from ingest.sources.mastodon import MastodonSource, newer, sse_events
from ingest.sources.reconnect import Backoff, retry_after_seconds
from polarwatch.errors import PolarwatchError
from tests.http_fakes import QuietHandler, serve
from tests.ingest.test_files import ROUTER
from tests.kafka_helpers import consume, unique_topics

T0 = 1_714_521_600_000_000  # 2024-05-01T00:00:00Z in µs


@pytest.fixture
def topic_names(broker: EmbeddedBroker) -> tuple[str, str]:
    return unique_topics(broker.bootstrap, "live")


class Sleeps(list[float]):  # an injected `sleep`: records the delays, waits only a little
    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(min(seconds, 0.01))


# ---------------------------------------------------------------------------- Jetstream


def js_post(i: int, text: str, reply_to: int | None = None, root: int | None = None,
            did: str = "did:plc:alice") -> dict[str, Any]:
    record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": text, "langs": ["en"],
                              "createdAt": f"2024-05-01T00:00:00.{i:06d}Z"}  # = time_us
    if reply_to is not None:
        record["reply"] = {
            "root": {"cid": "bafy", "uri": f"at://did:plc:alice/app.bsky.feed.post/r{root}"},
            "parent": {"cid": "bafy", "uri": f"at://did:plc:alice/app.bsky.feed.post/r{reply_to}"}}
    return {"did": did, "time_us": T0 + i, "kind": "commit",
            "commit": {"rev": f"rev{i}", "operation": "create", "collection": "app.bsky.feed.post",
                       "rkey": f"r{i}", "record": record, "cid": f"bafy{i}"}}


def jetstream_messages() -> list[dict[str, Any]]:
    msgs = []
    for i in range(1, 41):
        if i % 10 == 1:
            msgs.append(js_post(i, "Gun control is overdue #guncontrol"))
        elif i % 10 == 5:
            msgs.append({"did": "did:plc:bob", "time_us": T0 + i, "kind": "identity",
                         "identity": {"did": "did:plc:bob", "handle": "bob.bsky.social"}})
        elif i % 10 == 6:
            msgs.append({**js_post(i, ""), "commit": {"operation": "delete", "rkey": "zzz",
                                                      "collection": "app.bsky.feed.post"}})
        elif i % 10 == 7:
            msgs.append({**js_post(i, "like"), "commit": {
                "operation": "create", "collection": "app.bsky.feed.like", "rkey": f"l{i}",
                "record": {"subject": {}}}})  # the server filters these out (wantedCollections)
        elif i == 18:
            msgs.append({**js_post(i, "x"), "commit": {**js_post(i, "x")["commit"],
                                                       "record": {"createdAt": "x"}}})
        elif i == 28:
            msgs.append(js_post(i, "I like turtles"))  # matches no topic
        elif i == 38:
            msgs.append(js_post(i, "   "))  # an image-only post
        else:
            root = i - (i - 1) % 10
            msgs.append(js_post(i, f"No way, reply {i}", reply_to=i - 1, root=root,
                                did=f"did:plc:u{i}"))
    return msgs


class JetstreamServer:
    """Replays recorded messages from ``cursor`` (inclusive), filtering by wantedCollections.
    Attempts in `reject` get HTTP 429; attempt `drop_on` is cut after `drop_after` messages."""

    def __init__(self, messages: list[dict[str, Any]], reject: tuple[int, ...] = (),
                 drop_on: int | None = None, drop_after: int = 0,
                 reject_status: int = 429) -> None:
        from websockets.sync.server import serve

        self.messages, self.reject, self.reject_status = messages, reject, reject_status
        self.drop_on, self.drop_after = drop_on, drop_after
        self.attempts: list[str] = []  # request paths, rejected ones too
        self.server = serve(self._handle, "127.0.0.1", 0, process_request=self._process)
        self.url = f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/subscribe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _process(self, conn: Any, request: Any) -> Any:
        self.attempts.append(request.path)
        if len(self.attempts) in self.reject:
            response = conn.respond(self.reject_status, "rate limited\n")
            response.headers["Retry-After"] = "3"
            return response
        return None

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        attempt = len(self.attempts)
        query = parse_qs(urlsplit(ws.request.path).query)
        cursor = int(query["cursor"][0]) if "cursor" in query else None
        wanted = set(query.get("wantedCollections", []))
        sent = 0
        for msg in self.messages:
            if (cursor is not None and msg["time_us"] < cursor) or \
                    (msg["kind"] == "commit" and msg["commit"]["collection"] not in wanted):
                continue
            if attempt == self.drop_on and sent == self.drop_after:
                ws.close_socket()  # the network drops: no close frame
                return
            ws.send(json.dumps(msg))
            sent += 1
        with contextlib.suppress(ConnectionClosed):
            while True:
                ws.recv()

    def close(self) -> None:
        self.server.shutdown()


def test_parse_jetstream_messages() -> None:
    root = parse_message(json.dumps(js_post(1, "Hello #2A")).encode())
    assert root.position == T0 + 1 and root.error is None
    assert root.post == {"id": "at://did:plc:alice/app.bsky.feed.post/r1", "platform": "bluesky",
                         "author_id": "did:plc:alice", "text": "Hello #2A",
                         "created_at": "2024-05-01T00:00:00.000001+00:00",
                         "conversation_id": "at://did:plc:alice/app.bsky.feed.post/r1",
                         "parent_id": None, "lang": "en"}
    reply = parse_message(json.dumps(js_post(3, "no", reply_to=2, root=1)).encode()).post
    assert reply is not None
    assert reply["conversation_id"].endswith("/r1") and reply["parent_id"].endswith("/r2")
    ahead = js_post(5, "tomorrow, says my client")
    ahead["commit"]["record"]["createdAt"] = "2024-05-02T00:00:00Z"
    capped = parse_message(json.dumps(ahead).encode()).post
    assert capped is not None
    assert capped["created_at"] == \
        datetime.fromtimestamp((T0 + 5) / 1e6, UTC).isoformat()  # the relay's time caps it
    backdated = js_post(6, "an import")
    backdated["commit"]["record"]["createdAt"] = "2019-03-29T12:00:00+00:00"
    kept = parse_message(json.dumps(backdated).encode()).post
    assert kept is not None
    assert kept["created_at"] == "2019-03-29T12:00:00+00:00"
    odd = js_post(4, "x")
    odd["commit"]["record"]["createdAt"] = "yesterday"  # clients write anything: relay time
    odd_post = parse_message(json.dumps(odd).encode()).post
    assert odd_post is not None
    assert odd_post["created_at"] == datetime.fromtimestamp((T0 + 4) / 1e6, UTC).isoformat()
    malformed = parse_message(b"{nope").error
    assert malformed is not None and malformed.startswith("malformed JSON")
    ident = parse_message(json.dumps({"kind": "identity", "time_us": 5}).encode())
    assert (ident.position, ident.post, ident.error) == (5, None, None)
    assert subscribe_url("wss://h/subscribe?compress=false&cursor=1", 99) == \
        "wss://h/subscribe?compress=false&wantedCollections=app.bsky.feed.post&cursor=99"


def test_jetstream_429_drop_and_resume_from_cursor(
        broker: EmbeddedBroker, topic_names: tuple[str, str], tmp_path: Path) -> None:
    posts_topic, dead_topic = topic_names
    msgs = jetstream_messages()
    expected = [parse_message(json.dumps(m).encode()).post for m in msgs]
    expected_ids = {p["id"] for p in expected if p and p["text"].strip() != "" and
                    "turtles" not in p["text"] and p["text"] != "like"}
    server = JetstreamServer(msgs, reject=(1,), drop_on=2, drop_after=12)
    sleeps = Sleeps()
    source = JetstreamSource(server.url, sleep=sleeps, backoff=Backoff(initial=0.05),
                             idle_tick=0.1)
    ckpt = Checkpoint(tmp_path, "jetstream", source.checkpoint_key())
    position, conversations, save = ckpt.resume_live()
    assert position is None and not conversations
    try:
        with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
            stats = pump(source.records(None), producer, router=ROUTER, checkpoint=save,
                         conversations=conversations,
                         confirm_seconds=0.2, max_posts=len(expected_ids),
                         deadline=time.monotonic() + 30)
        assert stats.sent == len(expected_ids) and stats.dead_lettered == 1
        assert stats.no_topic == 1 and stats.duplicates == 1  # the event at the cursor, again
        assert sleeps[0] == 3.0  # Retry-After honoured
        assert source.connections == 2
        paths = [parse_qs(urlsplit(p).query) for p in server.attempts]
        assert [p.get("cursor") for p in paths] == [None, None, [str(T0 + 13)]]
        assert all(p["wantedCollections"] == ["app.bsky.feed.post"] for p in paths)
        saved = ckpt.load()
        assert saved is not None and saved["position"] == T0 + 40  # last post, confirmed

        # a restarted process resumes from the saved cursor: only that one event comes again,
        # as already sent (replayed: not sent again, so no duplicate lands on the topic)
        position, conversations, save = ckpt.resume_live()
        assert position == T0 + 40 and len(conversations) == 4  # the four threads
        source2 = JetstreamSource(server.url, sleep=sleeps, idle_tick=0.1)
        with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
            again = pump(source2.records(position), producer, router=ROUTER, checkpoint=save,
                         conversations=conversations, deadline=time.monotonic() + 1)
        assert parse_qs(urlsplit(server.attempts[-1]).query)["cursor"] == [str(T0 + 40)]
        assert (again.read, again.replayed, again.sent) == (1, 1, 0)
    finally:
        server.close()
    got = Counter(json.loads(r.value)["id"] for r in consume(broker.bootstrap, posts_topic,
                                                              len(expected_ids)))
    assert set(got) == expected_ids  # nothing lost; each id once, across the restart too
    assert all(n == 1 for n in got.values())
    dead = consume(broker.bootstrap, dead_topic, 1)
    assert len(dead) == 1 and json.loads(dead[0].value)["time_us"] == T0 + 18
    assert dict(dead[0].headers)[DEAD_LETTER_REASON_HEADER].startswith(b"commit.record.text")


# ---------------------------------------------------------------------------- Mastodon


def status(n: int, text: str, reply_to: int | None = None, **extra: Any) -> dict[str, Any]:
    sid = str(110_000_000_000_000_000 + n)
    return {"id": sid, "created_at": (datetime(2024, 5, 1, tzinfo=UTC)
                                      + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
            "in_reply_to_id": None if reply_to is None else str(110_000_000_000_000_000 + reply_to),
            "language": "en", "content": f"<p>{text}</p>", "reblog": None,
            "account": {"id": str(1000 + n % 3), "acct": f"user{n % 3}"},
            "uri": f"https://m.test/users/u/statuses/{sid}", **extra}


def mastodon_statuses() -> list[dict[str, Any]]:
    out = []
    for n in range(1, 31):
        if n % 6 == 1:
            out.append(status(n, "We need <a href='https://x'>#GunControl</a> &amp; now"))
        elif n == 9:
            out.append(status(n, "boost", reblog=status(1, "orig")))
        elif n == 20:
            out.append(status(n, "I like turtles"))
        else:  # a reply to the previous status (not to the boost or the turtle)
            out.append(status(n, f"No, wrong ({n})", reply_to=n - 2 if n - 1 in (9, 20) else n - 1))
    return out


class MastodonServer:
    """``/api/v1/streaming/hashtag`` (SSE) and ``/api/v1/timelines/tag/<tag>`` (catch-up).
    Request 1 gets 429; stream 1 sends statuses[:cut] and half of the next event, then the
    connection drops; statuses published meanwhile are only in the timeline; stream 2 sends
    the rest, then heartbeats until the client hangs up."""

    TOKEN = "s3cret"

    def __init__(self, statuses: list[dict[str, Any]], cut: int, gap: int) -> None:
        self.statuses, self.cut, self.gap = statuses, cut, gap
        self.requests: list[str] = []
        self.streams = 0
        outer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {outer.TOKEN}":
                    return self._reply(401, b'{"error":"The access token is invalid"}')
                if len(outer.requests) == 1:
                    return self._reply(429, b'{"error":"Too many requests"}',
                                       {"Retry-After": "2"})
                if self.path.startswith("/api/v1/timelines/tag/guncontrol"):
                    return self._timeline()
                if self.path.startswith("/api/v1/streaming/hashtag?tag=guncontrol"):
                    return self._stream()
                return self._reply(404, b'{"error":"Record not found"}')

            def _reply(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _timeline(self) -> None:
                q = parse_qs(urlsplit(self.path).query)
                min_id, limit = int(q["min_id"][0]), int(q["limit"][0])
                published = outer.statuses[:outer.cut + outer.gap]  # while the stream was down
                newer_ = [s for s in published if int(s["id"]) > min_id][:limit]
                self._reply(200, json.dumps(newer_[::-1]).encode())  # newest first, like Mastodon

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _stream(self) -> None:
                outer.streams += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self._chunk(b":)\n")
                if outer.streams == 1:
                    todo, tail = outer.statuses[:outer.cut], outer.statuses[outer.cut]
                else:
                    todo, tail = outer.statuses[outer.cut + outer.gap:], None
                for i, s in enumerate(todo):
                    self._chunk(b"event: update\r\ndata: %s\r\n\r\n" % json.dumps(s).encode())
                    if i % 4 == 0:
                        self._chunk(b"event: delete\ndata: 123\n\n:thump\n")
                if tail is not None:  # half an event, then the connection drops
                    self._chunk(b"event: update\ndata: " + json.dumps(tail).encode()[:40])
                    self.close_connection = True
                    return
                with contextlib.suppress(OSError):
                    while True:
                        time.sleep(0.05)
                        self._chunk(b":thump\n")

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_sse_parser() -> None:
    lines = [b":)\n", b"event: update\r\n", b"data: {\"a\":\n", b"data:1}\n", b"\n", b"\n",
             b"data: plain\n", b"id: 7\n", b"\n", b"event: update\n", b"data: cut"]
    assert list(sse_events(lines)) == [None, ("update", '{"a":\n1}'), ("message", "plain")]


def test_status_ids_compare_numerically_and_retry_after() -> None:
    assert newer("99", "100") == "100" and newer(None, "5") == "5" and newer("5", None) == "5"
    assert retry_after_seconds("7", 1.0) == 7.0
    assert retry_after_seconds(None, 1.5) == 1.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < retry_after_seconds(later, 1.0) <= 30
    b = Backoff(initial=1, maximum=8)
    delays = [b.next_delay() for _ in range(6)]
    assert all(0.5 * c <= d <= c for d, c in zip(delays, [1, 2, 4, 8, 8, 8], strict=True))
    b.reset()
    assert b.next_delay() <= 1


def test_mastodon_429_drop_catch_up(broker: EmbeddedBroker, topic_names: tuple[str, str],
                                    tmp_path: Path) -> None:
    posts_topic, dead_topic = topic_names
    statuses = mastodon_statuses()
    server = MastodonServer(statuses, cut=11, gap=4)
    sleeps = Sleeps()
    source = MastodonSource(server.url, tag="#guncontrol", token=MastodonServer.TOKEN,
                            sleep=sleeps, backoff=Backoff(initial=0.05), read_timeout=5)
    host = urlsplit(server.url).netloc
    expected = {f"mastodon:{host}:{s['id']}" for s in statuses
                if not s["reblog"] and "turtles" not in s["content"]}
    ckpt = Checkpoint(tmp_path, "mastodon", source.checkpoint_key())
    try:
        with PostProducer(broker.bootstrap, posts_topic, dead_topic, dedup=True) as producer:
            stats = pump(source.records(None), producer, router=ROUTER, checkpoint=ckpt.save,
                         confirm_seconds=0.2, max_posts=len(expected),
                         deadline=time.monotonic() + 30)
        assert stats.sent == len(expected) and stats.no_topic == 1 and stats.ignored == 1
        assert sleeps[0] == 2.0  # Retry-After honoured
        catch_up = [r for r in server.requests if "/timelines/" in r]
        # after the drop: fetch what was missed after the last complete status (#11)
        assert len(catch_up) == 1 and f"min_id={statuses[10]['id']}" in catch_up[0]
        assert server.streams == 2
        saved = ckpt.load()
        assert saved is not None and saved["position"] == statuses[-1]["id"]
    finally:
        server.close()
    records = consume(broker.bootstrap, posts_topic, len(expected))
    got = [json.loads(r.value) for r in records]
    assert Counter(p["id"] for p in got) == Counter(expected)  # each exactly once
    by_id = {p["id"]: p for p in got}
    first = by_id[f"mastodon:{host}:{statuses[0]['id']}"]
    assert first["text"] == "We need #GunControl & now" and first["topic"] == "gun_control"
    reply = by_id[f"mastodon:{host}:{statuses[4]['id']}"]
    assert reply["conversation_id"] == first["id"]  # threaded through the parents seen
    assert reply["parent_id"] == f"mastodon:{host}:{statuses[3]['id']}"
    assert reply["created_at"] == "2024-05-01T00:00:05Z"


def test_refusals_are_errors_not_retries() -> None:
    js, masto = JetstreamServer([], reject=(1,), reject_status=403), \
        MastodonServer(mastodon_statuses(), cut=1, gap=0)
    try:
        with pytest.raises(PolarwatchError, match="HTTP 403"):
            next(iter(JetstreamSource(js.url, sleep=Sleeps()).records(None)))
        source = MastodonSource(masto.url, tag="guncontrol", token="wrong", sleep=Sleeps())
        with pytest.raises(PolarwatchError, match="HTTP 401.*POLARWATCH_INGEST_MASTODON_TOKEN"):
            next(iter(source.records(None)))
    finally:
        js.close()
        masto.close()


def test_every_routed_thread_keeps_its_topic_across_restarts(tmp_path: Path) -> None:
    """Replies to a thread routed long ago (5,000 threads since) keep its topic after a
    restart; the progress file kept only the latest 2,000 before."""
    ckpt = Checkpoint(tmp_path, "jetstream", "wss://relay")
    _, conversations, save = ckpt.resume_live()
    for i in range(5_000):
        conversations.put(f"at://thread/{i}", "gun_control" if i % 2 else "abortion")
    save(1234)
    position, again, _ = ckpt.resume_live()
    assert position == 1234 and len(again) == 5_000
    assert again.get("at://thread/0") == "abortion" and again.get("at://thread/4999") == \
        "gun_control"
    assert again.get("at://thread/never") is None


def test_the_topic_memory_forgets_the_oldest_past_its_bound(tmp_path: Path) -> None:
    memory = TopicMemory(tmp_path / "m.sqlite", max_items=3)
    for key in "abcde":
        memory.put(key, "t")
    memory.put("a", "u")  # written again: now the newest
    memory.commit()
    reopened = TopicMemory(tmp_path / "m.sqlite")  # what a restarted ingest finds
    assert len(reopened) == 3
    assert [reopened.get(k) for k in "abcde"] == ["u", None, None, "t", "t"]
