"""The analysts' labels: the one place the dashboard writes to the warehouse (the ``labels``
table, :class:`polarwatch.tables.AnalystLabel`, and the LLM's suggestions beside them,
``label_suggestions``, :class:`polarwatch.tables.LabelSuggestion`, never read as a label), and
the reads the Label page needs.

The Label page reads the *live* file, not the readers' snapshot (``dashboard/snapshot.py``):
a post labelled a second ago must not come back. Those reads are one short query per click.
The Topic page's accuracy reads go through the snapshot like every other page
(:func:`random_labels`), so they may lag by ``[dashboard] snapshot_seconds``.

``benchmarks/label_simulation.py`` drives the same functions the page calls
(:func:`next_post`, :func:`make_labels`, :func:`save_labels`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dashboard.results import read_frame
from polarwatch.errors import PolarwatchError
from polarwatch.reads import random_order_key, random_sample_sql
from polarwatch.records import LABEL_TASKS
from polarwatch.tables import AnalystLabel, LabelSuggestion
from polarwatch.warehouse import TABLES, connect, init_schema, transaction
from scoring.label_accuracy import pick_next

QUEUE_SIZE = 50  # candidates fetched per pool and click (the page skips those it has seen)
SAMPLES = ("random", "informative")
_COLUMNS = [f.name for f in fields(AnalystLabel)]
_SUGGESTION_COLUMNS = [f.name for f in fields(LabelSuggestion)]
# how many of a list of tables the open file has
_HAS_TABLES = ("SELECT count(DISTINCT table_name) FROM duckdb_tables() "
               "WHERE list_contains(?, table_name) AND schema_name = current_schema()")
_HAS_SIDES = ("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'labels' "
              "AND column_name = 'pro_description' AND schema_name = current_schema()")


class LabelError(PolarwatchError):
    """A label the contract does not allow (unknown task, value or sample)."""


def make_labels(post: Mapping[str, Any], sample: str, labeller: str,
                verdicts: Mapping[str, str], now: datetime | None = None,
                sides: tuple[str, str] | None = None) -> list[AnalystLabel]:
    """One :class:`AnalystLabel` per task in `verdicts` (task -> the analyst's value) for
    `post` (a row of :func:`queue`: platform, id, topic and the model's label and confidence
    per task, as shown). `sides` is the topic's (pro, anti) descriptions the page showed: a
    stance label stores them (None: the topic is not in topics.toml, stored as NULL)."""
    if sample not in SAMPLES:
        raise LabelError(f"sample {sample!r} is not one of {', '.join(SAMPLES)}")
    if not labeller.strip():
        raise LabelError("a label needs the labeller's name")
    rows = []
    for task, value in verdicts.items():
        allowed = LABEL_TASKS.get(task)
        if allowed is None:
            raise LabelError(f"task {task!r} is not one of {', '.join(LABEL_TASKS)}")
        if value not in allowed:
            raise LabelError(f"{task} label {value!r} is not one of {', '.join(allowed)}")
        model = post.get(task)
        confidence = post.get(f"{task}_conf")
        rows.append(AnalystLabel(
            platform=str(post["platform"]), post_id=str(post["id"]), topic=str(post["topic"]),
            task=task, value=value, sample=sample,
            model_value=None if _missing(model) else str(model),
            model_confidence=None if confidence is None or _missing(confidence)
            else float(confidence),
            labeller=labeller.strip(), labelled_at=now or datetime.now(UTC),
            pro_description=sides[0] if sides and task == "stance" else None,
            anti_description=sides[1] if sides and task == "stance" else None))
    return rows


def save_labels(path: str | Path, labels: Sequence[AnalystLabel]) -> None:
    """Store `labels` in one transaction; the same labeller's label of the same task of the
    same post replaces the earlier one (a correction). An older file is upgraded first
    (:func:`polarwatch.warehouse.init_schema`), as every writer does."""
    _insert(path, "labels", _COLUMNS, labels)


def make_suggestions(post: Mapping[str, Any], model: str, prompt_version: str,
                     values: Mapping[str, str], explanation: str | None, asked_by: str,
                     now: datetime | None = None) -> list[LabelSuggestion]:
    """One :class:`LabelSuggestion` per task of `values` (task -> the LLM's label) for `post`
    (a row of :func:`queue`), refused like an analyst's label outside the contract."""
    for task, value in values.items():
        if value not in LABEL_TASKS.get(task, ()):
            raise LabelError(f"the LLM's {task} label {value!r} is not one of the task's values")
    return [LabelSuggestion(
        platform=str(post["platform"]), post_id=str(post["id"]), topic=str(post["topic"]),
        task=task, value=value, model=model, prompt_version=prompt_version,
        explanation=explanation, asked_by=asked_by.strip() or "?",
        suggested_at=now or datetime.now(UTC)) for task, value in values.items()]


def save_suggestions(path: str | Path, suggestions: Sequence[LabelSuggestion]) -> None:
    """Store the LLM's `suggestions` in their own table, never in ``labels`` (the same model's
    suggestion for the same task of the same post replaces the earlier one)."""
    _insert(path, "label_suggestions", _SUGGESTION_COLUMNS, suggestions)


def _insert(path: str | Path, table: str, columns: list[str], rows: Sequence[Any]) -> None:
    if not rows:
        return
    init_schema(path)
    marks = ", ".join("?" * len(columns))
    with transaction(path) as con:
        con.executemany(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({marks})", [list(astuple(row)) for row in rows])


def _live(path: str | Path, *queries: tuple[str, list[Any]]) -> list[pd.DataFrame]:
    """Each (sql, params) of `queries` on the live file, through one read-only connection."""
    with connect(path, read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        for table in ("labels", "label_suggestions"):
            if not con.execute(_HAS_TABLES, [[table]]).fetchall()[0][0]:
                # a file from before the table: nothing labelled (or suggested) yet
                con.execute(TABLES[table].replace("CREATE TABLE IF NOT EXISTS",
                                                  "CREATE TEMP TABLE"))
        return [con.execute(sql, params).df() for sql, params in queries]


_QUEUE = """
    SELECT p.platform, p.id, p.topic, p.text, p.author_id, p.created_at, p.parent_id,
           p.stance, p.stance_conf, p.affect, p.affect_conf, p.agreement, p.agreement_conf,
           q.text AS parent_text, q.author_id AS parent_author,
           coalesce(d.n, 0) AS disagreements
    FROM posts p
    LEFT JOIN posts q ON q.platform = p.platform AND q.id = p.parent_id
    LEFT JOIN (  -- tasks on which another backend (the LLM's suggestions) contradicts the model
        SELECT s.platform, s.post_id, count(DISTINCT s.task) AS n
        FROM label_suggestions s JOIN posts x ON x.platform = s.platform AND x.id = s.post_id
        WHERE x.topic = ? AND s.value IS DISTINCT FROM CASE s.task WHEN 'stance' THEN x.stance
            WHEN 'affect' THEN x.affect ELSE x.agreement END
        GROUP BY s.platform, s.post_id) d ON d.platform = p.platform AND d.post_id = p.id
    WHERE p.topic = ? AND (  -- a task of the post has no label yet (Label page: tasks_for)
        SELECT count(DISTINCT l.task) FROM labels l
        WHERE l.platform = p.platform AND l.post_id = p.id) < CASE WHEN q.text IS NULL
        THEN 2 ELSE 3 END
    ORDER BY {order} LIMIT ?"""
# A random order that is the same for every session (a uniform random sample is any prefix)
RANDOM_ORDER = f"{random_order_key('p')}, p.platform, p.id"
# What teaches most first: posts where another backend disagrees with the model (on more tasks
# first), then the lowest confidence among the labels the analyst is asked for
INFORMATIVE_ORDER = ("coalesce(d.n, 0) DESC, least(coalesce(p.stance_conf, 0), "
                     "coalesce(p.affect_conf, 0), coalesce(p.agreement_conf, 1)), p.platform, "
                     "p.id")


def queue(path: str | Path, topic: str, limit: int = QUEUE_SIZE
          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(random, informative): up to `limit` unlabelled posts of `topic` in a fixed random
    order, and :data:`INFORMATIVE_ORDER` (another backend disagrees, then least confident
    first), with each reply's parent text (live file)."""
    random_pool, informative_pool = _live(path, *_queue_queries(topic, limit))
    return random_pool, informative_pool


def _queue_queries(topic: str, limit: int) -> list[tuple[str, list[Any]]]:
    return [(_QUEUE.format(order=order), [topic, topic, limit])
            for order in (RANDOM_ORDER, INFORMATIVE_ORDER)]


def next_post(path: str | Path, topic: str, random_share: float,
              skip: frozenset[tuple[str, str]] | set[tuple[str, str]] = frozenset()
              ) -> tuple[dict[str, Any], str] | None:
    """The next post of `topic` to label (a row of :func:`queue`) and why it was drawn
    (``scoring.label_accuracy.pick_next``: the random share by quota, else the most
    informative: :data:`INFORMATIVE_ORDER`);
    None when every post not in `skip` has a label."""
    random_pool, informative_pool, counts = _live(  # one connection per page run
        path, *_queue_queries(topic, QUEUE_SIZE), (_COUNTS, [topic]))
    n_labelled, n_random = _counted(counts)
    rows = {(r["platform"], r["id"]): r for df in (random_pool, informative_pool)
            for r in df.to_dict("records")}
    picked = pick_next([(r["platform"], r["id"]) for r in random_pool.to_dict("records")],
                       [(r["platform"], r["id"]) for r in informative_pool.to_dict("records")],
                       n_random, n_labelled, random_share, skip=skip)
    if picked is None:
        return None
    key, sample = picked
    return rows[key], sample


def stored_tasks(path: str | Path, platform: str, post_id: str) -> dict[str, str]:
    """{task: value} of the labels the post already has, the latest per task (live file): a
    post labelled in part comes back to the queue for the tasks it lacks."""
    df = _live(path, ("SELECT task, arg_max(value, labelled_at) AS value FROM labels WHERE "
                      "platform = ? AND post_id = ? GROUP BY task", [platform, post_id]))[0]
    return {str(r.task): str(r.value) for r in df.itertuples()}


def stored_value(path: str | Path, platform: str, post_id: str, task: str, labeller: str
                 ) -> str | None:
    """The label `labeller` has stored for `task` of the post (live file), or None."""
    df = _live(path, ("SELECT value FROM labels WHERE platform = ? AND post_id = ? AND "
                      "task = ? AND labeller = ?", [platform, post_id, task, labeller.strip()]))[0]
    return None if df.empty else str(df["value"].iloc[0])


def label_counts(path: str | Path, topic: str) -> tuple[int, int]:
    """(posts labelled, of which drawn at random) for `topic` (live file)."""
    return _counted(_live(path, (_COUNTS, [topic]))[0])


def stored_posts(path: str | Path, topic: str) -> int:
    """Posts of `topic` stored now (live file): none after ``keep_days`` pruned them, though
    the topic's windows stay."""
    return int(_live(path, ("SELECT count(*) AS n FROM posts WHERE topic = ?", [topic]))[0]
               ["n"].iloc[0])


_COUNTS = """
    SELECT count(DISTINCT (platform, post_id)) AS n,
           count(DISTINCT (platform, post_id)) FILTER (WHERE sample = 'random') AS n_random
    FROM labels WHERE topic = ?"""


_AGREEMENT = """
    SELECT l.task, l.value, s.value AS suggestion, s.model,
           l.labelled_at >= s.suggested_at AS after_seeing
    FROM labels l JOIN label_suggestions s USING (platform, post_id, task)
    WHERE l.topic = ? ORDER BY l.task, l.platform, l.post_id, l.labeller, s.model"""


def suggestion_pairs(path: str | Path, topic: str) -> pd.DataFrame:
    """Every analyst label of `topic` that has an LLM suggestion for the same task of the same
    post: task, value (the analyst's), suggestion, model, after_seeing (labelled after the
    suggestion was shown: it may have swayed the analyst). Live file."""
    return _live(path, (_AGREEMENT, [topic]))[0]


def suggestion_pairs_read(path: str | Path, topic: str) -> pd.DataFrame:
    """:func:`suggestion_pairs` through the readers' snapshot (the Topic page); empty on a
    file without the labels or suggestions table."""
    if not _has_tables(path, "labels", "label_suggestions"):
        return pd.DataFrame(columns=["task", "value", "suggestion", "model", "after_seeing"])
    return read_frame(path, _AGREEMENT, [topic])


def _has_tables(path: str | Path, *tables: str) -> bool:
    """Whether the readers' snapshot of `path` has every one of `tables`."""
    return int(read_frame(path, _HAS_TABLES, [list(tables)]).iloc[0, 0]) == len(set(tables))


def _counted(df: pd.DataFrame) -> tuple[int, int]:
    return int(df["n"].iloc[0]), int(df["n_random"].iloc[0])


def random_labels(path: str | Path) -> pd.DataFrame:
    """Every label of the random sample (columns topic, task, value, pro_description,
    anti_description, model_value): each topic's posts up to its furthest random draw,
    including those the least-confident share labelled first
    (``polarwatch.reads.RANDOM_SAMPLE_LABELS_SQL``), through the readers' snapshot; empty on a
    file without the labels table. Read stance labels under the topic's sides now with
    ``scoring.label_accuracy.under_sides``."""
    if not _has_tables(path, "labels"):
        return pd.DataFrame(columns=["topic", "task", "value", "pro_description",
                                     "anti_description", "post_gone", "model_value"])
    has_sides = int(read_frame(path, _HAS_SIDES).iloc[0, 0]) > 0
    return read_frame(path, random_sample_sql(has_sides))


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)
