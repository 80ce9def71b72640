"""Read queries over the warehouse that more than one package shares: the analysts' stance
labels (a retrain's data), the Label page's fixed random order and its unbiased sample, and the
side check's shares. The tables themselves are :mod:`polarwatch.warehouse`'s."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from polarwatch.ddl import CONVERSATIONS_SQL
from polarwatch.errors import SchemaError
from polarwatch.warehouse import connect, missing_columns, schema_version

LOG = logging.getLogger(__name__)

# The `conversations` view's query as a subquery named like it (`FROM {CONVERSATIONS}`): read
# the same on every file since migration 4, whatever version its view was made at.
CONVERSATIONS = f"({CONVERSATIONS_SQL}) AS conversations"

# the latest stance label(s) of each label's post, with the post as stored (NULL: gone): one
# analyst's correction, or a second analyst, wins; two values at the same latest instant
# conflict. Each label is read under the topic's sides today ($pro, $anti): one given under them
# swapped is flipped (pro <-> anti), one given under other sides is NULL (left out), one from
# before the sides were recorded (NULL descriptions) is kept as it is.
STANCE_LABELS_SQL = """
    WITH l AS (
        SELECT platform, post_id, labelled_at,
               CASE WHEN $pro IS NULL  -- no sides to read them under: as given
                         OR pro_description IS NULL AND anti_description IS NULL
                         OR pro_description = $pro AND anti_description = $anti THEN value
                    WHEN pro_description = $anti AND anti_description = $pro
                         THEN CASE value WHEN 'pro' THEN 'anti' WHEN 'anti' THEN 'pro'
                                         ELSE value END
               END AS value,
               coalesce(pro_description = $anti AND anti_description = $pro
                        AND value IN ('pro', 'anti'), false) AS flipped,
               max(labelled_at) OVER (PARTITION BY platform, post_id) AS latest
        FROM labels WHERE task = 'stance' AND topic = $topic)
    SELECT l.platform, l.post_id,
           list(DISTINCT l.value ORDER BY l.value) FILTER (WHERE l.value IS NOT NULL) AS vals,
           bool_or(l.value IS NULL) AS other_sides, coalesce(bool_or(l.flipped), false),
           any_value(p.id) AS stored_id, any_value(p.topic) AS post_topic,
           any_value(p.text) AS text
    FROM l LEFT JOIN posts p ON p.platform = l.platform AND p.id = l.post_id
    WHERE l.labelled_at = l.latest
    GROUP BY l.platform, l.post_id
    ORDER BY l.platform, l.post_id
