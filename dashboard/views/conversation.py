"""Conversation drill-down: the most polarized conversations in a time range, and a thread view
(indented by reply depth) with each post's labels, interaction score, backend and explanation.

The selected conversation travels in the ``conversation`` and ``platform`` query parameters (the
topic page sets them when it switches here), so a thread view is a shareable link. A conversation
is named by its platform and its id there, as a post is: two platforms' threads sharing an id are
two conversations. A link without ``platform`` (from before) opens that id on the first platform
that has it and offers the others.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import queries
from dashboard.analysis import fmt_score, is_missing
from dashboard.common import (
    Context,
    conversation_keys,
    conversation_label,
    ctx,
    known_topics,
    read,
    table,
)
from dashboard.safety import md_text
from dashboard.threads import cycles_in
from polarwatch.display import isolated, name_text

LIMIT = 25
INDENT_PX = 28  # per reply level
DEFAULT_DAYS = 7  # default range: the week up to the newest conversation not in the future
ALL_TOPICS = "(all topics)"


def post_html(row: Any) -> str:
    """One post as an indented card; every value from the data is HTML-escaped."""
    def esc(value: Any) -> str:  # an id or label: bidi controls visible, RTL isolated
        return "—" if is_missing(value) else html.escape(name_text(value))

    def text(value: Any) -> str:  # free text as typed, isolated from the labels around it
        return "—" if is_missing(value) else html.escape(isolated(value))

    labels = [f"stance <b>{esc(row['stance'])}</b>", f"affect <b>{esc(row['affect'])}</b>"]
    if row["depth"] > 0 or not is_missing(row["agreement"]):
        labels.append(f"agreement <b>{esc(row['agreement'])}</b>")
    if not is_missing(row["score"]):
        labels.append(f"interaction score <b>{fmt_score(row['score'])}</b>")
    labels.append(f"backend <code>{esc(row['backend'])}</code>")
    when = pd.Timestamp(row["created_at"]).strftime("%Y-%m-%d %H:%M")
    explanation = ""
    if not is_missing(row["explanation"]):
        explanation = f"<br><i>why: {text(row['explanation'])}</i>"
    rule = "" if is_missing(row["rule"]) else f" · rule <code>{esc(row['rule'])}</code>"
    if bool(row.get("in_cycle", False)):
        rule += (f" · in a reply cycle (replies to {esc(row['parent_id'])})"
                 if row["depth"] == 0 else " · in a reply cycle")
    return (f'<div style="margin-left:{int(row["depth"]) * INDENT_PX}px;'
            f'border-left:3px solid #ccc;padding:2px 10px;margin-bottom:8px">'
            f'<small>{esc(row["id"])} · {esc(row["author_id"])} · {when} UTC</small><br>'
            f'<span style="white-space:pre-wrap">{text(row["text"])}</span><br><small>{" · ".join(labels)}{rule}{explanation}</small>'
            f"</div>")


def render_thread(c: Context, platform: str, conversation: str) -> None:
    posts = read(c, queries.thread, platform, conversation, queries.THREAD_MAX_POSTS,
                 queries.THREAD_MAX_DEPTH)
    if posts is None:
        return
    on = f" on {md_text(platform)}" if platform else ""
    if posts.empty:
        st.warning(f"Conversation {md_text(conversation)}{on} has no stored posts.")
        return
    scores = posts["score"].dropna().astype(float)
    topic = str(posts["topic"].iloc[0])
    st.subheader(f"Thread {md_text(conversation)}{on}")
    n_cycle, starts, whole = cycles_in(posts)
    if n_cycle:
        lead = ("This conversation has no opening post: its replies form a cycle" if whole
                else "Some replies of this conversation form a cycle")
        st.info(f"{lead} ({n_cycle:,} posts, each replying to another of them, so none leads "
                f"back to an opening post). Each cycle is shown from its earliest post, at "
                f"depth 0: {', '.join(md_text(p) for p in starts)}.")
    total = read(c, queries.thread_size, platform, conversation)
    if total is not None and total > len(posts):
        st.warning(f"Showing {len(posts):,} of this thread's {total:,} posts: the first "
                   f"{queries.THREAD_MAX_POSTS:,} in thread order, down to reply depth "
                   f"{queries.THREAD_MAX_DEPTH:,}.")
    a, b, d = st.columns(3)
    a.metric("Posts", f"{len(posts):,}" if total is None else f"{total:,}")
    b.metric("Mean interaction score", fmt_score(scores.mean() if len(scores) else None))
    d.metric("Topic", md_text(c.name(topic)))
    # st.html, not st.markdown: post text is shown as text. Through Markdown a blank line in a
    # post ended the HTML block and the rest was parsed: `![x](http://host/p.png)` made the
    # analyst's browser fetch the image, telling its author when and from where it was read.
    st.html("\n".join(post_html(r) for _, r in posts.iterrows()))
    with st.expander("As a table"):
        table(posts, hide_index=True)


def date_range(convs_hint: pd.Timestamp | None) -> tuple[datetime, datetime]:
    end_day = (convs_hint or pd.Timestamp.now(tz=UTC)).date()
    picked = st.date_input("Conversations started between (UTC)",
                           (end_day - timedelta(days=DEFAULT_DAYS), end_day), key="conv_range")
    days = [d for d in (picked if isinstance(picked, tuple) else (picked,))
            if isinstance(d, date)]
    start = days[0] if days else end_day
    end = days[-1] if days else end_day
    return (datetime.combine(start, time(0), tzinfo=UTC),
            datetime.combine(end, time(0), tzinfo=UTC) + timedelta(days=1))


def render_list(c: Context, topics: list[str]) -> list[tuple[str, str]]:
    """The conversations started in the picked range, listed; returns their (platform, id)."""
    topic = st.selectbox("Topic", [ALL_TOPICS, *topics], key="conv_topic",
                         format_func=lambda t: t if t == ALL_TOPICS else name_text(c.name(t)))
    latest = read(c, queries.latest_conversation_start)
    hint = None if latest is None or is_missing(latest) else pd.Timestamp(latest)
    start, end = date_range(hint)
    convs = read(c, queries.conversations_in_range,
                 None if topic == ALL_TOPICS else topic, start, end, LIMIT)
    if convs is None:
        return []
    if convs.empty:
        st.info(f"No scored conversations started between {start:%Y-%m-%d} and "
                f"{end - timedelta(days=1):%Y-%m-%d}. Widen the range.")
        return []
    keys = conversation_keys(convs)
    convs = convs.assign(topic=[c.name(str(t)) for t in convs["topic"]],  # names, as elsewhere
                         root_text=[isolated(t) for t in convs["root_text"]])
    table(convs, hide_index=True, column_config={
        "conversation_id": st.column_config.TextColumn("conversation"),
        "platform": st.column_config.TextColumn("platform"),
        "topic": st.column_config.TextColumn("topic"),
        "root_text": st.column_config.TextColumn("opening post", width="large"),
        "mean_score": st.column_config.ProgressColumn(
            "polarization", min_value=0.0, max_value=10.0, format="%.2f"),
        "n_interactions": st.column_config.NumberColumn("interactions"),
        "first_at": st.column_config.DatetimeColumn("first reply (UTC)",
                                                    format="YYYY-MM-DD HH:mm"),
        "last_at": st.column_config.DatetimeColumn("last reply (UTC)",
                                                   format="YYYY-MM-DD HH:mm")},
        column_order=["conversation_id", "platform", "topic", "mean_score", "n_interactions",
                      "root_text", "first_at", "last_at"])
    return keys


def linked(c: Context) -> list[tuple[str, str]]:
    """The conversation a link (or the topic page) names, as (platform, id), first; then the
    other platforms' conversations of that id. A link without a platform (from before) names
    the first platform that has one."""
    wanted = st.query_params.get("conversation")
    if not wanted:
        kept = st.session_state.get("pw_conversation")
        return [(str(kept[0]), str(kept[1]))] if isinstance(kept, tuple) else []
    platform = st.query_params.get("platform")
    found = read(c, queries.conversation_platforms, wanted) or []
    if platform is None:
        if len(found) > 1:
            st.info(f"{len(found)} platforms have a conversation {md_text(wanted)} "
                    f"({', '.join(md_text(p) for p in found)}): pick one below.")
        platform = found[0] if found else ""
    return [(platform, wanted), *((p, wanted) for p in found if p != platform)]


context = ctx()
st.title("Conversations")
topics = known_topics(context)
if topics is not None:
    keys = render_list(context, topics)
    wanted = linked(context)
    keys = [k for k in wanted if k not in keys] + keys  # a link outside the range still opens
    if keys:
        if wanted and st.session_state.get("pw_conversation_qp") != wanted[0]:
            st.session_state["conv_pick"] = wanted[0]
        platform, conversation = st.selectbox("Open conversation", keys, key="conv_pick",
                                              format_func=conversation_label) or keys[0]
        st.query_params["conversation"] = conversation
        st.query_params["platform"] = platform
        st.session_state["pw_conversation_qp"] = (platform, conversation)
        st.session_state["pw_conversation"] = (platform, conversation)
        render_thread(context, platform, conversation)
