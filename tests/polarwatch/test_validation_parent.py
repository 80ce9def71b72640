"""A post that names itself, or nothing ("") as its parent is a conversation root
(polarwatch.validation.parent_of), as the file importers' RowMapper already made a self-parent."""

from __future__ import annotations

from typing import Any

import pytest

from polarwatch.validation import parent_of, post_from_dict


def _post(**changes: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": "k13", "platform": "kafka", "author_id": "a",
                           "text": "gun control now", "created_at": "2024-05-02T10:00:00Z",
                           "topic": "gun_control", "conversation_id": "kc"}
    obj.update(changes)
    return obj


@pytest.mark.parametrize(("parent", "expected"), [
    ("k13", None),  # itself: a root, never a reply to itself
    ("", None),  # empty: no parent (not an orphan waiting for post "")
    (None, None),
    ("k12", "k12"),
])
def test_a_self_or_empty_parent_makes_a_root(parent: str | None, expected: str | None) -> None:
    assert parent_of(_post(parent_id=parent)) == expected
    assert post_from_dict(_post(parent_id=parent)).parent_id == expected


def test_an_absent_parent_is_a_root() -> None:
    assert parent_of(_post()) is None
    assert post_from_dict(_post()).parent_id is None
