"""A reply meets its parent once: in the sink's transaction, where both posts are stored.

The labelling stage (:mod:`stream.udfs`) labels every post on its own — stance, affect,
emotion — because a Spark worker cannot know whether a reply's parent was seen by another worker,
in an earlier batch or before a driver restart. The *agreement* of a reply with its parent needs
both texts, so it is labelled here, by the same backend chain, at the moment the sink finds the
pair in DuckDB: the reply or the parent is in this micro-batch, the other one is in this batch
or already stored, and the reply has no interaction yet. Agreement label and rule score therefore
always see the same parent row, whatever the arrival order, batch boundaries or restarts.

The label is written back to the reply's ``agreement`` / ``agreement_conf`` in ``posts`` and
scored with the paper's rule table into ``interactions``, both inside the caller's transaction.
A reply whose parent never arrives keeps ``agreement = NULL`` (nothing to agree with).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from polarwatch.records import Labels
from scoring.extractors.base import PostPair
from scoring.rules import score_pairs

Labeler = Callable[[Sequence[PostPair]], list[Labels]]

# replies whose pair is complete now: the reply or its parent came in this batch. A parent is
# the post of the reply's own platform and topic with that id (a post elsewhere that shares the
# id is not it; stances on two topics do not compare), and never the reply itself: the stream
# stores a self-parent as a root (polarwatch.validation.parent_of), but a file written before
# that may hold one, and `relabel` pairs its posts again.
NEW_PAIRS_SQL = """
    SELECT r.platform, r.id, r.parent_id, r.conversation_id, r.topic, r.created_at, r.text,
           r.stance AS rs, p.stance AS ps, r.affect AS ra, p.affect AS pa
    FROM posts r JOIN posts p
      ON p.platform = r.platform AND p.id = r.parent_id AND p.topic = r.topic
    WHERE r.parent_id <> r.id
      AND (EXISTS (SELECT 1 FROM post_batch b WHERE b.platform = r.platform AND b.id = r.id)
           OR EXISTS (SELECT 1 FROM post_batch b WHERE b.platform = p.platform AND b.id = p.id))
      AND NOT EXISTS (SELECT 1 FROM interactions i
                      WHERE i.platform = r.platform AND i.post_id = r.id)
    ORDER BY r.platform, r.id
"""
# the parents' texts, once each (a late parent with thousands of replies is not copied per reply)
PARENT_TEXTS_SQL = """
    SELECT p.platform, p.id, p.text FROM posts p
    WHERE EXISTS (SELECT 1 FROM new_pairs n WHERE n.platform = p.platform AND n.parent_id = p.id)
"""
PAIR_CHUNK = 1000  # (reply, parent) pairs per labeler call


@functools.cache
def _lexicon() -> Any:
    from scoring.extractors.registry import get_extractor

    return get_extractor("lexicon", [])


def lexicon_labeler() -> Labeler:
    """The default labeler of a sink built without one (unit tests, tools): the lexicon
    backend, built on first use."""
    return lambda pairs: list(_lexicon().extract(pairs))


def label_agreement(pairs: pd.DataFrame, labeler: Labeler,
                    parents: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """``id``, ``agreement`` and ``agreement_conf`` of each reply in `pairs` (columns
    ``platform``, ``id``, ``text``, ``topic``, ``parent_id``), from calls of `labeler` on
    (reply, parent) pairs, PAIR_CHUNK at a time; `parents` maps (platform, id) to the parent's
    text. A backend that gives no agreement for a reply yields "unclear" with no confidence."""
    parents = parents or {}
    batch = [PostPair(pid, text, topic, parents.get((platform, parent), ""))
             for platform, pid, text, topic, parent in zip(
                 pairs["platform"], pairs["id"], pairs["text"], pairs["topic"],
                 pairs["parent_id"], strict=True)]
    labels: list[Labels] = []
    for start in range(0, len(batch), PAIR_CHUNK):
        chunk = batch[start:start + PAIR_CHUNK]
        got = labeler(chunk)
        if len(got) != len(chunk):
            raise RuntimeError(f"the labeler returned {len(got)} labels for {len(chunk)} "
                               "replies; an extractor must return one Labels per input, in order")
        labels.extend(got)
    return pd.DataFrame({
        "platform": pairs["platform"].to_numpy(), "id": pairs["id"].to_numpy(),
        "agreement": [lab.agreement or "unclear" for lab in labels],
        "agreement_conf": pd.array([lab.agreement_conf if lab.agreement else None
                                    for lab in labels], dtype="Float64"),
    })


def score_new_pairs(con: Any, labeler: Labeler) -> int:
    """Label and score every reply whose pair completed in this batch (see the module doc).
    Needs the batch registered as ``post_batch`` and already inserted into ``posts``.
    Returns the number of interactions stored."""
    pairs = con.execute(NEW_PAIRS_SQL).df()
    if pairs.empty:
        return 0
    con.register("new_pairs", pairs[["platform", "parent_id"]])
    parents = {(platform, pid): text for platform, pid, text
               in con.execute(PARENT_TEXTS_SQL).fetchall()}
    con.unregister("new_pairs")
    agreement = label_agreement(pairs, labeler, parents)
    con.register("agreement_batch", agreement)
    con.execute("UPDATE posts SET agreement = a.agreement, agreement_conf = a.agreement_conf "
                "FROM agreement_batch a WHERE posts.platform = a.platform AND posts.id = a.id")
    con.unregister("agreement_batch")
    scores, rules = score_pairs(pairs["rs"], pairs["ps"], pairs["ra"], pairs["pa"],
                                agreement["agreement"])
    inter = pd.DataFrame({
        "post_id": pairs["id"], "parent_id": pairs["parent_id"],
        "conversation_id": pairs["conversation_id"], "topic": pairs["topic"],
        "created_at": pairs["created_at"], "score": scores, "rule": rules,
        "platform": pairs["platform"]})
    inter = inter[inter["score"].notna()].astype({"score": "int32"})
    if inter.empty:
        return 0
    con.register("inter_batch", inter)
    con.execute("INSERT OR IGNORE INTO interactions BY NAME SELECT * FROM inter_batch")
    con.execute("CREATE OR REPLACE TEMP TABLE touched_interactions AS "
                "SELECT topic, created_at FROM inter_batch")
    con.unregister("inter_batch")
    return len(inter)
