"""Real posts for the extraction benchmarks: tweets and Reddit reply threads from ``../shared/data``.

- ``real_tweets()``: the TweetEval validation tweets of stance (5 SemEval targets) and offensive
  (OffensEval), 1,618 texts, as root posts.
- ``reddit_replies()``: every DEBAGREEMENT reply (``body_child``) with its parent's text
  (``body_parent``), 4,288 pairs, as `polarwatch label` sees a CSV with ``parent_text``.
- ``reddit_threads()``: the same rows rebuilt as threads (parents and replies are posts, each
  message once, parents first), as the stream sees them; ``subreddits`` picks some and
  ``max_replies`` keeps the first replies with their parents.

Nothing here is copied into the repository; the benchmarks read the files in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.heads_data import STANCE_TARGETS, debagreement_rows, tweeteval
from scoring.extractors.base import PostPair

# Subreddit -> topic id used to label it (topics.toml has climate_change; brexit is the
# benchmarks' own topic, see BREXIT below).
SUBREDDIT_TOPICS = {"climate": "climate_change", "Brexit": "brexit"}
BREXIT = ("brexit", "Brexit",
          "Supports Brexit: the United Kingdom leaving the European Union.",
          "Opposes Brexit; wants the United Kingdom to remain in or rejoin the European Union.")


def real_tweets() -> list[PostPair]:
    posts = []
    for target in STANCE_TARGETS:
        texts, _ = tweeteval(f"stance/{target}", "val")
        topic = "climate_change" if target == "climate" else "gun_control"
        posts += [PostPair(f"{target}-{i}", t, topic) for i, t in enumerate(texts)]
    texts, _ = tweeteval("offensive", "val")
    posts += [PostPair(f"off-{i}", t, "gun_control") for i, t in enumerate(texts)]
    return posts


def reddit_replies() -> list[PostPair]:
    return [PostPair(r["msg_id_child"], r["body_child"],
                     SUBREDDIT_TOPICS.get(r["subreddit"], "climate_change"), r["body_parent"])
            for r in debagreement_rows()]


@dataclass(frozen=True)
class Thread:
    """Posts of rebuilt threads (parents before replies) and, per reply, its gold agreement."""

    posts: list[PostPair]
    parent_of: dict[str, str]  # reply id -> parent id
    agreement: dict[str, int]  # reply id -> DEBAGREEMENT label (0 disagree, 1 neutral, 2 agree)
    subreddit: dict[str, str]  # post id -> subreddit


def reddit_threads(subreddits: Sequence[str] | None = None, max_replies: int | None = None
                   ) -> Thread:
    rows = [r for r in debagreement_rows() if subreddits is None or r["subreddit"] in subreddits]
    rows = rows[:max_replies]  # whole reply/parent pairs, so parents still come first
    text: dict[str, str] = {}
    topic: dict[str, str] = {}
    parent_of: dict[str, str] = {}
    agreement: dict[str, int] = {}
    sub: dict[str, str] = {}
    for r in rows:
        t = SUBREDDIT_TOPICS.get(r["subreddit"], "climate_change")
        for mid, body in ((r["msg_id_parent"], r["body_parent"]),
                          (r["msg_id_child"], r["body_child"])):
            text.setdefault(mid, body)
            topic[mid], sub[mid] = t, r["subreddit"]
        parent_of[r["msg_id_child"]] = r["msg_id_parent"]
        agreement[r["msg_id_child"]] = int(r["label"])
    roots = [m for m in text if m not in parent_of]
    replies = [m for m in text if m in parent_of]
    posts = [PostPair(m, text[m], topic[m]) for m in roots]
    posts += [PostPair(m, text[m], topic[m], text[parent_of[m]]) for m in replies]
    return Thread(posts, parent_of, agreement, sub)
