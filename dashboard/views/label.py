"""Label: an analyst marks posts of one topic (stance, hostility, and for replies agreement
with the parent), one click per label. The labels go to the ``labels`` table
(``dashboard/label_store.py``, the dashboard's only warehouse write) and measure the topic's
accuracy on the Topic page.

Which post comes next (``scoring.label_accuracy.pick_next``): ``[dashboard] label_random_share``
of them drawn at random (the unbiased accuracy estimate), the rest those where the LLM's stored
suggestion contradicts the model first, then the model's least confident. A post with a label
is not shown again. Off unless ``[dashboard] allow_labels``, and then only from the ``?token=``
link ``polarwatch dashboard`` prints (like editing events).

Under the stance question the page shows the topic's ``pro`` and ``anti`` descriptions
(topics.toml, read when the post is drawn), and a stance label stores them: a retrain reads each
label under the topic's sides then (``polarwatch.reads.read_stance_labels``).

Every label has one key (Streamlit's ``st.button(shortcut=...)``): 1/2/3 stance, 4/5/6
hostility, 7/8/9 agreement, S skip, L ask the LLM. With an ``llm`` backend configured, "Ask the
LLM" shows its suggestion (``dashboard/label_assist.py``), stored apart from the analyst's labels
so the page can show how often it agrees with them; it is never counted as a label.

"Retrain" (labelling allowed, from the token link) runs what ``polarwatch train --from-warehouse
--topic ID`` runs (``read_stance_labels``, then ``scoring.retrain_topic``): it writes the head
file to ``[extractor] learned_topic_heads_dir`` only when it beats the serving head, and nothing
to the warehouse; the page shows the cross-validated figures and how the stream picks it up.
"""

from __future__ import annotations

import html
from typing import Any

import duckdb
import streamlit as st

from dashboard import label_assist, label_store
from dashboard.analysis import describe_llm_agreement, is_missing
from dashboard.common import Context, ctx, known_topics, pick_topic, unreadable
from dashboard.safety import md_text
from polarwatch.config import load_config
from polarwatch.display import isolated, name_text
from polarwatch.errors import PolarwatchError
from polarwatch.reads import read_stance_labels
from scoring.extractors.base import Extractor
from scoring.extractors.llm_http import PROMPT_VERSION
from scoring.retrain import FOLDS, MIN_LABELS
from scoring.retrain_topic import prepare, train_topic

CURRENT_KEY = "pw_label_current"  # {"topic", "post", "sample", "done": {task: value}}
SEEN_KEY = "pw_label_seen"  # (platform, id) labelled or skipped in this session
FLASH_KEY = "pw_label_flash"
MINE_KEY = "pw_label_mine"  # (platform, id, task) this session stored: its own to correct
RETRAIN_KEY = "pw_label_retrain"  # topic -> (written/kept/error, lines): the last retrain
CHOICES = {  # task -> (question, {value: button text})
    "stance": ("Stance towards the topic", {"pro": "pro", "anti": "anti", "unclear": "unclear"}),
    "affect": ("Hostile?", {"yes": "hostile", "no": "not hostile", "unclear": "unclear"}),
    "agreement": ("Does the reply agree with its parent?",
                  {"agree": "agrees", "disagree": "disagrees", "unclear": "unclear"}),
}
# One key per label: a row of three keys per task, in the order of the buttons
KEYS = {task: dict(zip(values, keys, strict=True)) for (task, (_, values)), keys
        in zip(CHOICES.items(), ("123", "456", "789"), strict=True)}
SKIP_KEY, ASK_KEY = "S", "L"
TASK_NAMES = {"stance": "stance", "affect": "hostility", "agreement": "agreement"}


def label_named(task: str, value: str) -> str:
    """One label as the analyst clicked it: "stance: pro", "hostility: not hostile"."""
    return f"{TASK_NAMES[task]}: {CHOICES[task][1][value]}"


def keys_help(tasks: list[str]) -> str:
    """The keys of the post shown, as one line."""
    parts = [f"{KEYS[task][value]} {text}" for task in tasks
             for value, text in CHOICES[task][1].items()]
    return "Keys: " + " · ".join(parts + [f"{SKIP_KEY} skip"])


def card(who: str, text: object, when: object, indent: int = 0) -> str:
    """A post as HTML; every value from the data escaped, the text kept as typed (isolated:
    right-to-left text or a bidi control in it cannot reorder the header)."""
    stamp = "" if is_missing(when) else f" · {html.escape(str(when)[:16])} UTC"
    return (f'<div style="margin-left:{indent}px;border-left:3px solid #ccc;'
            f'padding:2px 10px;margin-bottom:8px"><small>{html.escape(name_text(who))}{stamp}</small><br>'
            f'<span style="white-space:pre-wrap">{html.escape(isolated(text))}</span></div>')


