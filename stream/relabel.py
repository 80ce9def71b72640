"""``polarwatch relabel``: label stored posts of a time range again with the current backend.

Stored labels are never rewritten silently: the run reports, per label, the counts before and
after and how many changed, and every post it labels records which backend and head produced
its labels now (``posts.labelled_by``, e.g. ``learned:stance_climate@1a2b3c4d5e6f``, and
``posts.relabelled_at``). ``--dry-run`` labels the posts and reports their label changes; it
only reads (never the writer's lock, which a running stream needs), so the replies' agreement,
interactions and windows are counted by a real run.

In one transaction it updates the posts' own labels (stance, affect, emotion, intensity and
their confidences, backend, explanation), deletes the interactions whose reply or parent it
labelled and scores those pairs again the way the sink does (:func:`stream.pairing.
score_new_pairs`: agreement labelled by the same backend chain, then the rule table), and
recomputes every window those posts and interactions fall in (final windows too: the point is
to correct them). The Parquet lake keeps the labels of first arrival.

The backend is called **outside** that transaction (an LLM may take minutes; the warehouse's
write lock would shut out the stream and every reader meanwhile): the posts and the replies
paired with them are read, labelled (posts, then each reply's agreement with its parent), and
only then written in one short transaction. A post whose stored labels changed in between (a
concurrent relabel) is left as it is and counted; a reply the stream paired with one of them in
between keeps the agreement the stream gave it, scored again with the new stances.

Posts of a topic that is not in ``topics.toml`` are left as they are and counted (a backend
knows no stance of a topic it was not told about: it would overwrite them with "unclear").
Ctrl-C before the transaction commits writes nothing, and the command says so.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from polarwatch.argtypes import back_from
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from polarwatch.records import Labels
from polarwatch.warehouse import connect, init_schema, missing_columns, scalar, transaction
from scoring.extractors.base import Extractor, PostPair

RELABELLED = ("stance", "affect", "emotion")  # per-post labels compared before / after
UPDATED = ("stance", "affect", "emotion", "intensity", "stance_conf", "affect_conf",
           "emotion_conf", "backend", "explanation")
BATCH = 256  # posts per backend call


@dataclass
class RelabelRun:
    since: datetime | None
    until: datetime | None
    topic: str | None
    backend: str
    n_posts: int = 0
    before: dict[str, Counter[str]] = field(default_factory=dict)
    after: dict[str, Counter[str]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    labelled_by: Counter[str] = field(default_factory=Counter)
    agreement_before: Counter[str] = field(default_factory=Counter)
    agreement_after: Counter[str] = field(default_factory=Counter)
    interactions: int = 0  # pairs scored again
    windows: int = 0
    dry_run: bool = False
    unconfigured: dict[str, int] = field(default_factory=dict)  # posts left: topic not configured
    stale: int = 0  # posts whose stored labels changed while they were labelled: left as they are
    kept_agreement: int = 0  # replies paired meanwhile: the stream's agreement kept, scored again

    def lines(self) -> list[str]:
        """What the command prints: the range, the producers, each label's counts."""
        def show(c: Counter[str]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in sorted(c.items())) or "none"

        span = (f"{_shown(self.since)} UTC" if self.since else "the first post") + \
            " to " + (f"{_shown(self.until)} UTC" if self.until else "the last")
        out = [f"relabel{' (dry run: nothing written)' if self.dry_run else ''}: "
               f"{self.n_posts:,} posts{f' of topic {self.topic}' if self.topic else ''} from "
               f"{span} with {self.backend}; labelled by {show(self.labelled_by)}"]
        for name in RELABELLED:
            out.append(f"  {name}: before {show(self.before.get(name, Counter()))} -> after "
                       f"{show(self.after.get(name, Counter()))} "
                       f"({self.changed.get(name, 0):,} changed)")
        if self.dry_run:
            out.append("  (a dry run reads only: the replies' agreement, their interactions and "
                       "windows are labelled and counted by a run without --dry-run)")
        else:
            out.append(f"  agreement of the {sum(self.agreement_after.values()):,} replies "
                       f"paired with them: before {show(self.agreement_before)} -> after "
                       f"{show(self.agreement_after)}; {self.interactions:,} interactions "
                       f"scored again, {self.windows:,} windows recomputed")
        if self.stale or self.kept_agreement:
            out.append(f"  {self.stale:,} posts whose labels changed while this run labelled "
                       f"them were left as they are (run relabel again for them); "
                       f"{self.kept_agreement:,} replies paired meanwhile kept the stream's "
                       f"agreement")
        if self.unconfigured:
            out.append(f"  {sum(self.unconfigured.values()):,} posts of topics not in "
                       f"topics.toml were left as they are: {show(Counter(self.unconfigured))} "
                       f"(add the topic back to topics.toml to relabel them)")
        return out


