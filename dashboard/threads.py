"""A conversation's posts in thread order (pure: a frame of ids and parents in, the order out).

A post's parent is another post of the conversation, or none (an opening post), or one that is
not stored (the reply is shown at depth 0). The record contract lets any id be a parent, so
replies can also form a cycle (a replies to c, c to b, b to a): no post of it reaches an
opening post. Each such cycle is shown as a thread of its own, from its earliest post, and its
posts are marked ``in_cycle`` so the page can say why the conversation has no opening post.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd

ORDER_COLUMNS = ["id", "depth", "in_cycle"]


def _key(created: dict[str, Any], post: str) -> tuple[Any, str]:
    return created[post], post  # siblings by time, then id (as the thread query did)


def reply_cycles(parent: dict[str, str | None]) -> list[list[str]]:
    """Every cycle of replies in ``parent`` (post -> parent id; None or an id not in it: no
    parent here), each as its posts in reply order (each replies to the next, the last to the
    first). Linear: each post is walked once."""
    state: dict[str, int] = {}  # 1: on the walk being made, 2: done
    cycles = []
    for start in parent:
        walk: list[str] = []
        post: str | None = start
        while post is not None and post in parent and post not in state:
            state[post] = 1
            walk.append(post)
            post = parent[post]
        if post is not None and state.get(post) == 1:  # came back onto this walk: a cycle
            cycles.append(walk[walk.index(post):])
        for p in walk:
            state[p] = 2
    return cycles


def thread_order(posts: pd.DataFrame, max_posts: int, max_depth: int) -> pd.DataFrame:
    """The first ``max_posts`` of ``posts`` (id, parent_id, created_at) in thread order:
    depth-first from each opening post (or reply whose parent is not stored) and from the
    earliest post of each reply cycle, siblings by time, replies deeper than ``max_depth`` left
    out. Columns: id, depth (0 at the start of each thread), in_cycle."""
    posts = posts.drop_duplicates("id")
    ids = [str(i) for i in posts["id"]]
    parent = {i: (None if pd.isna(p) else str(p))
              for i, p in zip(ids, posts["parent_id"], strict=True)}
    created = dict(zip(ids, posts["created_at"], strict=True))
    children: dict[str, list[str]] = defaultdict(list)
    starts: list[str] = []
    for post, up in parent.items():
        (children[up] if up is not None and up in parent else starts).append(post)
    cycles = reply_cycles(parent)
    in_cycle = {p for cycle in cycles for p in cycle}
    starts += [min(cycle, key=lambda p: _key(created, p)) for cycle in cycles]
    for kids in children.values():
        kids.sort(key=lambda p: _key(created, p), reverse=True)  # popped from the end
    stack = [(p, 0) for p in sorted(starts, key=lambda p: _key(created, p), reverse=True)]
    seen: set[str] = set()
    rows: list[tuple[str, int, bool]] = []
    while stack and len(rows) < max_posts:
        post, depth = stack.pop()
        seen.add(post)
        rows.append((post, depth, post in in_cycle))
        if depth < max_depth:
            # a cycle's first post is a reply to its last: not walked again
            stack.extend((kid, depth + 1) for kid in children[post] if kid not in seen)
    return pd.DataFrame(rows, columns=ORDER_COLUMNS)


def cycles_in(order: pd.DataFrame) -> tuple[int, list[str], bool]:
    """(posts in reply cycles, the post each cycle is shown from, whether no thread of the
    conversation starts at an opening post) for a :func:`thread_order` frame."""
    if order.empty or not order["in_cycle"].any():
        return 0, [], False
    starts = order[order["depth"] == 0]
    return (int(order["in_cycle"].sum()), [str(p) for p in starts.loc[starts["in_cycle"], "id"]],
            bool(starts["in_cycle"].all()))
