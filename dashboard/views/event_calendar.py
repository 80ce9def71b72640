"""Events: add, edit or delete scheduled / sudden events in the calendar (``events.toml``).

A calendar that does not load cannot be edited here. When its only fault is events on topics
no longer in ``topics.toml``, the page names each with the ``polarwatch events remove`` command
that removes it and, where the page may write, a button doing the same through
:func:`polarwatch.events.remove_event` (under the calendar's lock)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from dashboard.analysis import events_frame
from dashboard.common import Context, ctx, table
from dashboard.safety import md_text
from polarwatch.display import name_text
from polarwatch.errors import PolarwatchError
from polarwatch.events import (
    KINDS,
    Event,
    EventError,
    load_events,
    make_event,
    off_topic,
    remove,
    remove_command,
    remove_event,
    update_events,
    upsert,
)

NEW = "New event…"
FORM_GENERATION = "pw_events_form"  # bumped after a save: the next form starts empty
FLASH_KEY = "pw_events_flash"


def _key(ev: Event) -> str:
    return f"{ev.topic} · {ev.name}"


def _utc(day: object, clock: object) -> datetime | None:
    if not isinstance(day, datetime) and hasattr(day, "year") and isinstance(clock, time):
        return datetime.combine(day, clock, tzinfo=UTC)  # type: ignore[arg-type]
    return None


def render_form(c: Context, events: list[Event]) -> None:
    options = [NEW, *(_key(e) for e in events)]
    choice = st.selectbox("Add or edit", options, key="event_choice")
    current = next((e for e in events if _key(e) == choice), None)
    generation = st.session_state.get(FORM_GENERATION, 0)
    suffix = f"{generation}_{options.index(choice)}"  # a fresh form per event and per save
    topics = list(c.names) or sorted({e.topic for e in events})
    with st.form(f"event_form_{suffix}"):
        name = st.text_input("Name", value=current.name if current else "")
        if topics:
            topic = st.selectbox("Topic", topics, format_func=lambda t: name_text(c.name(t)),
                                 index=topics.index(current.topic)
                                 if current and current.topic in topics else 0)
        else:
            topic = st.text_input("Topic id", value=current.topic if current else "")
        kind = st.radio("Kind", KINDS, horizontal=True,
                        index=KINDS.index(current.kind) if current else 0,
                        help="scheduled = known in advance (a vote, a summit); sudden = not "
                             "(a shooting, a disaster)")
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = current.start if current else now
        a, b = st.columns(2)
        start_day = a.date_input("Start date (UTC)", value=start.date())
        start_time = b.time_input("Start time (UTC)", value=start.time())
        has_end = st.checkbox("Has an end", value=bool(current and current.end))
        end = current.end if current and current.end else start
        d, e = st.columns(2)
        end_day = d.date_input("End date (UTC)", value=end.date())
        end_time = e.time_input("End time (UTC)", value=end.time())
        save = st.form_submit_button("Save event", type="primary")
        delete = current is not None and st.form_submit_button("Delete event")
    if save:
        raw = {"name": name, "topic": topic, "kind": kind,
               "start": _utc(start_day, start_time),
               "end": _utc(end_day, end_time) if has_end else None}
        try:
            event = make_event(raw, "event", c.names or None)
            replacing = (current.topic, current.name) if current else None
            update_events(c.events_file,  # the file as it is now: another edit is kept
                          lambda now: upsert(now, event, replacing), list(c.names) or None)
        except EventError as exc:
            st.error(f"Not saved: {md_text(exc)}")
            return
        st.session_state[FLASH_KEY] = f"Saved “{md_text(event.name)}” to `{c.events_file}`."
        st.session_state[FORM_GENERATION] = generation + 1
        st.session_state.pop("event_choice", None)
        st.rerun()
    if delete and current is not None:
        try:
            update_events(c.events_file, lambda now: remove(now, (current.topic, current.name)),
                          list(c.names) or None)
        except EventError as exc:
            st.error(f"Not deleted: {md_text(exc)}")
            return
        st.session_state[FLASH_KEY] = f"Deleted “{md_text(current.name)}”."
        st.session_state[FORM_GENERATION] = generation + 1
        st.session_state.pop("event_choice", None)
        st.rerun()


def unknown_topic_events(c: Context) -> list[Event]:
    """The calendar's events on topics not in topics.toml, when they are all that keeps it from
    loading (it loads without the topic check); [] when something else is wrong too."""
    try:
        return off_topic(load_events(c.events_file), list(c.names)) if c.names else []
    except EventError:
        return []


def render_unknown_topics(c: Context, stale: list[Event]) -> None:
    """Which events are on unknown topics, the command removing each and, when the page may
    write, a button that removes it as the command does."""
    known = ", ".join(md_text(t) for t in c.names)
    st.error(f"The calendar cannot be edited until {len(stale)} event(s) on a topic not in "
             f"topics.toml (known: {known}) are removed: an event on another topic applies to "
             f"nothing, and the forecast and the report refuse the calendar. Remove each with "
             f"its command below" + (" or its button" if c.may_write() else "")
             + ", or put its topic back in topics.toml.")
    for i, ev in enumerate(stale):
        st.markdown(f"“{md_text(ev.name)}” on topic {md_text(ev.topic)}, "
                    f"{ev.start:%Y-%m-%d %H:%M} UTC ({ev.kind})")
        st.code(remove_command(ev.name, ev.topic, c.events_file), language="bash")
        if c.may_write() and st.button(f"Remove “{md_text(ev.name)}”", key=f"pw_stale_{i}"):
            try:
                remove_event(c.events_file, ev.topic, ev.name)  # holds the calendar's lock
            except PolarwatchError as exc:
                st.error(f"Not removed: {md_text(exc)}")
                return
            st.session_state[FLASH_KEY] = (f"Removed “{md_text(ev.name)}” (topic "
                                           f"{md_text(ev.topic)}).")
            st.rerun()


context = ctx()
st.title("Events")
st.caption(f"Calendar file: `{context.events_file}`. Events are drawn as spans on the topic "
           f"page, which also compares polarization before, during and after each one.")
flash = st.session_state.pop(FLASH_KEY, None)
if flash:
    st.success(flash)
try:
    calendar = load_events(context.events_file, context.names or None)
except EventError as exc:
    unknown = unknown_topic_events(context)
    if unknown:
        render_unknown_topics(context, unknown)
    else:
        st.error(f"The calendar cannot be edited until it is fixed by hand: {md_text(exc)}")
else:
    if calendar:
        rows = events_frame(calendar)
        rows["topic"] = [context.name(t) for t in rows["topic"]]
        rows["end"] = [e.end for e in calendar]  # blank for point-in-time events
        table(rows, hide_index=True, column_config={
            "start": st.column_config.DatetimeColumn("start (UTC)", format="YYYY-MM-DD HH:mm"),
            "end": st.column_config.DatetimeColumn("end (UTC)", format="YYYY-MM-DD HH:mm")})
    else:
        st.info("No events yet. Add the votes, summits, debates (scheduled) or shootings and "
                "disasters (sudden) you want to see on the topic charts.")
    if context.may_write():
        render_form(context, calendar)
    elif context.edit_events:
        st.info("Editing is on, but only from the link `polarwatch dashboard` printed when it "
                "started (it carries `?token=`): a page from another site cannot know it, so it "
                "cannot change the calendar. Open that link, or use `polarwatch events add`.")
    else:
        st.info("Editing is off: the calendar is read-only here. To add, edit or delete events "
                "on this page, set `[dashboard] edit_events = true` in polarwatch.toml (or "
                "`POLARWATCH_DASHBOARD_EDIT_EVENTS=true`), or use `polarwatch events add`.")
