"""A temp DuckDB warehouse seeded with a small, fully known data set for the dashboard tests.

Two topics × 48 hourly windows, forecasts (one spike on gun_control, 12 future steps per topic),
10 posts forming 2 gun_control conversations with 8 scored interactions, one stream batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from polarwatch.warehouse import connect, init_schema

N_WINDOWS = 48
HORIZON = 12
TOPICS = {"gun_control": "Gun control", "climate_change": "Climate change"}
START = datetime(2026, 3, 1, tzinfo=UTC)
SPIKE_INDEX = 40  # gun_control window flagged as a spike


@dataclass(frozen=True)
class Seed:
    path: Path
    names: dict[str, str]
    latest: dict[str, dict[str, float]]  # topic -> mean_score / extreme_share / volume
    spike_ts: datetime
    conversations: dict[str, float]  # conversation_id -> mean score


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


def _forecasts(created: datetime) -> list[tuple]:
    rows = []
    for t, topic in enumerate(TOPICS):
        for i in range(8, N_WINDOWS):  # in-sample one-step forecasts after a warm-up
            y = _mean_score(t, i)
            f = 4.0 + 2.0 * t
            flag = "spike" if (t == 0 and i == SPIKE_INDEX) else "none"
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
}
ROOT_TEXT = {"conv-hot": "Ban assault weapons now, no more excuses",
             "conv-calm": "What do people think about universal background checks?"}


def _posts_and_interactions() -> tuple[list[dict], list[tuple]]:
    posts, interactions = [], []
    n = 0
    for conv, thread in THREADS.items():
        for post_id, parent, score in thread:
            created = START + timedelta(hours=45, minutes=5 * n)
            n += 1
            posts.append({
                "id": post_id, "platform": "test", "author_id": f"u{n}",
                "text": ROOT_TEXT[conv] if parent is None else f"reply {post_id}",
                "created_at": created, "topic": "gun_control", "conversation_id": conv,
                "parent_id": parent, "lang": "en", "schema_version": 1, "stance": "pro",
                "affect": "no", "agreement": None if parent is None else "disagree",
                "emotion": "neutral", "intensity": 0.5, "stance_conf": 0.9, "affect_conf": 0.9,
                "agreement_conf": None if parent is None else 0.8, "emotion_conf": 0.9,
                "backend": "lexicon", "explanation": None, "kafka_partition": 0,
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
        con.executemany("INSERT INTO topic_windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        _windows())
        con.executemany("INSERT INTO forecasts VALUES (?,?,?,?,?,?,?,?,?,?)",
                        _forecasts(created))
        cols = list(posts[0])
        con.executemany(f"INSERT INTO posts ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", [list(p.values()) for p in posts])
        con.executemany("INSERT INTO interactions VALUES (?,?,?,?,?,?,?)", interactions)
        con.execute("INSERT INTO stream_batches VALUES ('posts', 7, ?, 1, ?, ?)",
                    [len(posts), len(interactions), datetime.now(UTC) - timedelta(seconds=30)])
    latest = {}
    for topic in TOPICS:
        last = [r for r in _windows() if r[0] == topic][-1]
        latest[topic] = {"mean_score": last[5], "extreme_share": last[7], "volume": last[3]}
    conversations = {conv: sum(s for _, p, s in thread if p is not None) / (len(thread) - 1)
                     for conv, thread in THREADS.items()}
    return Seed(path, dict(TOPICS), latest, START + timedelta(hours=SPIKE_INDEX), conversations)


def add_window(path: Path, topic: str, mean_score: float) -> None:
    """Append one window after the seeded ones, the way the stream writer would (short-lived)."""
    ws = START + timedelta(hours=N_WINDOWS)
    with connect(path) as con:
        con.execute("INSERT OR REPLACE INTO topic_windows VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [topic, ws, ws + timedelta(hours=1), 5, 2, mean_score, 1, 0.5, 0.2, 0.4,
                     0.3, datetime.now(UTC)])


@pytest.fixture(scope="session")
def seeded_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return seed_warehouse(tmp_path_factory.mktemp("warehouse") / "polarwatch.duckdb")
