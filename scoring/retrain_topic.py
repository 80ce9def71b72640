"""One topic's retrain as the product runs it, for ``polarwatch train --from-warehouse`` and the
dashboard's Retrain button alike: the config checks, the `learned` backend as it serves the
topic now, :func:`scoring.retrain.retrain_stance`, and the head file written only when it wins,
to ``[extractor] learned_topic_heads_dir``/``stance_<topic>.npz`` by default, where the backend
finds it when it next starts (the stream loads its extractor once per worker: restart it,
:data:`RESTART_HINT`). The labels come in as lists
(``polarwatch.reads.read_stance_labels`` reads them), so this stays free of DuckDB.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polarwatch.config import Config, Topic
from polarwatch.errors import BackendError, ConfigError
from scoring.retrain import FOLDS, RetrainResult, retrain_stance, usable_labels, write_head

RESTART_HINT = ("the stream loads its heads when it starts: stop `polarwatch stream "
                "--continuous` (Ctrl-C, or SIGTERM to its process) and start it again to label "
                "new posts with it; `polarwatch relabel --since 7d --topic {topic}` labels "
                "stored posts again")


@dataclass
class TopicRetrain:
    result: RetrainResult
    output: Path
    written: bool

    def figures(self) -> str:
        """The cross-validated comparison, one sentence (the CLI and the dashboard say it)."""
        r = self.result
        left = f"; left out (fewer than {FOLDS} each): {r.left_out}" if r.left_out else ""
        if r.invalid:
            left += f"; left out (not a stance): {r.invalid}"
        texts = (f" of {r.n_texts:,} distinct texts (posts with the same text stay in one "
                 f"fold)" if 0 < r.n_texts < r.n_labels else "")
        return (f"{FOLDS}-fold cross-validated F_avg {r.new_f_avg:.3f} (new head, "
                f"{r.candidate}, from {r.prior}) vs {r.current_f_avg:.3f} (current: "
                f"{r.current_head}) on the same {r.n_labels:,} labels {r.counts}{texts}{left}; "
                f"{r.seconds:.1f} s")

    def lines(self) -> list[str]:
        """What happened: kept or written (with the figures), and how the stream picks it up."""
        if not self.written:
            return [f"kept the current head, the new one does not beat it: {self.figures()}; "
                    f"nothing written"]
        return [f"wrote {self.output}: {self.figures()}",
                RESTART_HINT.format(topic=self.result.topic)]


def default_output(cfg: Config, topic: str) -> Path:
    heads = cfg.extractor_settings.learned_topic_heads_dir
    if not heads:
        raise ConfigError("[extractor] learned_topic_heads_dir is empty, so the learned backend "
                          "loads no trained topic heads: set it, or pass -o FILE")
    return Path(heads) / f"stance_{topic}.npz"


def prepare(cfg: Config, topic_id: str, output: Path | None = None) -> tuple[Topic, Path]:
    """The topic and the head file to write, or the config error that stops a retrain."""
    if cfg.extractor.backend != "learned":
        raise BackendError(f"train --from-warehouse fits a head of the `learned` backend, but "
                           f"[extractor] backend is {cfg.extractor.backend!r}: the stream would "
                           f"not use it (set backend = \"learned\")")
    topic = cfg.topic(topic_id)
    out = output or default_output(cfg, topic.id)
    if out.suffix != ".npz":
        raise ConfigError(f"-o {out}: a head file must end in .npz")
    return topic, out


def train_topic(cfg: Config, topic: Topic, out: Path, texts: Sequence[str],
                labels: Sequence[str], seed: int = 0, progress: bool = False,
                say: Callable[[str], None] = lambda _: None,
                extractor: Any = None) -> TopicRetrain:
    """Fit, cross-validate, compare; write the head only when it wins. `say` gets one
    progress line before the slow part. `extractor`: the `learned` backend serving the topic
    (default: built from ``[extractor]`` as the stream builds it; a benchmark passes one with
    other shipped heads)."""
    _, _, invalid = usable_labels(labels, topic.id, texts)  # too few: say so before loading
    say(f"train: {len(labels) - sum(invalid.values()):,} stance labels of topic {topic.id!r}; "
        f"loading the learned backend, then {FOLDS}-fold cross-validation ...")
    if extractor is None:
        from scoring.extractors.registry import get_extractor

        options = cfg.extractor_settings.backend_options().get("learned", {})
        extractor = get_extractor("learned", [topic], **options)
    result = retrain_stance(texts, labels, topic, extractor, seed=seed, progress=progress)
    if result.arrays is not None:
        write_head(result.arrays, out)
    return TopicRetrain(result, out, result.arrays is not None)