def tasks_for(post: dict[str, Any]) -> list[str]:
    """Stance and hostility for every post; agreement for a reply whose parent is stored."""
    return ["stance", "affect"] + ([] if is_missing(post.get("parent_text")) else ["agreement"])


def topic_sides(topic: str) -> tuple[str, str] | None:
    """The topic's (pro, anti) descriptions in topics.toml now; None when it is not there (or
    the file cannot be read)."""
    try:
        found = [t for t in load_config().load_topics() if t.id == topic]
    except PolarwatchError:
        return None
    return (found[0].pro, found[0].anti) if found else None


def draw(c: Context, topic: str) -> dict[str, Any] | None:
    """The next post to show for `topic`, or None when every post has its labels. The topic's
    sides are read once per post: what the page shows is what its stance label stores."""
    picked = label_store.next_post(c.warehouse, topic, c.label_random_share,
                                   skip=st.session_state.setdefault(SEEN_KEY, set()))
    if picked is None:
        return None
    post, sample = picked  # a post labelled in part shows the labels it has (label_store)
    return {"topic": topic, "post": post, "sample": sample,
            "done": label_store.stored_tasks(c.warehouse, post["platform"], post["id"]),
            "sides": topic_sides(topic)}


def sides_caption(sides: Any) -> str:
    """What pro and anti mean for the post shown (topics.toml), under the stance question."""
    if not sides:
        return ("This topic is not in topics.toml (or it cannot be read): what pro and anti "
                "mean is unknown, and a stance label is stored without them.")
    return f"**pro**: {md_text(sides[0])} · **anti**: {md_text(sides[1])}"


def unheeded_click() -> str | None:
    """What the button clicked for this run asked for ("Not stored: your label stance: pro"),
    when the page stopped before it could act on it (the warehouse could not be read); None
    when no label or retrain button was clicked."""
    for key, clicked in st.session_state.items():
        if clicked is not True or not isinstance(key, str):
            continue
        if key.startswith("lbl|"):
            _, task, value, _ = key.split("|", 3)
            return (f"Not stored: your label {label_named(task, value)}; click it again once "
                    f"the warehouse can be read.")
        if key.startswith("lbl_retrain|"):
            return "Not retrained: the labels could not be read."
    return None


def finish(current: dict[str, Any]) -> None:
    post = current["post"]
    st.session_state.setdefault(SEEN_KEY, set()).add((post["platform"], post["id"]))
    st.session_state.pop(CURRENT_KEY, None)


def why_drawn(sample: str, post: dict[str, Any]) -> str:
    if sample == "random":
        return "at random"
    if not is_missing(post.get("disagreements")) and int(post["disagreements"]) > 0:
        return "because the LLM's suggestion contradicts the model"
    return "for its low confidence"


def render_post(c: Context, current: dict[str, Any], labeller: str, allowed: bool) -> None:
    post = current["post"]
    if not is_missing(post.get("parent_text")):
        st.caption("In reply to:")
        st.html(card(str(post.get("parent_author") or "?"), post["parent_text"], None))
    st.html(card(str(post["author_id"]), post["text"], post["created_at"],
                 indent=28 if not is_missing(post.get("parent_text")) else 0))
    st.caption(f"Post {md_text(post['id'])} on {md_text(post['platform'])} · drawn "
               f"{why_drawn(current['sample'], post)} · the model's labels are hidden so they "
               f"do not sway you")
    done: dict[str, str] = current["done"]
    ident = f"{post['platform']}|{post['id']}"
    for task in tasks_for(post):
        question, values = CHOICES[task]
        stored = f" — stored: {md_text(done[task])}" if task in done else ""  # a table's value
        st.markdown(f"**{question}**{stored}")
        if task == "stance":
            st.caption(sides_caption(current.get("sides")))
        for col, (value, text) in zip(st.columns(len(values)), values.items(), strict=True):
            clicked = col.button(text, key=f"lbl|{task}|{value}|{ident}", disabled=not allowed,
                                 type="primary" if done.get(task) == value else "secondary",
                                 width="stretch", shortcut=KEYS[task][value])
            if clicked:
                store(c, current, labeller, task, value)
    if st.button("Skip this post", key=f"lbl_skip|{ident}", shortcut=SKIP_KEY):
        finish(current)
        st.rerun()
    st.caption(keys_help(tasks_for(post)) + (f" · {ASK_KEY} ask the LLM"
                                              if c.llm_assist_seconds else ""))
    if c.llm_assist_seconds:
        render_assistant(c, current, labeller, allowed)


