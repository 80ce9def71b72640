"""The synthetic corpus: deterministic, well-ordered, valid, and shaped by its events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ingest.sources.synthetic import (
    BASE_POLARIZATION,
    SyntheticEvent,
    default_events,
    generate,
    polarization_at,
    with_invalid,
)
from polarwatch.config import Topic, load_topics
from polarwatch.records import Post, post_to_dict
from polarwatch.validation import validate_post
from scoring.extractors import PostPair, get_extractor

REPO = Path(__file__).resolve().parents[2]
START = datetime(2024, 3, 1, tzinfo=UTC)
DAYS = 10
SEED = 11


@pytest.fixture(scope="module")
def topics() -> list[Topic]:
    return load_topics(REPO / "topics.toml")


@pytest.fixture(scope="module")
def events(topics: list[Topic]) -> list[SyntheticEvent]:
    return default_events(topics, START, DAYS)


@pytest.fixture(scope="module")
def corpus(topics: list[Topic]) -> list[Post]:
    return list(generate(topics, days=DAYS, seed=SEED, start=START))


def test_default_events(events: list[SyntheticEvent]) -> None:
    scheduled, sudden = events
    assert (scheduled.kind, scheduled.topic) == ("scheduled", "gun_control")
    assert (sudden.kind, sudden.topic) == ("sudden", "climate_change")
    assert scheduled.at == START + timedelta(days=6)  # 60 % of 10 days, on the hour
    assert sudden.at == START + timedelta(days=8)  # 80 %
    assert scheduled.at.minute == scheduled.at.second == 0


def test_deterministic_for_a_fixed_seed_and_start(topics: list[Topic],
                                                  corpus: list[Post]) -> None:
    again = list(generate(topics, days=DAYS, seed=SEED, start=START))
    assert again == corpus
    other = list(generate(topics, days=DAYS, seed=SEED + 1, start=START))
    assert other != corpus


def test_corpus_is_large_and_covers_every_topic(topics: list[Topic],
                                                corpus: list[Post]) -> None:
    assert len(corpus) > 5_000
    assert {p.topic for p in corpus} == {t.id for t in topics}
    assert all(p.created_at >= START for p in corpus)
    assert sum(p.parent_id is None for p in corpus) > 1_000


def test_ids_are_unique(corpus: list[Post]) -> None:
    assert len({p.id for p in corpus}) == len(corpus)


def test_stream_is_time_ordered_and_parents_come_first(corpus: list[Post]) -> None:
    times = [p.created_at for p in corpus]
    assert times == sorted(times)
    seen: dict[str, Post] = {}
    n_replies = 0
    for post in corpus:
        if post.parent_id is None:
            assert post.conversation_id == post.id.rsplit("-", 1)[0]
        else:
            n_replies += 1
            parent = seen.get(post.parent_id)
            assert parent is not None, f"{post.id}: parent {post.parent_id} not seen yet"
            assert parent.created_at <= post.created_at
            assert parent.conversation_id == post.conversation_id
            assert parent.topic == post.topic
        seen[post.id] = post
    assert n_replies > len(corpus) // 2


def test_every_post_validates_against_the_json_schema(corpus: list[Post]) -> None:
    reasons = {validate_post(json.loads(json.dumps(post_to_dict(p)))) for p in corpus}
    assert reasons == {None}


def test_scheduled_event_builds_up_before_it(events: list[SyntheticEvent]) -> None:
    ev = events[0]
    level = [polarization_at(ev.at + timedelta(hours=h), ev.topic, events)
             for h in (-72, -48, -36, -24, -12, -1, 0)]
    assert level[0] == pytest.approx(BASE_POLARIZATION)
    assert level[1] == pytest.approx(BASE_POLARIZATION)
    assert all(a < b for a, b in zip(level[1:], level[2:], strict=False))  # strictly rising
    assert level[-1] > BASE_POLARIZATION + 0.5
    # it eases off after the event, and other topics are not affected
    assert polarization_at(ev.at + timedelta(hours=3), ev.topic, events) < level[-1]
    assert polarization_at(ev.at + timedelta(hours=12), ev.topic, events) == \
        pytest.approx(BASE_POLARIZATION)
    assert polarization_at(ev.at - timedelta(hours=1), "climate_change", events) == \
        pytest.approx(BASE_POLARIZATION)


def test_sudden_event_jumps_right_after_and_decays(events: list[SyntheticEvent]) -> None:
    ev = events[1]
    before = polarization_at(ev.at - timedelta(minutes=1), ev.topic, events)
    at = polarization_at(ev.at, ev.topic, events)
    after = [polarization_at(ev.at + timedelta(hours=h), ev.topic, events)
             for h in (1, 6, 24, 72)]
    assert before == pytest.approx(BASE_POLARIZATION)  # no warning before a sudden event
    assert at > BASE_POLARIZATION + 0.6
    assert at >= after[0] > after[1] > after[2] > after[3]
    assert after[3] == pytest.approx(BASE_POLARIZATION, abs=0.01)
    assert all(0.0 <= x <= 0.95 for x in (at, *after))


def test_volume_follows_polarization(corpus: list[Post], events: list[SyntheticEvent]) -> None:
    ev = events[1]

    def volume(start: datetime) -> int:
        end = start + timedelta(hours=12)
        return sum(p.topic == ev.topic and start <= p.created_at < end for p in corpus)

    assert volume(ev.at) > 1.5 * volume(START)


def test_hostility_rises_before_the_scheduled_event(
        topics: list[Topic], corpus: list[Post], events: list[SyntheticEvent]) -> None:
    ev = events[0]
    lexicon = get_extractor("lexicon", topics)

    def hostile_share(start: datetime, end: datetime) -> tuple[float, int]:
        posts = [p for p in corpus if p.topic == ev.topic and start <= p.created_at < end]
        labels = lexicon.extract([PostPair(p.id, p.text, p.topic) for p in posts])
        return sum(lab.affect == "yes" for lab in labels) / len(posts), len(posts)

    calm, n_calm = hostile_share(START, START + timedelta(days=2))
    heated, n_heated = hostile_share(ev.at - timedelta(hours=24), ev.at)
    assert n_calm > 300 and n_heated > 200
    assert calm < 0.35
    assert heated > 0.5
    assert heated > 2 * calm


@pytest.mark.parametrize("every", [50, 97])
def test_with_invalid_slips_in_the_expected_bad_records(corpus: list[Post], every: int) -> None:
    posts = corpus[:1000]
    raws = list(with_invalid(iter(posts), every=every, seed=3))
    assert len(raws) == len(posts) + len(posts) // every
    good, bad_reasons = [], []
    for raw in raws:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            bad_reasons.append("malformed JSON")
            continue
        reason = validate_post(obj)
        if reason is None:
            good.append(obj)
        else:
            bad_reasons.append(reason)
    assert len(bad_reasons) == len(posts) // every
    assert good == [post_to_dict(p) for p in posts]  # the valid ones are untouched, in order
    # with enough bad records every kind of defect appears
    if every == 50:
        kinds = {r.split(":")[0] for r in bad_reasons}
        assert {"malformed JSON", "created_at", "text"} <= kinds
        assert any("missing" in r and "text" in r for r in bad_reasons)


def test_with_invalid_is_deterministic(corpus: list[Post]) -> None:
    posts = corpus[:300]
    assert list(with_invalid(iter(posts), every=10, seed=1)) == \
        list(with_invalid(iter(posts), every=10, seed=1))


def test_generate_needs_a_topic() -> None:
    with pytest.raises(ValueError, match="at least one topic"):
        list(generate([], days=1, start=START))


def test_single_topic_gets_both_events(topics: list[Topic]) -> None:
    (ev1, ev2) = default_events(topics[:1], START, 5)
    assert ev1.topic == ev2.topic == topics[0].id
    posts = list(generate(topics[:1], days=2, seed=1, start=START))
    assert posts and {p.topic for p in posts} == {topics[0].id}
