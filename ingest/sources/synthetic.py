"""A synthetic, event-driven corpus of reply threads for the configured topics.

Each topic gets a background level of polarization; one topic has a *scheduled* event (a vote,
a summit) with an escalation in the days before it (anticipatory polarization) and another a
*sudden* event (a shooting, a disaster) with a spike right after it that decays (reactive
polarization), the two patterns the paper found. Polarization drives how often replies take the
opposite stance, disagree and turn hostile, and how many people post. Texts are built from each
topic's stance terms in ``topics.toml`` plus hostility / agreement cues, so any backend can label
them. The corpus is deterministic for a given seed and start time.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from polarwatch.config import Topic
from polarwatch.records import Post, post_to_dict

BASE_POLARIZATION = 0.2  # calm background: mostly civil, same-stance replies
BASE_CONVERSATIONS_PER_HOUR = 6  # per topic
MEAN_REPLIES = 5.0
CALM_HOSTILITY = 0.04  # share of hostile posts when a topic is calm (rises with polarization)


@dataclass(frozen=True)
class SyntheticEvent:
    name: str
    topic: str
    at: datetime
    kind: str  # "scheduled" | "sudden"


def default_events(topics: Sequence[Topic], start: datetime, days: int) -> list[SyntheticEvent]:
    """A scheduled event on the first topic at 60% of the span, a sudden one on the second (or
    the same) topic at 80%."""
    span = timedelta(days=days)
    first = topics[0].id
    second = topics[1].id if len(topics) > 1 else first
    return [
        SyntheticEvent("scheduled vote", first, _hour(start + span * 0.6), "scheduled"),
        SyntheticEvent("sudden incident", second, _hour(start + span * 0.8), "sudden"),
    ]


def _hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def polarization_at(ts: datetime, topic: str, events: Sequence[SyntheticEvent]) -> float:
    """0..1 polarization level of `topic` at `ts` (the generator's ground truth)."""
    level = BASE_POLARIZATION
    for ev in events:
        if ev.topic != topic:
            continue
        hours = (ts - ev.at).total_seconds() / 3600
        if ev.kind == "scheduled" and -48 <= hours <= 6:
            # linear build-up over the 48 h before the event, easing off 6 h after
            ramp = (hours + 48) / 48 if hours <= 0 else 1 - hours / 6
            level += 0.65 * ramp
        elif ev.kind == "sudden" and hours >= 0:
            level += 0.7 * math.exp(-hours / 10)  # spike right after, e-folding time 10 h
    return min(level, 0.95)


class _Writer:
    """Builds post texts from a topic's stance terms and cue phrases."""

    NEUTRAL = ("Has anyone read the new report about {kw}?", "Lots of talk about {kw} today.",
               "What do people here think about {kw}?", "Saw a long thread on {kw} this morning.")
    PRO = ("We need {term} now.", "Time for {term}.", "{term} is the only sane path.",
           "I support {term} and I will vote for it.")
    ANTI = ("{term}, plain and simple.", "Stand up for {term}.", "Remember {term}.",
            "I stand with {term} and I will vote that way.")
    HOSTILE = ("Only idiots think otherwise.", "You people are pathetic.",
               "The other side are brainwashed sheep.", "Those clowns are disgusting.",
               "Shut up, you hypocrites.")
    AGREE = ("Exactly, well said.", "So true.", "Couldn't agree more.", "Spot on.")
    DISAGREE = ("That's nonsense.", "You're wrong about this.", "I disagree.",
                "That is just misinformation.")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def text(self, topic: Topic, stance: str, hostile: bool, agreement: str | None) -> str:
        r = self.rng
        parts = []
        if agreement == "agree":
            parts.append(r.choice(self.AGREE))
        elif agreement == "disagree":
            parts.append(r.choice(self.DISAGREE))
        if stance == "pro" and topic.pro_terms:
            parts.append(r.choice(self.PRO).format(term=r.choice(topic.pro_terms)))
        elif stance == "anti" and topic.anti_terms:
            parts.append(r.choice(self.ANTI).format(term=r.choice(topic.anti_terms)))
        else:
            kw = r.choice(topic.keywords) if topic.keywords else topic.name.lower()
            parts.append(r.choice(self.NEUTRAL).format(kw=kw))
        if hostile:
            parts.append(r.choice(self.HOSTILE))
        text = " ".join(parts)
        return text[0].upper() + text[1:]


def generate(topics: Sequence[Topic], *, days: int = 14, seed: int = 7,
             start: datetime | None = None, events: Sequence[SyntheticEvent] | None = None,
             rate: float = 1.0) -> Iterator[Post]:
    """Yield posts in creation-time order (replies always after their parent).

    `rate` scales the number of conversations per hour (1.0 ≈ 6 per topic per hour plus more
    while a topic is polarized).
    """
    if not topics:
        raise ValueError("synthetic corpus needs at least one topic")
    rng = random.Random(seed)
    writer = _Writer(rng)
    if start is None:
        start = _hour(datetime.now(UTC) - timedelta(days=days))
    events = list(events) if events is not None else default_events(topics, start, days)
    posts: list[Post] = []
    n_conv = 0
    for hour in range(days * 24):
        t0 = start + timedelta(hours=hour)
        for topic in topics:
            p = polarization_at(t0, topic.id, events)
            lam = rate * BASE_CONVERSATIONS_PER_HOUR * (1 + 3 * (p - BASE_POLARIZATION))
            for _ in range(_poisson(rng, lam)):
                n_conv += 1
                posts.extend(_thread(rng, writer, topic, f"c{seed}-{n_conv}", t0, p))
        # emit hour by hour so memory stays bounded; threads may spill into the next hour
        posts.sort(key=lambda q: q.created_at)
        cutoff = t0 + timedelta(hours=1)
        ready = [q for q in posts if q.created_at < cutoff]
        posts = [q for q in posts if q.created_at >= cutoff]
        yield from ready
    yield from sorted(posts, key=lambda q: q.created_at)


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method; lam is small (< 40)
    limit, k, prod = math.exp(-lam), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


def _thread(rng: random.Random, writer: _Writer, topic: Topic, conv: str, t0: datetime,
            p: float) -> list[Post]:
    created = t0 + timedelta(seconds=rng.uniform(0, 3600))
    root_stance = rng.choice(("pro", "anti", "pro", "anti", "unclear"))
    heat = max(p - BASE_POLARIZATION, 0.0)  # 0 when calm, up to 0.75 at the peak
    root_hostile = rng.random() < CALM_HOSTILITY + 0.6 * heat
    thread = [(f"{conv}-0", root_stance, created)]
    posts = [_post(f"{conv}-0", conv, None, topic, created, rng,
                   writer.text(topic, root_stance, root_hostile, None))]
    n_replies = min(_poisson(rng, MEAN_REPLIES * (1 + p)), 40)
    for i in range(1, n_replies + 1):
        parent_id, parent_stance, parent_at = rng.choice(thread)
        if parent_stance == "unclear":
            stance = rng.choice(("pro", "anti"))
        elif rng.random() < 0.25 + 0.45 * p:  # cross-stance replies grow with polarization
            stance = "anti" if parent_stance == "pro" else "pro"
        elif rng.random() < 0.1:
            stance = "unclear"
        else:
            stance = parent_stance
        if stance == parent_stance:
            agreement = "agree" if rng.random() < 0.7 else None
        else:
            agreement = "disagree" if rng.random() < 0.8 else None
        hostile = rng.random() < CALM_HOSTILITY + 1.0 * heat
        at = parent_at + timedelta(seconds=rng.expovariate(1 / 600))
        pid = f"{conv}-{i}"
        thread.append((pid, stance, at))
        posts.append(_post(pid, conv, parent_id, topic, at, rng,
                           writer.text(topic, stance, hostile, agreement)))
    return posts


def _post(pid: str, conv: str, parent: str | None, topic: Topic, at: datetime,
          rng: random.Random, text: str) -> Post:
    return Post(id=pid, platform="synthetic", author_id=f"u{rng.randrange(5000)}", text=text,
                created_at=at, topic=topic.id, conversation_id=conv, parent_id=parent, lang="en")


def with_invalid(posts: Iterator[Post], every: int = 500, seed: int = 7) -> Iterator[bytes]:
    """Encode posts as JSON bytes and slip in one malformed record every `every` posts
    (bad JSON, a missing field, a naive timestamp, an oversize text) to exercise dead-lettering."""
    rng = random.Random(seed)
    for i, post in enumerate(posts, 1):
        obj = post_to_dict(post)
        yield json.dumps(obj).encode()
        if i % every == 0:
            kind = rng.randrange(4)
            bad = dict(obj, id=f"{obj['id']}-bad")
            if kind == 0:
                yield b'{"id": "broken", "text": '
            elif kind == 1:
                del bad["text"]
                yield json.dumps(bad).encode()
            elif kind == 2:
                bad["created_at"] = "2024-01-01T00:00:00"
                yield json.dumps(bad).encode()
            else:
                bad["text"] = "x" * 20_000
                yield json.dumps(bad).encode()
