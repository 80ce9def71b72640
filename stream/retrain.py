"""``polarwatch train --from-warehouse``: a topic's stance head from the analysts' labels.

Reads the latest stance label of each post of the topic from ``labels`` (written by the
dashboard's Label page) with the post's text from ``posts``, and runs
:func:`scoring.retrain.retrain_stance` against the `learned` backend as it serves the topic
now. The head is written only when its cross-validated F_avg beats the current head's on the
same labels, to ``[extractor] learned_topic_heads_dir``/``stance_<topic>.npz`` by default,
where the backend finds it when it next starts (the stream loads its extractor once per
worker: restart it, :data:`RESTART_HINT`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polarwatch.config import Config
from polarwatch.errors import BackendError, ConfigError, SchemaError
from polarwatch.warehouse import connect, missing_columns, schema_version
from scoring.retrain import FOLDS, RetrainResult, retrain_stance, usable_labels, write_head

# the latest label of each post (one analyst's correction, or a second analyst, wins)
STANCE_LABELS_SQL = """
    SELECT p.text, l.value FROM (
        SELECT platform, post_id, value,
               row_number() OVER (PARTITION BY platform, post_id
                                  ORDER BY labelled_at DESC, labeller) AS k
        FROM labels WHERE task = 'stance' AND topic = ?) l
    JOIN posts p ON p.platform = l.platform AND p.id = l.post_id
    WHERE l.k = 1
    ORDER BY l.platform, l.post_id
"""
RESTART_HINT = ("the stream loads its heads when it starts: stop `polarwatch stream "
                "--continuous` (Ctrl-C, or SIGTERM to its process) and start it again to label "
                "new posts with it; `polarwatch relabel --since 7d --topic {topic}` labels "
                "stored posts again")


@dataclass
class WarehouseRetrain:
    result: RetrainResult
    output: Path
    written: bool


def read_stance_labels(path: Path, topic: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of the topic's stance-labelled posts that are still stored."""
    with connect(path, read_only=True) as con:
        if missing_columns(con, "labels"):
            raise SchemaError(f"{path} has no labels table yet (schema version "
                              f"{schema_version(con)}): label posts on the dashboard's Label "
                              f"page first")
        rows = con.execute(STANCE_LABELS_SQL, [topic]).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]



def default_output(cfg: Config, topic: str) -> Path:
    heads = cfg.extractor_settings.learned_topic_heads_dir
    if not heads:
        raise ConfigError("[extractor] learned_topic_heads_dir is empty, so the learned backend "
                          "loads no trained topic heads: set it, or pass -o FILE")
    return Path(heads) / f"stance_{topic}.npz"


def train_from_warehouse(cfg: Config, topic_id: str, output: Path | None = None,
                         seed: int = 0, progress: bool = False,
                         say: Callable[[str], None] = lambda _: None) -> WarehouseRetrain:
    """Read, fit, cross-validate, compare; write the head only when it wins. `say` gets one
    progress line before the slow part."""
    if cfg.extractor.backend != "learned":
        raise BackendError(f"train --from-warehouse fits a head of the `learned` backend, but "
                           f"[extractor] backend is {cfg.extractor.backend!r}: the stream would "
                           f"not use it (set backend = \"learned\")")
    topic = cfg.topic(topic_id)
    out = output or default_output(cfg, topic.id)
    if out.suffix != ".npz":
        raise ConfigError(f"-o {out}: a head file must end in .npz")
    texts, labels = read_stance_labels(cfg.warehouse_path, topic.id)
    usable_labels(labels, topic.id)  # too few: say so before loading the model
    say(f"train: {len(labels):,} stance labels of topic {topic.id!r}; loading the learned "
        f"backend, then {FOLDS}-fold cross-validation ...")
    from scoring.extractors.registry import get_extractor

    options = cfg.extractor_settings.backend_options().get("learned", {})
    extractor = get_extractor("learned", [topic], **options)
    result = retrain_stance(texts, labels, topic, extractor, seed=seed, progress=progress)
    if result.arrays is not None:
        write_head(result.arrays, out)
    return WarehouseRetrain(result, out, result.arrays is not None)
