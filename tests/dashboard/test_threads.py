"""Thread order with reply cycles (dashboard/threads.py): every stored post is shown once, a
cycle from its earliest post, and the walk ends however the parents loop."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from dashboard.threads import cycles_in, reply_cycles, thread_order

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _posts(*rows: tuple[str, str | None]) -> pd.DataFrame:
    """(id, parent) rows, one minute apart in the order given."""
    return pd.DataFrame([{"id": i, "parent_id": p, "created_at": T0 + timedelta(minutes=n)}
                         for n, (i, p) in enumerate(rows)])


def test_a_conversation_that_is_only_a_cycle_is_shown_from_its_earliest_post() -> None:
    order = thread_order(_posts(("a", "c"), ("b", "a"), ("c", "b")), 100, 100)
    assert order.to_dict("records") == [{"id": "a", "depth": 0, "in_cycle": True},
                                        {"id": "b", "depth": 1, "in_cycle": True},
                                        {"id": "c", "depth": 2, "in_cycle": True}]
    assert cycles_in(order) == (3, ["a"], True)


def test_a_cycle_beside_a_rooted_thread_with_replies_hanging_off_it() -> None:
    posts = _posts(("r", None), ("r1", "r"), ("x", "y"), ("y", "x"), ("x1", "x"),
                   ("lost", "missing"), ("self", "self"))
    order = thread_order(posts, 100, 100)
    assert list(zip(order["id"], order["depth"], order["in_cycle"], strict=True)) == [
        ("r", 0, False), ("r1", 1, False), ("x", 0, True), ("y", 1, True), ("x1", 1, False),
        ("lost", 0, False), ("self", 0, True)]
    assert cycles_in(order) == (3, ["x", "self"], False)
    assert sorted(map(sorted, reply_cycles(dict(zip(posts["id"], posts["parent_id"],
                                                        strict=True))))) == [["self"], ["x", "y"]]


def test_limits_cut_a_long_cycle_and_nothing_repeats() -> None:
    n = 5_000  # one long loop: p0 <- p1 <- ... <- p4999 <- p0
    posts = _posts(*[(f"p{i}", f"p{(i - 1) % n}") for i in range(n)])
    order = thread_order(posts, 10_000, 10_000)
    assert len(order) == n and order["id"].is_unique and order["depth"].max() == n - 1
    assert list(thread_order(posts, 3, 10_000)["id"]) == ["p0", "p1", "p2"]
    assert len(thread_order(posts, 10_000, 2)) == 3  # depths 0, 1 and 2


def test_a_tree_keeps_its_order() -> None:
    order = thread_order(_posts(("h0", None), ("h1", "h0"), ("h2", "h1"), ("h3", "h1"),
                                ("h4", "h0")), 100, 100)
    assert list(order["id"]) == ["h0", "h1", "h2", "h3", "h4"]
    assert list(order["depth"]) == [0, 1, 2, 2, 1] and not order["in_cycle"].any()
    assert cycles_in(order) == (0, [], False)