@st.cache_resource(show_spinner=False)
def assistant(seconds: float) -> Extractor:
    """The configured llm backend, built once per server (it keeps its connection pool)."""
    return label_assist.assistant(load_config(), seconds)


def render_assistant(c: Context, current: dict[str, Any], labeller: str, allowed: bool) -> None:
    """The LLM's suggestion for the post shown, on request; stored apart from the labels."""
    post = current["post"]
    suggestion = current.get("suggestion")
    if suggestion:
        st.markdown("**The LLM suggests** (not your label, not counted): " + " · ".join(
            f"{CHOICES[task][0].lower()}: {md_text(CHOICES[task][1][value])}"
            for task, value in suggestion["values"].items()))
        if suggestion["explanation"]:
            st.text(suggestion["explanation"])
    if current.get("suggestion_error"):
        st.warning(f"No suggestion: {md_text(current['suggestion_error'])}. Label the post "
                   f"yourself; nothing was stored.")
    if st.button("Ask the LLM", key=f"lbl_ask|{post['platform']}|{post['id']}",
                 shortcut=ASK_KEY, disabled=not allowed or bool(suggestion),
                 help=f"One request to the configured llm server, at most "
                      f"{c.llm_assist_seconds:g} s ([dashboard] llm_assist_seconds)"):
        ask(c, current, labeller)


def ask(c: Context, current: dict[str, Any], labeller: str) -> None:
    if not c.may_label():
        st.error("Not asked: labelling is off for this page (see above).")
        return
    post = current["post"]
    current.pop("suggestion_error", None)
    with st.spinner(f"Asking the LLM (at most {c.llm_assist_seconds:g} s)…"):
        try:
            extractor = assistant(c.llm_assist_seconds)
            got = label_assist.ask(extractor, post, tasks_for(post))
            label_store.save_suggestions(c.warehouse, label_store.make_suggestions(
                post, got.model, PROMPT_VERSION, got.values, got.explanation, labeller))
        except PolarwatchError as exc:  # AssistError; a broken config or topics file
            current["suggestion_error"] = str(exc)
        except duckdb.Error as exc:  # the suggestion came, but the warehouse is locked
            current["suggestion_error"] = unreadable(c.warehouse, exc)
        else:
            current["suggestion"] = {"values": got.values, "explanation": got.explanation}
    st.rerun()


def render_agreement(c: Context, topic: str) -> None:
    """How often the LLM's suggestions matched the analysts' labels on `topic`."""
    sentence = describe_llm_agreement(label_store.suggestion_pairs(c.warehouse, topic))
    if sentence:
        st.caption(sentence)


def store(c: Context, current: dict[str, Any], labeller: str, task: str, value: str) -> None:
    """One click: store one label (refused unless this session may label), then the next
    task, or the next post once every task of this one has a label."""
    if not c.may_label():
        st.error("Not stored: labelling is off for this page (see above).")
        return
    if not labeller.strip():
        st.error("Not stored: type your name first (it is stored with each label).")
        return
    sides, post = current.get("sides"), current["post"]
    mine = st.session_state.setdefault(MINE_KEY, set())
    try:  # the same name's label from another session (both drew the post): not replaced
        theirs = None if (post["platform"], post["id"], task) in mine else \
            label_store.stored_value(c.warehouse, post["platform"], post["id"], task, labeller)
        if theirs is None:
            label_store.save_labels(c.warehouse, label_store.make_labels(
                post, current["sample"], labeller, {task: value},
                sides=(str(sides[0]), str(sides[1])) if sides else None))
    except (duckdb.Error, PolarwatchError) as exc:  # locked by another process, unreadable
        st.error(f"Not stored: your label {label_named(task, value)}; click it again once the "
                 f"warehouse can be written. {unreadable(c.warehouse, exc)}")
        return
    if theirs is not None:
        st.error(f"Not stored: post {md_text(post['id'])} already has the {TASK_NAMES[task]} "
                 f"label {md_text(theirs)} under the name {md_text(labeller.strip())}, given in "
                 f"another session (two people label under that name, and one would replace "
                 f"the other's). Type your own name above and click again, or skip the post.")
        return
    mine.add((post["platform"], post["id"], task))
    current["done"][task] = value
    if set(current["done"]) >= set(tasks_for(current["post"])):
        finish(current)
        st.session_state[FLASH_KEY] = f"Stored the labels of post {md_text(current['post']['id'])}."
    st.rerun()


