"""Reply threads read from files (`ingest file`): a reply's ``parent_id`` is its parent's stored
``id`` and a thread's posts share one ``conversation_id``, whatever names the export gives them
(``--platform``, ``--preset``, ``--map``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import EmbeddedBroker
from ingest.sources.mapping import RowMapper, parse_mapping
from polarwatch.cli import main as cli_main
from tests.kafka_helpers import consume, unique_topics

REPO = Path(__file__).resolve().parents[2]
# The audit's file: a root, a reply to it, and a reply to the reply naming the conversation
THREAD: list[dict[str, Any]] = [
    {"id": "p1", "author_id": "u1", "text": "gun control saves lives",
     "created_at": "2024-05-01T10:00:00Z"},
    {"id": "p2", "author_id": "u2", "text": "guns are a right", "created_at": "2024-05-01T10:01:00Z",
     "parent_id": "p1"},
    {"id": "p3", "author_id": "u3", "text": "more guns", "created_at": "2024-05-01T10:02:00Z",
     "parent_id": "p2", "conversation_id": "p1"},
]
# The reddit preset over a file of these columns
AS_REDDIT = "text=text,created_at=created_at,author_id=author_id,conversation_id=conversation_id"


def posts_of(mapper: RowMapper, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    posts = [mapper(row) for row in rows]
    assert all(p is not None for p in posts)
    return [p for p in posts if p is not None]


def assert_one_thread(posts: list[dict[str, Any]]) -> None:
    """Every reply names a post of the list as its parent, and all share one conversation."""
    ids = [p["id"] for p in posts]
    assert len(set(ids)) == len(ids)
    orphans = [(p["id"], p["parent_id"]) for p in posts
               if p["parent_id"] is not None and p["parent_id"] not in ids]
    assert orphans == []
    assert len({p["conversation_id"] for p in posts}) == 1, posts
    assert posts[0]["conversation_id"] in ids


@pytest.mark.parametrize(("spec", "preset"), [
    ("platform==reddit", None),  # what --platform reddit makes of the mapping
    (None, None),
    (f"{AS_REDDIT},platform==reddit", "reddit"),  # --preset reddit --platform reddit
    (AS_REDDIT, "reddit"),
])
def test_a_thread_keeps_its_parents_and_one_conversation(spec: str | None,
                                                         preset: str | None) -> None:
    posts = posts_of(RowMapper(parse_mapping(spec, preset)), THREAD)
    assert_one_thread(posts)
    assert [p["platform"] for p in posts] == ["reddit" if spec or preset else "file"] * 3
    if preset is None:  # the platform is a name only: ids are the file's
        assert [(p["id"], p["parent_id"], p["conversation_id"]) for p in posts] == [
            ("p1", None, "p1"), ("p2", "p1", "p1"), ("p3", "p2", "p1")]


def test_a_reply_without_a_conversation_joins_the_one_its_parent_named() -> None:
    posts = posts_of(RowMapper(), [{**THREAD[0], "conversation_id": "c1"}, THREAD[1]])
    assert [(p["id"], p["parent_id"], p["conversation_id"]) for p in posts] == [
        ("p1", None, "c1"), ("p2", "p1", "c1")]


@pytest.mark.parametrize("prefixed", [True, False])
def test_reddit_preset_names_bare_and_prefixed_parents_alike(prefixed: bool) -> None:
    """A Reddit export gives parent_id and link_id with t1_/t3_ or (some CSV dumps) without.
    (Without them, a parent whose bare id is the link's is read as the submission.)"""
    def ref(kind: str, bare: str) -> str:
        return kind + bare if prefixed else bare

    rows = [{"id": "abc", "title": "Gun control vote", "selftext": "", "created_utc": 1714521600,
             "author": "op"},
            {"id": "c1", "body": "Agreed", "created_utc": 1714521660, "author": "a",
             "parent_id": ref("t3_", "abc"), "link_id": ref("t3_", "abc")},
            {"id": "c2", "body": "No", "created_utc": 1714521720, "author": "b",
             "parent_id": ref("t1_", "c1"), "link_id": ref("t3_", "abc")},
            {"id": "abc", "body": "A comment sharing the submission's bare id", "author": "c",
             "created_utc": 1714521780, "parent_id": ref("t1_", "c2"), "link_id": ref("t3_", "abc")}]
    posts = posts_of(RowMapper(parse_mapping(None, "reddit")), rows)
    assert [(p["id"], p["parent_id"], p["conversation_id"]) for p in posts] == [
        ("t3_abc", None, "t3_abc"), ("t1_c1", "t3_abc", "t3_abc"), ("t1_c2", "t1_c1", "t3_abc"),
        ("t1_abc", "t1_c2", "t3_abc")]


def test_cli_platform_reddit_keeps_the_files_thread(broker: EmbeddedBroker, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    posts_topic, dead_topic = unique_topics(broker.bootstrap, "threads")
    path = tmp_path / "plat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in THREAD))
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", posts_topic)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", dead_topic)
    assert cli_main(["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path),
                     "--platform", "reddit", "--state-dir", str(tmp_path / "state"),
                     "--topic", "gun_control"]) == 0
    got = sorted((json.loads(r.value) for r in consume(broker.bootstrap, posts_topic, 3)),
                 key=lambda p: p["id"])
    assert [(p["id"], p["platform"], p["parent_id"], p["conversation_id"]) for p in got] == [
        ("p1", "reddit", None, "p1"), ("p2", "reddit", "p1", "p1"), ("p3", "reddit", "p2", "p1")]
    assert consume(broker.bootstrap, dead_topic, 0) == []


# A Twitter API v2 export (the audit's): a reply names its parent in referenced_tweets
TWEETS_V2: list[dict[str, Any]] = [
    {"id": "1785000000000000001", "text": "Gun control now", "author_id": "11",
     "created_at": "2024-05-01T10:00:00.000Z", "conversation_id": "1785000000000000001"},
    {"id": "1785000000000000002", "text": "No, gun rights matter", "author_id": "12",
     "created_at": "2024-05-01T10:01:00.000Z", "conversation_id": "1785000000000000001",
     "referenced_tweets": [{"type": "quoted", "id": "1700000000000000009"},
                           {"type": "replied_to", "id": "1785000000000000001"}]},
]
# v1.1 (extended mode): id_str, full_text, user.id_str, in_reply_to_status_id(_str); no
# conversation_id. The JSON number ids of JavaScript tools may be rounded: the _str ones win.
TWEETS_V1: list[dict[str, Any]] = [
    {"id": 1785000000000000000, "id_str": "1785000000000000001", "full_text": "Gun control now",
     "created_at": "Wed May 01 10:00:00 +0000 2024", "user": {"id": 11, "id_str": "11"},
     "in_reply_to_status_id": None, "in_reply_to_status_id_str": None, "lang": "en"},
    {"id": 1785000000000000000, "id_str": "1785000000000000002", "full_text": "No, gun rights",
     "created_at": "Wed May 01 10:01:00 +0000 2024", "user": {"id": 12, "id_str": "12"},
     "in_reply_to_status_id": 1785000000000000000,
     "in_reply_to_status_id_str": "1785000000000000001", "lang": "en"},
    {"id": 1785000000000000003, "text": "compat mode: text and a number id only",
     "created_at": "Wed May 01 10:02:00 +0000 2024", "user": {"id_str": "13"},
     "in_reply_to_status_id": 1785000000000000002},
]


@pytest.mark.parametrize("rows", [TWEETS_V2, TWEETS_V1], ids=["v2", "v1"])
def test_twitter_preset_pairs_the_replies_of_v2_and_v1_exports(rows: list[dict[str, Any]]
                                                               ) -> None:
    posts = posts_of(RowMapper(parse_mapping(None, "twitter")), rows)
    assert_one_thread(posts)
    assert [(p["id"], p["parent_id"], p["author_id"]) for p in posts] == [
        (f"178500000000000000{i + 1}", None if i == 0 else f"178500000000000000{i}", f"1{i + 1}")
        for i in range(len(rows))]
    assert all(p["text"] for p in posts)


@pytest.mark.parametrize(("column", "expected"), [
    ("referenced_tweets.1.id", "1785000000000000001"),
    ("referenced_tweets.0.id", "1700000000000000009"),
    ("referenced_tweets[type=replied_to].id", "1785000000000000001"),
    ("referenced_tweets.2.id", None),  # past the end
    ("referenced_tweets[type=retweeted].id", None),
    ("text.0", None),  # a number indexes lists only
])
def test_a_dotted_map_path_indexes_and_selects_in_lists(column: str, expected: str | None
                                                         ) -> None:
    post = RowMapper(parse_mapping(f"parent_id={column}"))(TWEETS_V2[1])
    assert post is not None and post["parent_id"] == expected


def test_cli_twitter_v2_replies_pair_and_an_unread_parent_column_is_said(
        broker: EmbeddedBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    posts_topic, dead_topic = unique_topics(broker.bootstrap, "tweets")
    path = tmp_path / "tw2.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in TWEETS_V2))
    monkeypatch.setenv("POLARWATCH_BROKER_BOOTSTRAP_SERVERS", broker.bootstrap)
    monkeypatch.setenv("POLARWATCH_TOPICS_POSTS", posts_topic)
    monkeypatch.setenv("POLARWATCH_TOPICS_DEAD_LETTER", dead_topic)
    args = ["--config", str(REPO / "polarwatch.toml"), "ingest", "file", str(path), "--preset",
            "twitter", "--state-dir", str(tmp_path / "state"), "--topic", "gun_control"]
    assert cli_main(args) == 0
    got = sorted((json.loads(r.value) for r in consume(broker.bootstrap, posts_topic, 2)),
                 key=lambda p: p["id"])
    assert [(p["id"], p["parent_id"], p["conversation_id"]) for p in got] == [
        ("1785000000000000001", None, "1785000000000000001"),
        ("1785000000000000002", "1785000000000000001", "1785000000000000001")]
    assert "none of its" not in capsys.readouterr().err
    assert cli_main([*args, "--map", "parent_id=in_reply_to", "--restart"]) == 0
    err = capsys.readouterr().err
    assert err.count("none of its 2 rows has the column parent_id is read from "
                     "('in_reply_to'), so all their posts were stored as roots") == 1