"""
GONE = "for posts no longer stored"
OTHER_TOPIC = "on posts of another topic"
OTHER_SIDES = ("given under other pro/anti descriptions than the topic's now (label those posts "
               "again on the Label page)")
CONFLICT = "with analysts disagreeing at the same instant (no latest label)"


def read_stance_label_set(path: str | Path, topic: str, sides: tuple[str, str] | None = None
                          ) -> tuple[list[str], list[str], dict[str, int], int]:
    """(texts, labels) of the topic's stance-labelled posts that are still stored and of that
    topic, the latest label of each read under `sides` (the topic's (pro, anti) descriptions
    now; None: every label as given); the labels left out, counted by why (:data:`GONE`,
    :data:`OTHER_TOPIC`, :data:`OTHER_SIDES`: given under other descriptions, :data:`CONFLICT`:
    posts whose latest labels disagree); and how many kept labels were flipped (given under
    `sides` swapped)."""
    with connect(path, read_only=True) as con:
        missing = missing_columns(con, "labels")
        if "value" in missing:
            raise SchemaError(f"{path} has no labels table yet (schema version "
                              f"{schema_version(con)}): label posts on the dashboard's Label "
                              f"page first")
        sql = STANCE_LABELS_SQL
        if "pro_description" in missing:  # a file from before migration 11 (read-only here)
            sql = sql.replace("pro_description", "NULL").replace("anti_description", "NULL")
        pro, anti = sides if sides is not None else (None, None)
        rows = con.execute(sql, {"topic": topic, "pro": pro, "anti": anti}).fetchall()
    texts: list[str] = []
    labels: list[str] = []
    left: Counter[str] = Counter()
    flipped = 0
    for _platform, _post, values, other, was_flipped, stored, post_topic, text in rows:
        why = (GONE if stored is None else OTHER_TOPIC if post_topic != topic
               else OTHER_SIDES if other else CONFLICT if len(values or []) > 1 else None)
        if why is None:
            texts.append(text)
            labels.append(values[0])
            flipped += bool(was_flipped)
        else:
            left[why] += 1
    return texts, labels, dict(left), flipped


def read_stance_labels(path: str | Path, topic: str, sides: tuple[str, str] | None = None
                       ) -> tuple[list[str], list[str]]:
    """(texts, labels) of :func:`read_stance_label_set`: what a retrain learns from (``train
    --from-warehouse`` and the dashboard's Retrain button, which pass the topic's (pro, anti)
    now as `sides`); the labels left out are logged as one warning with their counts by
    reason, the labels flipped (given under the sides swapped) as one line."""
    texts, labels, left, flipped = read_stance_label_set(path, topic, sides)
    if left:
        LOG.warning("train: %s stance label(s) of topic %r left out: %s", f"{sum(left.values()):,}",
                    topic, "; ".join(f"{n:,} {why}" for why, n in left.items()))
    if flipped:
        LOG.warning("train: %s stance label(s) of topic %r flipped (pro <-> anti): given while "
                    "its pro and anti descriptions were the other way round", f"{flipped:,}",
                    topic)
    return texts, labels


def random_order_key(alias: str = "p", id_column: str = "id") -> str:
    """SQL for a post's place in its topic's fixed random order (a hash of platform, id and
    topic; the same in every session). The Label page draws its random share in this order,
    skipping posts already labelled, so every post before its furthest random draw has been
    labelled, whichever share drew it: that prefix is the uniform random sample."""
    return (f"hash({alias}.platform || chr(31) || {alias}.{id_column} || chr(31) || "
            f"{alias}.topic)")


# The random sample's labels: every label of a post up to the topic's furthest random draw in
# the random order. Counting only labels drawn *as* random would drop the posts the least-
# confident share took first (they leave the random pool), biasing accuracy upwards.
# `model_value` is the post's label for the task as stored *now* (posts.stance / affect /
# agreement), so a retrain followed by `polarwatch relabel` moves the figure; only for a post no
# longer stored is it the model's label when the post was shown (labels.model_value).
RANDOM_SAMPLE_LABELS_SQL = f"""
    WITH frontier AS (
        SELECT topic, max({random_order_key("l", "post_id")}) AS last
        FROM labels l WHERE sample = 'random' GROUP BY topic)
    SELECT l.topic, l.task, l.value, l.pro_description, l.anti_description,
           p.id IS NULL AS post_gone,
           CASE WHEN p.id IS NULL THEN l.model_value
                WHEN l.task = 'stance' THEN p.stance
                WHEN l.task = 'affect' THEN p.affect
                WHEN l.task = 'agreement' THEN p.agreement END AS model_value
    FROM labels l JOIN frontier f ON f.topic = l.topic
    LEFT JOIN posts p ON p.platform = l.platform AND p.id = l.post_id
    WHERE {random_order_key("l", "post_id")} <= f.last
    ORDER BY l.topic, l.task, l.platform, l.post_id, l.labeller"""


def random_sample_sql(has_sides: bool) -> str:
    """:data:`RANDOM_SAMPLE_LABELS_SQL`; on a file from before migration 11 (no recorded sides,
    `has_sides` False: a reader does not migrate) with NULL descriptions."""
    if has_sides:
        return RANDOM_SAMPLE_LABELS_SQL
    return (RANDOM_SAMPLE_LABELS_SQL.replace("l.pro_description", "NULL AS pro_description")
            .replace("l.anti_description", "NULL AS anti_description"))


# Per topic, over the stored replies that take a side under a stored parent that takes one too:
# how many agree with their parent and the share of those on its side; how many disagree and the
# share of those on the other side (``scoring.side_check``: do the sides follow agreement?).
SIDE_CONSISTENCY_SQL = """
    SELECT r.topic,
           count(*) FILTER (WHERE r.agreement = 'agree') AS n_agree,
           avg(CAST(r.stance = p.stance AS DOUBLE)) FILTER (WHERE r.agreement = 'agree')
               AS agree_same,
           count(*) FILTER (WHERE r.agreement = 'disagree') AS n_disagree,
           avg(CAST(r.stance <> p.stance AS DOUBLE)) FILTER (WHERE r.agreement = 'disagree')
               AS disagree_opposite
    FROM posts r JOIN posts p ON p.platform = r.platform AND p.id = r.parent_id
    WHERE r.stance IN ('pro', 'anti') AND p.stance IN ('pro', 'anti')
      AND r.agreement IN ('agree', 'disagree')
    GROUP BY r.topic ORDER BY r.topic"""