def _shown(t: datetime, seconds: str = "") -> str:
    """``0001-01-02 00:00``: the C library's %Y drops the zeros of a year before 1000."""
    return f"{t.year:04d}-{t.strftime('%m-%d %H:%M' + seconds)}"


def resolve_range(path: Any, since: datetime | timedelta | None,
                  until: datetime | timedelta | None, topic: str | None
                  ) -> tuple[datetime | None, datetime | None]:
    """A duration counts back from the newest stored post (of the topic): event time, so a
    replayed archive works the same as a live feed."""
    if not isinstance(since, timedelta) and not isinstance(until, timedelta):
        return since, until
    with connect(path, read_only=True) as con:
        newest = scalar(con, "SELECT max(created_at) FROM posts"
                        + (" WHERE topic = ?" if topic else ""), [topic] if topic else [])
    if newest is None:
        raise ConfigError(f"no stored posts{f' of topic {topic!r}' if topic else ''} to count "
                          f"a duration back from")
    newest = newest.astimezone(UTC)
    return tuple(back_from(newest, t, f"--{name} {_spelled(t)}")  # type: ignore[return-value]
                 if isinstance(t, timedelta) else t
                 for name, t in (("since", since), ("until", until)))


def _spelled(back: timedelta) -> str:
    """A duration as the user likely wrote it: whole days, hours or seconds."""
    seconds = back.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _where(since: datetime | None, until: datetime | None, topic: str | None
           ) -> tuple[str, list[Any]]:
    parts, params = ["TRUE"], []
    for cond, value in (("created_at >= ?", since), ("created_at < ?", until),
                        ("topic = ?", topic)):
        if value is not None:
            parts.append(cond)
            params.append(value)
    return " AND ".join(parts), params


def producer(lab: Labels) -> str:
    """``backend`` or, for the `learned` backend, ``learned:<stance head>@<digest>`` (its
    explanation names the head, whichever fallback chain or cascade it ran in)."""
    head = (lab.explanation or "").removeprefix("stance head ")
    if lab.backend == "learned" and head != lab.explanation:
        return f"learned:{head}"
    return lab.backend


def label_posts(extractor: Extractor, posts: pd.DataFrame, progress: bool) -> list[Labels]:
    from tqdm import tqdm

    pairs = [PostPair(pid, text, topic) for pid, text, topic
             in zip(posts["id"], posts["text"], posts["topic"], strict=True)]
    out: list[Labels] = []
    with tqdm(total=len(pairs), desc="relabel", unit="posts", file=sys.stderr,
              disable=not progress) as bar:
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start:start + BATCH]
            out.extend(extractor.extract(chunk))
            bar.update(len(chunk))
    return out


def _read(path: Any, where: str, params: list[Any], known: list[str], paired: bool
          ) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame]:
    """The posts to label (configured topics), the other topics' post counts, and (with
    `paired`) the replies paired with those posts, with their parents' texts."""
    with connect(path, read_only=True) as con:
        # a file from before migration 6 (a dry run reads it as it is): no producer stored yet
        missing = missing_columns(con, "posts")
        produced = ", ".join(f"NULL::{'TIMESTAMPTZ' if c == 'relabelled_at' else 'VARCHAR'} AS {c}"
                             if c in missing else c for c in ("labelled_by", "relabelled_at"))
        posts = con.execute(f"SELECT platform, id, text, topic, created_at, stance, affect, "
                            f"emotion, {produced} FROM posts WHERE {where} "
                            f"AND list_contains(?, topic) ORDER BY platform, id",
                            [*params, known]).df()
        other = dict(con.execute(f"SELECT topic, count(*) FROM posts WHERE {where} AND NOT "
                                 f"list_contains(?, topic) GROUP BY topic ORDER BY topic",
                                 [*params, known]).fetchall())
        replies = pd.DataFrame(columns=["platform", "id", "text", "topic", "parent_text"])
        if paired and not posts.empty:
            con.register("relabel_batch", posts[["platform", "id"]])
            replies = con.execute(PAIRS_TO_LABEL_SQL).df()
            con.unregister("relabel_batch")
    return posts, other, replies