def render_retrain(c: Context, topic: str) -> None:
    """The retrain button and the last retrain's outcome for `topic` (labelling allowed only)."""
    st.subheader("Retrain this topic's stance head")
    st.caption(f"Fits a stance head for {md_text(c.name(topic))} from the analysts' stance "
               f"labels (the latest per post, random and least confident alike; one given "
               f"while pro and anti were the other way round is flipped, one given under other "
               f"descriptions is left out), starting from "
               f"the general model, and {FOLDS}-fold cross-validates it against the head serving "
               f"the topic now, as `polarwatch train --from-warehouse --topic` {md_text(topic)}. Needs "
               f"{MIN_LABELS} stance labels, {FOLDS} each of pro and anti. The head file is "
               f"written only if it wins; the warehouse is not changed.")
    if st.button("Retrain from the labels", key=f"lbl_retrain|{topic}"):
        retrain(c, topic)
    outcome = st.session_state.get(RETRAIN_KEY, {}).get(topic)
    if outcome is not None:
        kind, lines = outcome
        {"written": st.success, "kept": st.warning, "error": st.error}[kind](md_text(lines[0]))
        for line in lines[1:]:
            st.info(md_text(line))


def retrain(c: Context, topic: str) -> None:
    if not c.may_label():
        st.error("Not retrained: labelling is off for this page (see above).")
        return
    with st.spinner(f"Retraining: loading the learned backend, then {FOLDS}-fold "
                    f"cross-validation (a minute at most)…"):
        try:  # what `polarwatch train --from-warehouse --topic ID` runs (stream/retrain.py)
            cfg = load_config()
            chosen, out = prepare(cfg, topic)
            texts, labels = read_stance_labels(c.warehouse, chosen.id, (chosen.pro, chosen.anti))
            done = train_topic(cfg, chosen, out, texts, labels)
        except PolarwatchError as exc:  # too few labels, not the learned backend, no heads dir
            outcome = ("error", [f"Not retrained: {exc}"])
        except duckdb.Error as exc:  # the labels could not be read: the warehouse is locked
            outcome = ("error", [f"Not retrained: {unreadable(c.warehouse, exc)}"])
        else:
            first, *rest = done.lines()
            outcome = ("written", [f"Retrained: {first}"] + [f"To use it: {r}" for r in rest]
                       ) if done.written else ("kept", [f"Not shipped: {first}"])
    st.session_state.setdefault(RETRAIN_KEY, {})[topic] = outcome


def refusal(c: Context) -> str:
    if c.allow_labels:
        return ("Labelling is on, but only from the link `polarwatch dashboard` printed when it "
                "started (it carries `?token=`): a page from another site cannot know it, so it "
                "cannot store labels. Open that link.")
    return ("Labelling is off: this page shows posts but stores nothing. To label, set "
            "`[dashboard] allow_labels = true` in polarwatch.toml (or "
            "`POLARWATCH_DASHBOARD_ALLOW_LABELS=true`), restart `polarwatch dashboard` and "
            "open the link it prints.")


context = ctx()
st.title("Label")
st.caption("Mark what each post says; the labels drawn at random measure the topic's accuracy "
           "on the Topic page.")
topics = known_topics(context)
if topics is None and (unheeded := unheeded_click()):
    st.error(unheeded)
if topics is not None:
    chosen = pick_topic(context, topics)
    may_label = context.may_label()
    if not may_label:
        st.info(refusal(context))
    flash = st.session_state.pop(FLASH_KEY, None)
    if flash:
        st.success(flash)
    name = str(st.text_input("Your name (stored with each label)", value="analyst",
                             key="pw_labeller", disabled=not may_label))
    try:
        n_posts, n_random_posts = label_store.label_counts(context.warehouse, chosen)
        shown = st.session_state.get(CURRENT_KEY)
        if not shown or shown["topic"] != chosen:
            shown = draw(context, chosen)
            st.session_state[CURRENT_KEY] = shown
    except FileNotFoundError:
        st.info("No warehouse yet — run `make demo` or `polarwatch stream`.")
    except (duckdb.Error, PolarwatchError) as exc:  # locked by another process, unreadable
        st.error(" ".join(filter(None, [unheeded_click(), unreadable(context.warehouse, exc)])))
    else:
        st.caption(f"{n_posts:,} posts of {md_text(context.name(chosen))} labelled, "
                   f"{n_random_posts:,} of them drawn at random.")
        if context.llm_assist_seconds:
            render_agreement(context, chosen)
        if shown is None and not label_store.stored_posts(context.warehouse, chosen):
            st.info(f"No stored posts for {md_text(context.name(chosen))}: nothing to label. "
                    f"Its windows are kept, but its posts are not stored (yet, or any more: "
                    f"`[warehouse] keep_days` prunes old posts).")
        elif shown is None:
            st.success("Every stored post of this topic has a label.")
        else:
            render_post(context, shown, name, may_label)
        if may_label:
            render_retrain(context, chosen)
