"""A temp DuckDB warehouse seeded with a small, fully known data set for the dashboard tests.

Two topics × 48 hourly windows, forecasts (a resolved spike on gun_control, an active dip on
climate_change, 12 future steps per topic), 13 posts forming 3 gun_control conversations with 10
scored interactions (one post carries an explanation), one stream batch committed 30 s ago.
Inserts name their columns so stages adding columns to the schema do not break the seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from polarwatch.warehouse import connect, init_schema

N_WINDOWS = 48
HORIZON = 12
TOPICS = {"gun_control": "Gun control", "climate_change": "Climate change"}
START = datetime(2026, 3, 1, tzinfo=UTC)
SPIKE_INDEX = 40  # gun_control window flagged as a spike (resolved: 7 windows old)
DIP_INDEX = 46  # climate_change window flagged as a dip (active: second-newest window)


@dataclass(frozen=True)
class Seed:
    path: Path
    names: dict[str, str]
    latest: dict[str, dict[str, float]]  # topic -> mean_score / extreme_share / volume
    spike_ts: datetime
    dip_ts: datetime
    conversations: dict[str, float]  # conversation_id -> mean score


WINDOW_COLUMNS = ("topic, window_start, window_end, volume, n_interactions, mean_score, "
                  "n_conversations, extreme_share, hostility_share, pro_share, anti_share, "
                  "updated_at")
FORECAST_COLUMNS = "topic, metric, ts, y, forecast, lower, upper, flag, model, created_at"


def _mean_score(topic_index: int, i: int) -> float:
    base = 4.0 + 2.0 * topic_index  # gun_control ~4, climate_change ~6
    value = base + 0.5 * ((i % 6) - 2.5) / 2.5
    if topic_index == 0 and i == SPIKE_INDEX:
        value = 8.75
    return round(value, 2)


def _windows() -> list[tuple]:
    rows = []
    for t, topic in enumerate(TOPICS):
        for i in range(N_WINDOWS):
            ws = START + timedelta(hours=i)
            rows.append((topic, ws, ws + timedelta(hours=1), 20 + i + 10 * t, 10 + i // 2,
                         _mean_score(t, i), 3 + t, round(0.1 + 0.005 * i + 0.1 * t, 3),
                         0.2, 0.4, 0.3, ws + timedelta(hours=1)))
    return rows


def _forecasts(created: datetime) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for t, topic in enumerate(TOPICS):
        for i in range(8, N_WINDOWS):  # in-sample one-step forecasts after a warm-up
            y = _mean_score(t, i)
            f = 4.0 + 2.0 * t
            flag = ("spike" if (t == 0 and i == SPIKE_INDEX)
                    else "dip" if (t == 1 and i == DIP_INDEX) else "none")
            rows.append((topic, "mean_score", START + timedelta(hours=i), y, f, f - 1.0,
                         f + 1.0, flag, "ets", created))
        for h in range(HORIZON):
            f = 4.0 + 2.0 * t + 0.02 * h
            rows.append((topic, "mean_score", START + timedelta(hours=N_WINDOWS + h), None, f,
                         f - 1.0 - 0.05 * h, f + 1.0 + 0.05 * h, "forecast", "ets", created))
    return rows


# conversation -> [(post_id, parent_id, score)]; root posts have parent None and no score.
THREADS = {
    "conv-hot": [("h0", None, None), ("h1", "h0", 9), ("h2", "h1", 8), ("h3", "h1", 10),
                 ("h4", "h0", 9)],
    "conv-calm": [("c0", None, None), ("c1", "c0", 2), ("c2", "c1", 3), ("c3", "c0", 1),
                  ("c4", "c2", 2)],
    "conv-early": [("e0", None, None), ("e1", "e0", 5), ("e2", "e1", 6)],
}
# conversation -> hours after START of its first post (conv-early is a day before the others)
THREAD_HOURS = {"conv-hot": 45, "conv-calm": 45, "conv-early": 20}
EXPLANATION = "reply disagrees and insults the parent (lexicon: 'idiot')"
ROOT_TEXT = {"conv-hot": "Ban assault weapons now, no more excuses",
             "conv-calm": "What do people think about universal background checks?",
             "conv-early": "Background checks poll out today"}


def _posts_and_interactions() -> tuple[list[dict], list[tuple]]:
    posts, interactions = [], []
    n = 0
    for conv, thread in THREADS.items():
        for post_id, parent, score in thread:
            created = START + timedelta(hours=THREAD_HOURS[conv], minutes=5 * n)
            n += 1
            posts.append({
                "id": post_id, "platform": "test", "author_id": f"u{n}",
                "text": ROOT_TEXT[conv] if parent is None else f"reply {post_id}",
                "created_at": created, "topic": "gun_control", "conversation_id": conv,
                "parent_id": parent, "lang": "en", "schema_version": 1, "stance": "pro",
                "affect": "no", "agreement": None if parent is None else "disagree",
                "emotion": "neutral", "intensity": 0.5, "stance_conf": 0.9, "affect_conf": 0.9,
                "agreement_conf": None if parent is None else 0.8, "emotion_conf": 0.9,
                "backend": "lexicon", "explanation": EXPLANATION if post_id == "h3" else None,
                "kafka_partition": 0,
                "kafka_offset": n, "ingested_at": created})
            if parent is not None:
                interactions.append((post_id, parent, conv, "gun_control", created, score,
                                     "test|rule"))
    return posts, interactions


def seed_warehouse(path: Path) -> Seed:
    init_schema(path)
    created = START + timedelta(hours=N_WINDOWS)
    posts, interactions = _posts_and_interactions()
    with connect(path) as con:
        con.executemany(f"INSERT INTO topic_windows ({WINDOW_COLUMNS}) VALUES "
                        f"(?,?,?,?,?,?,?,?,?,?,?,?)", _windows())
        con.executemany(f"INSERT INTO forecasts ({FORECAST_COLUMNS}) VALUES "
                        f"(?,?,?,?,?,?,?,?,?,?)", _forecasts(created))
        cols = list(posts[0])
        con.executemany(f"INSERT INTO posts ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", [list(p.values()) for p in posts])
        con.executemany("INSERT INTO interactions (post_id, parent_id, conversation_id, topic, "
                        "created_at, score, rule, platform) VALUES (?,?,?,?,?,?,?,'test')",
                        interactions)
        con.execute("INSERT INTO stream_batches (query, batch_id, n_posts, n_dead, "
                    "n_interactions, committed_at) VALUES ('posts', 7, ?, 1, ?, ?)",
                    [len(posts), len(interactions), datetime.now(UTC) - timedelta(seconds=30)])
    latest = {}
    for topic in TOPICS:
        last = [r for r in _windows() if r[0] == topic][-1]
        latest[topic] = {"mean_score": last[5], "extreme_share": last[7], "volume": last[3]}
    conversations = {conv: sum(s for _, _, s in thread if s is not None) / (len(thread) - 1)
                     for conv, thread in THREADS.items()}
    return Seed(path, dict(TOPICS), latest, START + timedelta(hours=SPIKE_INDEX),
                START + timedelta(hours=DIP_INDEX), conversations)


# conv-hot's id on a second platform: another conversation (a conversation is named by its
# platform and its id there, as a post is; its post ids repeat conv-hot's, as ids are unique
# per platform only). post_id -> (parent_id, score, minutes after conv-hot's first post).
TWIN_PLATFORM = "other"
TWIN = {"h0": (None, None, 1), "h1": ("h0", 1, 2), "h2": ("h0", 3, 3)}  # mean score 2
TWIN_ROOT = "Twin thread on the other platform"


def add_platform_twin(path: Path) -> None:
    """conv-hot again on TWIN_PLATFORM, a thread of its own: 3 posts, 2 scored replies."""
    with connect(path) as con:
        for post, (parent, score, minutes) in TWIN.items():
            created = START + timedelta(hours=THREAD_HOURS["conv-hot"], minutes=minutes)
            con.execute(
                "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
                "conversation_id, parent_id, schema_version, stance, affect, emotion, "
                "intensity, stance_conf, affect_conf, emotion_conf, backend) VALUES (?, ?, "
                "'tw', ?, ?, 'gun_control', 'conv-hot', ?, 1, 'anti', 'no', 'neutral', 0.5, "
                "0.9, 0.9, 0.9, 'lexicon')",
                [post, TWIN_PLATFORM, TWIN_ROOT if parent is None else f"twin {post}",
                 created, parent])
            if parent is not None:
                con.execute("INSERT INTO interactions (post_id, parent_id, conversation_id, "
                            "topic, created_at, score, rule, platform) VALUES "
                            "(?, ?, 'conv-hot', 'gun_control', ?, ?, 'test|rule', ?)",
                            [post, parent, created, score, TWIN_PLATFORM])


def add_window(path: Path, topic: str, mean_score: float) -> None:
    """Append one window after the seeded ones, the way the stream writer would (short-lived)."""
    ws = START + timedelta(hours=N_WINDOWS)
    with connect(path) as con:
        con.execute(f"INSERT OR REPLACE INTO topic_windows ({WINDOW_COLUMNS}) VALUES "
                    f"(?,?,?,?,?,?,?,?,?,?,?,?)",
                    [topic, ws, ws + timedelta(hours=1), 5, 2, mean_score, 1, 0.5, 0.2, 0.4,
                     0.3, datetime.now(UTC)])


@pytest.fixture(scope="session")
def seeded_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return seed_warehouse(tmp_path_factory.mktemp("warehouse") / "polarwatch.duckdb")


# Replies for the side-consistency check (scoring/side_check.py): one parent and its replies.
REPLY_TIME = datetime(2026, 11, 1, 10, tzinfo=UTC)


def reply_rows(topic: str, replies: Sequence[tuple[str | None, str]], parent_stance: str = "pro",
               platform: str = "test") -> list[list[Any]]:
    """One parent and its replies, each (agreement, stance)."""
    root = f"{topic}-root"
    rows = [[root, platform, topic, None, parent_stance, None]]
    rows += [[f"{topic}-{i}", platform, topic, root, stance, agreement]
             for i, (agreement, stance) in enumerate(replies)]
    return rows


def store_replies(path: Path, rows: list[list[Any]]) -> None:
    init_schema(path)
    with connect(path) as con:
        con.executemany(
            "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
            "conversation_id, parent_id, schema_version, stance, agreement, affect, emotion, "
            "intensity, stance_conf, affect_conf, emotion_conf, backend) VALUES "
            "(?, ?, 'a', 't', ?, ?, 'c', ?, 1, ?, ?, 'no', 'neutral', 0, 1, 1, 1, 'test')",
            [[pid, platform, REPLY_TIME, topic, parent, stance, agreement]
             for pid, platform, topic, parent, stance, agreement in rows])
