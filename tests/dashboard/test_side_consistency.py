"""Do a topic's stance sides follow its replies' agreement? The overview's check, on a real
DuckDB file: agreeing replies should take their parent's side, disagreeing ones the other."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import queries
from dashboard.analysis import sides_verdict
from scoring.side_check import SIDES_MIN_PAIRS

from .conftest import reply_rows, store_replies


def test_sides_that_follow_agreement_and_sides_at_random(tmp_path: Path) -> None:
    n = SIDES_MIN_PAIRS
    follows = ([("agree", "pro")] * (n - 5) + [("agree", "anti")] * 5
               + [("disagree", "anti")] * (n - 10) + [("disagree", "pro")] * 10)
    coin = ([("agree", "pro"), ("agree", "anti")] * n
            + [("disagree", "pro"), ("disagree", "anti")] * n)
    ignored = [("unclear", "pro"), ("agree", "unclear"), (None, "pro")]  # no side or no verdict
    rows = reply_rows("follows", [*follows, *ignored]) + reply_rows("coin", coin)
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
    assert random_c and line_c.startswith(":orange-badge[sides look random] of the stored replies")
    assert "hostility, not sides" in line_c
