"""Fixtures the scoring tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from polarwatch.config import Topic, load_topics

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def topics() -> list[Topic]:
    """The repository's topics.toml (module- and session-scoped extractors are built on it)."""
    return load_topics(REPO / "topics.toml")
