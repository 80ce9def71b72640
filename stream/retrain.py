"""``polarwatch train --from-warehouse``: a topic's stance head from the analysts' labels.

Reads the latest stance label of each post of the topic from ``labels`` (written by the
dashboard's Label page) with the post's text from ``posts``
(``polarwatch.reads.read_stance_labels``, under the topic's pro/anti now: a label given under
them swapped is flipped, one given under other descriptions is left out and counted) and runs
:func:`scoring.retrain_topic.train_topic` (the dashboard's Retrain button runs the same two):
the head is written only when its cross-validated F_avg beats the current head's on the same
labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from polarwatch.config import Config
from polarwatch.reads import read_stance_labels
from scoring.retrain_topic import TopicRetrain, prepare, train_topic


def train_from_warehouse(cfg: Config, topic_id: str, output: Path | None = None,
                         seed: int = 0, progress: bool = False,
                         say: Callable[[str], None] = lambda _: None,
                         extractor: Any = None) -> TopicRetrain:
    """Check the config, read the labels, then :func:`scoring.retrain_topic.train_topic`."""
    topic, out = prepare(cfg, topic_id, output)
    texts, labels = read_stance_labels(cfg.warehouse_path, topic.id, (topic.pro, topic.anti))
    return train_topic(cfg, topic, out, texts, labels, seed=seed, progress=progress, say=say,
                       extractor=extractor)
