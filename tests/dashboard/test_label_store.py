"""The dashboard's one warehouse write: labels from the contract, the queue the Label page
draws from (labelled posts leave it), and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from dashboard import label_store
from dashboard.analysis import is_missing, label_accuracy, stance_labels_left_out
from dashboard.label_store import LabelError, make_labels, save_labels
from polarwatch.warehouse import connect

from .conftest import seed_warehouse

NOW = datetime(2026, 3, 5, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return seed_warehouse(tmp_path / "w.duckdb").path


def test_a_labelled_post_leaves_both_queues_and_its_labels_are_stored(warehouse: Path) -> None:
    rand, info = label_store.queue(warehouse, "gun_control")
    assert len(rand) == len(info) == 13
    assert set(rand["id"]) == set(info["id"])
    reply = info[info["id"] == "h3"].iloc[0].to_dict()
    assert reply["parent_text"] == "reply h1"  # a reply comes with its parent
    save_labels(warehouse, make_labels(reply, "random", "ana",
                                       {"stance": "anti", "agreement": "disagree"}, NOW))
    # labelled in part (a reload after one click, another page): it stays, with what it has
    rand, info = label_store.queue(warehouse, "gun_control")
    assert "h3" in set(rand["id"]) and "h3" in set(info["id"]) and len(rand) == 13
    assert label_store.stored_tasks(warehouse, "test", "h3") == {"stance": "anti",
                                                                 "agreement": "disagree"}
    save_labels(warehouse, make_labels(reply, "random", "ana", {"affect": "no"}, NOW))
    rand, info = label_store.queue(warehouse, "gun_control")
    assert "h3" not in set(rand["id"]) | set(info["id"]) and len(rand) == 12
    assert label_store.label_counts(warehouse, "gun_control") == (1, 1)
    with connect(warehouse, read_only=True) as con:
        rows = con.execute("SELECT platform, post_id, topic, task, value, sample, model_value, "
                           "model_confidence, labeller FROM labels ORDER BY task").fetchall()
    assert rows == [("test", "h3", "gun_control", "affect", "no", "random", "no", 0.9, "ana"),
                    ("test", "h3", "gun_control", "agreement", "disagree", "random",
                     "disagree", 0.8, "ana"),
                    ("test", "h3", "gun_control", "stance", "anti", "random", "pro", 0.9,
                     "ana")]
    measured = label_accuracy(label_store.random_labels(warehouse), "gun_control")
    assert (measured["stance"].n, measured["stance"].accuracy) == (1, 0.0)
    assert measured["agreement"].accuracy == 1.0


def test_the_same_labeller_correcting_a_label_replaces_it(warehouse: Path) -> None:
    post = label_store.queue(warehouse, "gun_control")[0].iloc[0].to_dict()
    save_labels(warehouse, make_labels(post, "random", "ana", {"stance": "anti"}, NOW))
    save_labels(warehouse, make_labels(post, "random", "ana", {"stance": "pro"}, NOW))
    save_labels(warehouse, make_labels(post, "random", "bo", {"stance": "anti"}, NOW))
    with connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT labeller, value FROM labels ORDER BY 1").fetchall() == [
            ("ana", "pro"), ("bo", "anti")]


@pytest.mark.parametrize(("sample", "verdicts", "message"), [
    ("random", {"stance": "maybe"}, "stance label 'maybe' is not one of pro, anti, unclear"),
    ("random", {"emotion": "joy"}, "task 'emotion' is not one of stance, affect, agreement"),
    ("chosen", {"stance": "pro"}, "sample 'chosen' is not one of random, informative"),
])
def test_labels_outside_the_contract_are_refused(sample: str, verdicts: dict[str, str],
                                                 message: str) -> None:
    post = {"platform": "p", "id": "1", "topic": "t", "stance": "pro", "stance_conf": 0.5}
    with pytest.raises(LabelError, match=message):
        make_labels(post, sample, "ana", verdicts)


def test_a_file_from_before_the_labels_table_reads_as_nothing_labelled(warehouse: Path) -> None:
    with connect(warehouse) as con:
        con.execute("DROP TABLE labels")
        con.execute("DELETE FROM schema_version WHERE version >= 5")  # as before migration 5
    assert label_store.label_counts(warehouse, "gun_control") == (0, 0)
    assert len(label_store.queue(warehouse, "gun_control")[0]) == 13
    assert label_store.random_labels(warehouse).empty
    post = label_store.queue(warehouse, "gun_control")[0].iloc[0].to_dict()
    save_labels(warehouse, make_labels(post, "informative", "ana", {"affect": "yes"}, NOW))
    assert label_store.label_counts(warehouse, "gun_control") == (1, 0)
    assert isinstance(label_store.random_labels(warehouse), pd.DataFrame)


def test_posts_the_llm_contradicts_come_first_in_the_informative_share(warehouse: Path) -> None:
    from dashboard.label_store import make_suggestions, save_suggestions

    _, info = label_store.queue(warehouse, "gun_control")
    # least confident first: the replies (agreement 0.8) before the roots (0.9); e0 is a root
    order = list(info["id"])
    assert order.index("e0") > order.index("h1") and set(info["disagreements"]) == {0}
    posts = {r["id"]: r for r in info.to_dict("records")}
    save_suggestions(warehouse, make_suggestions(posts["e0"], "smol", "v", {"stance": "anti"},
                                                 None, "ana", NOW))  # the model says pro
    save_suggestions(warehouse, make_suggestions(posts["c0"], "smol", "v", {"stance": "pro"},
                                                 None, "ana", NOW))  # agrees: no priority
    _, info = label_store.queue(warehouse, "gun_control")
    assert list(info["id"]) == ["e0"] + [i for i in order if i != "e0"]
    assert info.iloc[0]["disagreements"] == 1
    picked = label_store.next_post(warehouse, "gun_control", random_share=0.0)
    assert picked is not None
    post, sample = picked
    assert (post["id"], sample) == ("e0", "informative")
    rand, _ = label_store.queue(warehouse, "gun_control")  # the random order is untouched
    assert list(rand["id"]) == list(label_store.queue(warehouse, "gun_control")[0]["id"])
    assert "disagreements" in rand and len(rand) == 13


def every_task(post: dict[str, object], stance: str = "anti") -> dict[str, str]:
    """Labels of all the tasks the Label page asks for the post (views/label.tasks_for)."""
    return {"stance": stance, "affect": "no"} | (
        {} if is_missing(post.get("parent_text")) else {"agreement": "agree"})


def test_the_random_sample_keeps_posts_the_informative_share_labelled_first(
        warehouse: Path) -> None:
    """The random share walks a fixed random order and skips labelled posts; a post the
    least-confident share took before the walk reached it is still part of the random sample
    (leaving it out would drop exactly the posts the model is least sure of)."""
    rand, _ = label_store.queue(warehouse, "gun_control")
    first, second, third, *_, far = rand.to_dict("records")
    for post in (second, far):  # every task of the post, so that it leaves the queue
        save_labels(warehouse, make_labels(post, "informative", "ana", every_task(post), NOW))
    for post in (first, third):  # the random draws: the walk skips `second`, labelled already
        drawn = label_store.next_post(warehouse, "gun_control", 1.0)
        assert drawn is not None and drawn[0]["id"] == post["id"]
        save_labels(warehouse, make_labels(post, "random", "ana", every_task(post, "pro"), NOW))
    measured = label_accuracy(label_store.random_labels(warehouse), "gun_control")["stance"]
    # first, second and third (the model says pro for all): `far` lies beyond the last draw
    assert (measured.n, measured.correct) == (3, 2)


def test_stance_accuracy_reads_each_label_under_the_topic_s_sides_now(warehouse: Path) -> None:
    """A pro/anti swap, a retrain and `relabel` flip the posts' stance; the analysts' labels
    were given under the old sides. Read as given, a topic the analysts had validated measured
    about 0; each label is now flipped when given under the sides swapped, left out when given
    under other descriptions, and kept when given before sides were recorded."""
    sides = ("Wants stricter gun laws", "Wants looser gun laws")
    posts = label_store.queue(warehouse, "gun_control")[0].head(4).to_dict("records")
    for post in posts:  # the analyst agrees with the model under the sides shown
        save_labels(warehouse, make_labels(post, "random", "ana", {"stance": post["stance"]},
                                           NOW, sides=sides))
    ids = [p["id"] for p in posts]
    with connect(warehouse) as con:  # the swap and relabel: every stored stance flipped
        con.execute("UPDATE posts SET stance = CASE stance WHEN 'pro' THEN 'anti' "
                    "WHEN 'anti' THEN 'pro' ELSE stance END WHERE id IN "
                    "(SELECT unnest(?::VARCHAR[]))", [ids])
    labels = label_store.random_labels(warehouse)
    taken = sum(p["stance"] in ("pro", "anti") for p in posts)
    assert taken >= 2  # the seed has sided posts to flip

    swapped = label_accuracy(labels, "gun_control", sides[::-1])["stance"]
    assert (swapped.n, swapped.accuracy) == (4, 1.0)
    as_given = label_accuracy(labels, "gun_control")["stance"]
    assert as_given.correct == 4 - taken  # what the page showed before: only unclear agreed
    other = label_accuracy(labels, "gun_control", ("Gun control", "No gun control"))
    assert "stance" not in other  # another question: no stance labels to measure
    assert stance_labels_left_out(labels, "gun_control", ("Gun control", "No gun control")) == 4
    assert stance_labels_left_out(labels, "gun_control", sides[::-1]) == 0
    with connect(warehouse) as con:  # labels from before the sides were recorded: as given
        con.execute("UPDATE labels SET pro_description = NULL, anti_description = NULL")
    before = label_accuracy(label_store.random_labels(warehouse), "gun_control", sides[::-1])
    assert before["stance"].correct == 4 - taken


def test_a_flipped_label_of_a_post_no_longer_stored_is_compared_with_the_flipped_model(
        warehouse: Path) -> None:
    """A post pruned by keep_days is compared with the model's label when it was shown, which
    was given under the old sides too (a review: each such label counted as wrong)."""
    sides = ("Wants stricter gun laws", "Wants looser gun laws")
    posts = [p for p in label_store.queue(warehouse, "gun_control")[0].to_dict("records")
             if p["stance"] in ("pro", "anti")][:3]
    assert len(posts) == 3
    for post in posts:  # the analyst agrees with the model under the sides shown
        save_labels(warehouse, make_labels(post, "random", "ana", {"stance": post["stance"]},
                                           NOW, sides=sides))
    with connect(warehouse) as con:
        con.execute("DELETE FROM posts WHERE id IN (SELECT unnest(?::VARCHAR[]))",
                    [[p["id"] for p in posts]])
    measured = label_accuracy(label_store.random_labels(warehouse), "gun_control", sides[::-1])
    assert (measured["stance"].n, measured["stance"].accuracy) == (3, 1.0)