def relabel(cfg: Config, since: datetime | timedelta | None = None,
            until: datetime | timedelta | None = None, topic: str | None = None,
            backend: str | None = None, dry_run: bool = False,
            progress: bool = False, extractor: Extractor | None = None) -> RelabelRun:
    """Label the stored posts with ``since <= created_at < until`` (of `topic`) again; on
    Ctrl-C or SIGTERM (polarwatch.cli makes it SystemExit), say on stderr what was and was not
    written, then stop."""
    state = {"phase": "before anything was labelled"}
    try:
        return _relabel(cfg, since, until, topic, backend, dry_run, progress, extractor, state)
    except (KeyboardInterrupt, SystemExit) as stop:
        done = state["phase"] == "after the write committed"
        how = "interrupted" if isinstance(stop, KeyboardInterrupt) else "terminated (SIGTERM)"
        print(f"polarwatch: relabel {how} {state['phase']}: "
              + ("every change was written" if done else
                 "nothing was written, the warehouse is as it was; run it again"),
              file=sys.stderr, flush=True)
        raise


def _relabel(cfg: Config, since: datetime | timedelta | None,
             until: datetime | timedelta | None, topic: str | None, backend: str | None,
             dry_run: bool, progress: bool, extractor: Extractor | None,
             state: dict[str, str]) -> RelabelRun:
    path = cfg.warehouse_path
    topics = cfg.load_topics()
    if topic is not None:
        cfg.topic(topic)  # a clear error for an unknown id
    lo, hi = resolve_range(path, since, until, topic)
    if lo is not None and hi is not None and lo >= hi:
        raise ConfigError(f"--since {_shown(lo, ':%S')} is not before --until "
                          f"{_shown(hi, ':%S')} (UTC): the range holds no post; swap them")
    where, params = _where(lo, hi, topic)
    posts, other, replies = _read(path, where, params, [t.id for t in topics], not dry_run)
    if not dry_run:  # it writes: a file of an older polarwatch is upgraded first, as the stream
        init_schema(path)  # and forecast do, once the read found a warehouse (none or another
        # program's DuckDB file: the read said so, and the file is left as it was)
    backend = backend or cfg.extractor.backend
    run = RelabelRun(lo, hi, topic, backend, n_posts=len(posts), dry_run=dry_run,
                     unconfigured=other)
    if posts.empty:
        return run
    if extractor is None:
        from scoring.fallback import build_from_config

        extractor = build_from_config(cfg.extractor_settings, topics, backend)
    state["phase"] = "while labelling (outside any write)"
    labels = label_posts(extractor, posts, progress)
    new = pd.DataFrame({name: [getattr(lab, name) for lab in labels] for name in UPDATED})
    new.insert(0, "platform", posts["platform"].to_numpy())
    new.insert(1, "id", posts["id"].to_numpy())
    new["labelled_by"] = [producer(lab) for lab in labels]
    new["relabelled_at"] = datetime.now(UTC)
    for name in RELABELLED:
        run.before[name] = Counter(posts[name].dropna())
        run.after[name] = Counter(new[name])
        run.changed[name] = int((posts[name].to_numpy() != new[name].to_numpy()).sum())
    run.labelled_by = Counter(new["labelled_by"])
    if not dry_run:  # a dry run only reads: it never takes the writer's lock from the stream
        agreement = label_replies(extractor, replies)
        state["phase"] = "before the write committed"
        _write(cfg, run, new, posts, agreement)
        state["phase"] = "after the write committed"
    return run


# the replies paired with a batch of posts (the reply or its parent is in it), as the sink
# pairs them (stream.pairing.NEW_PAIRS_SQL: same platform and topic, never the post itself)
PAIRS_TO_LABEL_SQL = """
    SELECT r.platform, r.id, r.text, r.topic, p.text AS parent_text
    FROM posts r JOIN posts p
      ON p.platform = r.platform AND p.id = r.parent_id AND p.topic = r.topic
    WHERE r.parent_id <> r.id
      AND (EXISTS (SELECT 1 FROM relabel_batch b WHERE b.platform = r.platform AND b.id = r.id)
           OR EXISTS (SELECT 1 FROM relabel_batch b
                      WHERE b.platform = p.platform AND b.id = p.id))
"""
PairKey = tuple[str, str, str, str | None]  # reply id, text, topic, parent text


def label_replies(extractor: Extractor, replies: pd.DataFrame) -> dict[PairKey, Labels]:
    """Each paired reply's labels with its parent (the agreement), before the write."""
    pairs = [PostPair(pid, text, topic, parent) for pid, text, topic, parent in zip(
        replies["id"], replies["text"], replies["topic"], replies["parent_text"], strict=True)]
    out: dict[PairKey, Labels] = {}
    for start in range(0, len(pairs), BATCH):
        chunk = pairs[start:start + BATCH]
        for pair, lab in zip(chunk, extractor.extract(chunk), strict=True):
            out[(pair.post_id, pair.text, pair.topic, pair.parent_text)] = lab
    return out


