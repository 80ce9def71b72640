"""Label: an analyst marks posts of one topic (stance, hostility, and for replies agreement
with the parent), one click per label. The labels go to the ``labels`` table
(``dashboard/label_store.py``, the dashboard's only warehouse write) and measure the topic's
accuracy on the Topic page.

Which post comes next (``scoring.label_accuracy.pick_next``): ``[dashboard] label_random_share``
of them drawn at random (the unbiased accuracy estimate), the rest the model's least confident
first. A post with a label is not shown again. Off unless ``[dashboard] allow_labels``, and then
only from the ``?token=`` link ``polarwatch dashboard`` prints (like editing events).
"""

from __future__ import annotations

import html
from typing import Any

import streamlit as st

from dashboard import label_store
from dashboard.analysis import is_missing
from dashboard.common import Context, ctx, known_topics, pick_topic
from dashboard.safety import md_text

CURRENT_KEY = "pw_label_current"  # {"topic", "post", "sample", "done": {task: value}}
SEEN_KEY = "pw_label_seen"  # (platform, id) labelled or skipped in this session
FLASH_KEY = "pw_label_flash"
CHOICES = {  # task -> (question, {value: button text})
    "stance": ("Stance towards the topic", {"pro": "pro", "anti": "anti", "unclear": "unclear"}),
    "affect": ("Hostile?", {"yes": "hostile", "no": "not hostile", "unclear": "unclear"}),
    "agreement": ("Does the reply agree with its parent?",
                  {"agree": "agrees", "disagree": "disagrees", "unclear": "unclear"}),
}


def card(who: str, text: object, when: object, indent: int = 0) -> str:
    """A post as HTML; every value from the data escaped, the text kept as typed."""
    stamp = "" if is_missing(when) else f" · {html.escape(str(when)[:16])} UTC"
    return (f'<div style="margin-left:{indent}px;border-left:3px solid #ccc;'
            f'padding:2px 10px;margin-bottom:8px"><small>{html.escape(who)}{stamp}</small><br>'
            f'<span style="white-space:pre-wrap">{html.escape(str(text))}</span></div>')


def tasks_for(post: dict[str, Any]) -> list[str]:
    """Stance and hostility for every post; agreement for a reply whose parent is stored."""
    return ["stance", "affect"] + ([] if is_missing(post.get("parent_text")) else ["agreement"])


def draw(c: Context, topic: str) -> dict[str, Any] | None:
    """The next post to show for `topic`, or None when every post has a label."""
    picked = label_store.next_post(c.warehouse, topic, c.label_random_share,
                                   skip=st.session_state.setdefault(SEEN_KEY, set()))
    if picked is None:
        return None
    post, sample = picked
    return {"topic": topic, "post": post, "sample": sample, "done": {}}


def finish(current: dict[str, Any]) -> None:
    post = current["post"]
    st.session_state.setdefault(SEEN_KEY, set()).add((post["platform"], post["id"]))
    st.session_state.pop(CURRENT_KEY, None)


def render_post(c: Context, current: dict[str, Any], labeller: str, allowed: bool) -> None:
    post = current["post"]
    if not is_missing(post.get("parent_text")):
        st.caption("In reply to:")
        st.html(card(str(post.get("parent_author") or "?"), post["parent_text"], None))
    st.html(card(str(post["author_id"]), post["text"], post["created_at"],
                 indent=28 if not is_missing(post.get("parent_text")) else 0))
    st.caption(f"Post {md_text(post['id'])} on {md_text(post['platform'])} · drawn "
               f"{'at random' if current['sample'] == 'random' else 'for its low confidence'}"
               f" · the model's labels are hidden so they do not sway you")
    done: dict[str, str] = current["done"]
    ident = f"{post['platform']}|{post['id']}"
    for task in tasks_for(post):
        question, values = CHOICES[task]
        st.markdown(f"**{question}**" + (f" — stored: {done[task]}" if task in done else ""))
        for col, (value, text) in zip(st.columns(len(values)), values.items(), strict=True):
            clicked = col.button(text, key=f"lbl|{task}|{value}|{ident}", disabled=not allowed,
                                 type="primary" if done.get(task) == value else "secondary",
                                 width="stretch")
            if clicked:
                store(c, current, labeller, task, value)
    if st.button("Skip this post", key=f"lbl_skip|{ident}"):
        finish(current)
        st.rerun()


def store(c: Context, current: dict[str, Any], labeller: str, task: str, value: str) -> None:
    """One click: store one label (refused unless this session may label), then the next
    task, or the next post once every task of this one has a label."""
    if not c.may_label():
        st.error("Not stored: labelling is off for this page (see above).")
        return
    if not labeller.strip():
        st.error("Not stored: type your name first (it is stored with each label).")
        return
    label_store.save_labels(c.warehouse, label_store.make_labels(
        current["post"], current["sample"], labeller, {task: value}))
    current["done"][task] = value
    if set(current["done"]) >= set(tasks_for(current["post"])):
        finish(current)
        st.session_state[FLASH_KEY] = f"Stored the labels of post {md_text(current['post']['id'])}."
    st.rerun()


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
    else:
        st.caption(f"{n_posts:,} posts of {md_text(context.name(chosen))} labelled, "
                   f"{n_random_posts:,} of them drawn at random.")
        if shown is None:
            st.success("Every stored post of this topic has a label.")
        else:
            render_post(context, shown, name, may_label)
