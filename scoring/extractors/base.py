"""The tiny backend interface every extractor implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from polarwatch.config import Topic
from polarwatch.records import Labels


@dataclass(frozen=True, slots=True)
class PostPair:
    """What an extractor sees: a post, its topic and (for replies) its parent's text."""

    post_id: str
    text: str
    topic: str
    parent_text: str | None = None  # None for a root, or when the parent is not known yet


class Extractor(ABC):
    """Labels a batch of posts. Implementations load their model once, in ``__init__``.

    Instances are built inside each Spark executor iterator, so constructor arguments must be
    picklable (topics and plain options), never loaded models.
    """

    name: str = "base"

    def __init__(self, topics: Sequence[Topic]) -> None:
        self.topics = {t.id: t for t in topics}

    @abstractmethod
    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        """Return one Labels per input, in order. Roots get ``agreement=None``."""