PAIRED_SQL = """
    SELECT r.platform, r.id, r.topic, r.created_at, r.agreement FROM posts r
    WHERE r.parent_id IS NOT NULL AND (
        EXISTS (SELECT 1 FROM relabel_fresh b WHERE b.platform = r.platform AND b.id = r.id)
        OR EXISTS (SELECT 1 FROM relabel_fresh b
                   WHERE b.platform = r.platform AND b.id = r.parent_id))
"""
# the posts of the batch whose stored labels are still those that were read before labelling
FRESH_SQL = """
    CREATE OR REPLACE TEMP TABLE relabel_fresh AS SELECT b.* FROM relabel_batch b
    JOIN posts p ON p.platform = b.platform AND p.id = b.id
    WHERE p.stance IS NOT DISTINCT FROM b.old_stance AND p.affect IS NOT DISTINCT FROM b.old_affect
      AND p.emotion IS NOT DISTINCT FROM b.old_emotion
      AND p.labelled_by IS NOT DISTINCT FROM b.old_labelled_by
      AND p.relabelled_at IS NOT DISTINCT FROM b.old_relabelled_at
"""


def _stored_agreement(con: Any) -> dict[PairKey, Labels]:
    """The agreement stored on every reply the sink's pairing can pick for ``post_batch``: the
    reply or its parent in the batch (pairs not labelled before the write, e.g. made meanwhile,
    or a grandchild of a relabelled post whose reply in the batch had no interaction)."""
    rows = con.execute("SELECT r.id, r.text, r.topic, p.text, r.agreement, r.agreement_conf "
                       "FROM posts r JOIN posts p ON p.platform = r.platform "
                       "AND p.id = r.parent_id WHERE EXISTS (SELECT 1 FROM post_batch b WHERE "
                       "b.platform = r.platform AND b.id = r.id) OR EXISTS (SELECT 1 FROM "
                       "post_batch b WHERE b.platform = p.platform AND b.id = p.id)").fetchall()
    return {(pid, text, topic, parent): Labels(pid, "unclear", "unclear", agreement, "neutral",
                                               0.0, 0.0, 0.0, conf, 0.0, "stored")
            for pid, text, topic, parent, agreement, conf in rows}


def _write(cfg: Config, run: RelabelRun, new: pd.DataFrame, posts: pd.DataFrame,
           agreement: dict[PairKey, Labels]) -> None:
    """One short transaction: the labels of the posts still as read, their pairs scored again
    (agreement labelled before; no backend call here), their windows recomputed."""
    from stream.pairing import score_new_pairs
    from stream.sink import interval_sql
    from stream.windows import update_windows

    sets = ", ".join(f'"{c}" = b."{c}"' for c in (*UPDATED, "labelled_by", "relabelled_at"))
    batch = new.copy()
    for name in ("stance", "affect", "emotion", "labelled_by", "relabelled_at"):
        batch[f"old_{name}"] = posts[name].to_numpy()
    with transaction(cfg.warehouse_path) as con:
        con.register("relabel_batch", batch)
        con.execute(FRESH_SQL)
        fresh = con.execute("SELECT platform, id FROM relabel_fresh").df()
        run.stale = len(batch) - len(fresh)
        con.execute(f"UPDATE posts SET {sets} FROM relabel_fresh b "
                    f"WHERE posts.platform = b.platform AND posts.id = b.id")
        paired = con.execute(PAIRED_SQL).df()
        run.agreement_before = Counter(paired["agreement"].dropna())
        # the posts and the replies paired with them: their pairs are scored again
        fresh_posts = posts.merge(fresh, on=["platform", "id"])
        both = pd.concat([fresh_posts[["platform", "id", "topic", "created_at"]],
                          paired[["platform", "id", "topic", "created_at"]]]
                         ).drop_duplicates(["platform", "id"])
        con.register("post_batch", both)
        stored = _stored_agreement(con)

        def labeler(pairs: Any) -> list[Labels]:
            out = []
            for p in pairs:
                key = (p.post_id, p.text, p.topic, p.parent_text)
                out.append(agreement.get(key) or stored[key])
                run.kept_agreement += key not in agreement
            return out

        con.execute("DELETE FROM interactions i USING post_batch b "
                    "WHERE i.platform = b.platform AND i.post_id = b.id")
        run.interactions = score_new_pairs(con, labeler)
        run.agreement_after = Counter(con.execute(
            "SELECT agreement FROM posts r SEMI JOIN post_batch b USING (platform, id) "
            "WHERE r.parent_id IS NOT NULL AND r.agreement IS NOT NULL").df()["agreement"])
        run.windows = update_windows(con, interval_sql(cfg.aggregate.window),  # final too
                                     cfg.aggregate.extreme_threshold, datetime.now(UTC),
                                     final_too=True)
        con.execute("DROP TABLE relabel_fresh")
        con.unregister("post_batch")
        con.unregister("relabel_batch")
