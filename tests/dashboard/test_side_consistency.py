"""Do a topic's stance sides follow its replies' agreement? The overview's check, on a real
DuckDB file: agreeing replies should take their parent's side, disagreeing ones the other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboard import queries
from dashboard.analysis import SIDES_MIN_PAIRS, sides_verdict
from polarwatch.warehouse import connect, init_schema

T0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
OTHER = {"pro": "anti", "anti": "pro"}


def reply_rows(topic: str, replies: list[tuple[str, str]], parent_stance: str = "pro",
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
            [[pid, platform, T0, topic, parent, stance, agreement]
             for pid, platform, topic, parent, stance, agreement in rows])


def test_sides_that_follow_agreement_and_sides_at_random(tmp_path: Path) -> None:
    n = SIDES_MIN_PAIRS
    follows = ([("agree", "pro")] * (n - 5) + [("agree", "anti")] * 5
               + [("disagree", "anti")] * (n - 10) + [("disagree", "pro")] * 10)
    coin = ([("agree", "pro"), ("agree", "anti")] * n
            + [("disagree", "pro"), ("disagree", "anti")] * n)
    ignored = [("unclear", "pro"), ("agree", "unclear"), (None, "pro")]  # no side or no verdict
    rows = reply_rows("follows", follows + ignored) + reply_rows("coin", coin)
    rows += reply_rows("no-side", [("agree", "pro")] * n, parent_stance="unclear")
    rows += [["stray", "elsewhere", "coin", "coin-root", "anti", "agree"]]  # parent elsewhere
    path = tmp_path / "w.duckdb"
    store_replies(path, rows)

    sides = queries.side_consistency(path).set_index("topic")
    assert set(sides.index) == {"follows", "coin"}  # no pair with two sides in "no-side"
    f, c = sides.loc["follows"], sides.loc["coin"]
    assert (f["n_agree"], f["n_disagree"]) == (n, n)
    assert f["agree_same"] == pytest.approx((n - 5) / n)
    assert f["disagree_opposite"] == pytest.approx((n - 10) / n)
    assert (c["n_agree"], c["n_disagree"]) == (2 * n, 2 * n)
    assert c["agree_same"] == pytest.approx(0.5) and c["disagree_opposite"] == pytest.approx(0.5)

    random_f, line_f = sides_verdict(f)  # type: ignore[misc]
    random_c, line_c = sides_verdict(c)  # type: ignore[misc]
    assert not random_f and line_f.startswith("Sides against agreement")
    assert random_c and "sides look random" in line_c and "hostility" in line_c


def test_too_few_pairs_say_nothing() -> None:
    row = {"n_agree": SIDES_MIN_PAIRS, "n_disagree": SIDES_MIN_PAIRS - 1,
           "agree_same": 0.5, "disagree_opposite": 0.5}
    assert sides_verdict(row) is None
    assert sides_verdict({"n_agree": None, "n_disagree": None}) is None
    assert sides_verdict({**row, "n_disagree": SIDES_MIN_PAIRS}) is not None
