"""Topic page: one topic's series with forecast, prediction band, flags and events; a metric and
window switch; the before / during / after study per event; the most polarized conversations."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts, label_store, queries
from dashboard.analysis import (
    describe_flags,
    describe_llm_agreement,
    event_study,
    event_study_range,
    events_frame,
    label_accuracy,
    phase_summary,
    stance_labels_left_out,
    with_intervals,
)
from dashboard.common import (
    Context,
    conversation_keys,
    conversation_label,
    ctx,
    known_topics,
    live,
    load_calendar,
    pick_topic,
    read,
    table,
)
from dashboard.safety import md_text, shown_names
from polarwatch.display import name_text
from polarwatch.events import Event
from scoring.label_accuracy import validation_status

TOP_CONVERSATIONS = 10
CONVERSATION_PAGE = "views/conversation.py"


def render_accuracy(c: Context, topic: str) -> None:
    """The topic's labels measured against its analysts' random labels (the Label page)."""
    labels = read(c, label_store.random_labels)
    if labels is None:
        return
    measured = label_accuracy(labels, topic, c.sides.get(topic))
    left = stance_labels_left_out(labels, topic, c.sides.get(topic))
    if left:
        st.caption(f"{left} random stance label(s) given under other pro/anti descriptions than "
                   f"the topic's now are left out (label those posts again on the Label page).")
    stance = measured.get("stance")
    status = validation_status(stance, c.min_validation_labels, c.min_stance_accuracy)
    n_stance = stance.n if stance else 0
    if status == "not validated":
        st.warning(f"Labels not validated: {n_stance} of the {c.min_validation_labels} random "
                   f"stance labels needed (Label page). The scores below are unmeasured.")
    elif status == "unreliable" and stance is not None and stance.accuracy is not None:
        st.error(f"Unreliable: stance accuracy {stance.accuracy:.2f} (95 % interval "
                 f"{stance.lower:.2f}–{stance.upper:.2f}, {stance.n} random labels) is below "
                 f"the floor {c.min_stance_accuracy:.2f} ([dashboard] min_stance_accuracy). The "
                 f"scores below are shown, but do not trust them.")
    else:
        st.success(f"Validated: stance accuracy {stance.accuracy:.2f} on {n_stance} random "
                   f"labels" if stance and stance.accuracy is not None else "Validated")
    if measured:
        rows = pd.DataFrame([{
            "label": m.task, "random labels": m.n, "accuracy": m.accuracy,
            "95 % interval": f"{m.lower:.2f}–{m.upper:.2f}",
            "macro-F1": m.macro_f1} for m in measured.values()])
        table(rows, hide_index=True, column_config={
            "accuracy": st.column_config.NumberColumn(format="%.2f"),
            "macro-F1": st.column_config.NumberColumn(format="%.2f")})
    pairs = read(c, label_store.suggestion_pairs_read, topic)
    sentence = None if pairs is None else describe_llm_agreement(pairs)
    if sentence:  # the same figure as the Label page's: the LLM as the analysts' assistant
        st.caption(sentence + " Its suggestions are never counted as labels.")


def render_series(c: Context, topic: str, metric: str, window: str, native_window: str,
                  events: list[Event]) -> None:
    series = read(c, queries.metric_series, topic, metric, window)
    forecast = read(c, queries.forecast_series, topic, metric)
    topic_flags = read(c, queries.flags, topic)
    if series is None or forecast is None or topic_flags is None:
        return
    if series.empty:
        st.info(f"No windows for {md_text(c.name(topic))} yet.")
        return
    label = queries.METRICS[metric][0]
    if series["value"].isna().all():  # nothing to draw: say why instead of a blank chart
        st.info(f"No window of {md_text(c.name(topic))} has a value for {metric} yet "
                f"({len(series):,} window(s) of {window} stored){UNSCORED.get(metric, '')}.")
    flags = describe_flags(topic_flags)
    series = with_intervals(series, metric)
    native = window == native_window
    metric_flags = topic_flags[topic_flags["metric"] == metric]
    # Flags sit at the observed value on the native window; on coarser windows (and for flags
    # of other metrics) they are vertical rules only.
    marks = pd.DataFrame({"ts": topic_flags["ts"],
                          "y": topic_flags["y"].where(
                              (topic_flags["metric"] == metric) & native),
                          "class": flags["class"].to_numpy(),
                          "explanation": flags["explanation"].to_numpy()})
    routine = (forecast[forecast["episode_event"] == "routine"]
               if native and "episode_event" in forecast else forecast.iloc[:0])
    chart = charts.series_chart(
        series, label, f"{name_text(c.name(topic))}: {label.lower()} per {window}",
        forecast=forecast if native and not forecast.empty else None, flags=marks,
        events=shown_names(events_frame(events)), routine=routine)
    if series["value"].notna().any():
        st.altair_chart(chart, width="stretch")
    other = len(topic_flags) - len(metric_flags)  # drawn too, as rules: say whose they are
    notes = [f"{len(series):,} window{'' if len(series) == 1 else 's'} of {window}",
             f"{len(metric_flags)} flag(s) on {metric} (one per episode)"
             + (f", {other} of other metrics drawn as vertical rules" if other else "")]
    if len(routine):
        notes.append(f"{len(routine)} routine burst(s) not flagged (grey rings: as far out "
                     f"within an hour of the same time on 2 of the 3 days before; hover for why)")
    if series["lo"].notna().any():
        notes.append("thin band around the line = 95 % interval of each window's value from "
                     "the interactions / posts behind it (wide when a window is thin)")
    if forecast.empty:
        notes.append(no_forecast(c, metric))
    elif not native:
        notes.append(f"forecast and band are drawn on {native_window} windows (the stored "
                     f"window) only")
    else:
        notes.append("shaded band = prediction interval of the one-step forecast")
    st.caption(" · ".join(notes))

    st.subheader("Flags")
    if flags.empty and forecast.empty and metric == c.forecast_metric:
        st.caption("No flags: no forecast has been made for this topic yet, so no window has "
                   "been compared with a prediction band (run `polarwatch forecast`).")
    elif flags.empty:
        st.caption("No flags on this topic: no window has been flagged against its forecast's "
                   "prediction band.")
    else:
        table(flags, hide_index=True, column_config={
            "ts": st.column_config.DatetimeColumn("window (UTC)", format="YYYY-MM-DD HH:mm"),
            "explanation": st.column_config.TextColumn("why", width="large")})


# Why a whole series can be NULL: mean_score and extreme_share need scored interactions.
UNSCORED = {m: (": no reply in them has an interaction score (the rule table scores a reply "
                "only when it and its parent both take a side; \"unclear\" stances are not "
                "scored), so there is nothing to draw") for m in ("mean_score", "extreme_share")}


def no_forecast(c: Context, metric: str) -> str:
    """The chart's note when `metric` has no forecast rows."""
    if metric == c.forecast_metric:
        return (f"no forecast for {metric} yet (run `polarwatch forecast`; it needs enough "
                f"windows with a value), so no forecast line or band")
    return f"no forecast for {metric}: the forecaster models `{c.forecast_metric}` only"


def render_event_studies(c: Context, topic: str, events: list[Event]) -> None:
    st.subheader("Before / during / after each event")
    if not events:
        st.caption(f"No events for {md_text(c.name(topic))} in the calendar — add them on the Events "
                   f"page (or in `{c.events_file.name}`).")
        return
    for ev in events:
        start, end = event_study_range(ev)
        convs = read(c, queries.conversation_scores, topic, start, end)
        if convs is None:
            return
        study = event_study(convs, ev, extreme_threshold=c.extreme_threshold)
        st.markdown(f"**{md_text(ev.name)}** ({ev.kind}, {ev.start:%Y-%m-%d %H:%M} UTC)")
        if study.empty:
            st.caption("No conversations within 3 days of this event.")
            continue
        left, right = st.columns(2)
        score, extreme = charts.event_study_charts(study, name_text(ev.name))
        left.altair_chart(score, width="stretch")
        right.altair_chart(extreme, width="stretch")
        summary = phase_summary(study)
        st.caption("Mean conversation score — " + ", ".join(
            f"{phase}: {value:.2f}" for phase, value in summary.items())
            + f" ({int(study['n'].sum()):,} conversations)")


def render_conversations(c: Context, topic: str) -> None:
    st.subheader("Most polarized conversations")
    convs = read(c, queries.top_conversations, topic, TOP_CONVERSATIONS)
    if convs is None:
        return
    if convs.empty:
        st.info(f"No scored conversations for {md_text(c.name(topic))} yet.")
        return
    table(
        convs[["conversation_id", "platform", "root_text", "mean_score", "n_interactions",
               "last_at"]],
        hide_index=True, column_config={
            "conversation_id": st.column_config.TextColumn("conversation"),
            "platform": st.column_config.TextColumn("platform"),
            "root_text": st.column_config.TextColumn("opening post", width="large"),
            "mean_score": st.column_config.ProgressColumn(
                "polarization", min_value=0.0, max_value=10.0, format="%.2f"),
            "n_interactions": st.column_config.NumberColumn("interactions"),
            "last_at": st.column_config.DatetimeColumn("last reply (UTC)",
                                                       format="YYYY-MM-DD HH:mm")})
    # a conversation is named by its platform and its id there (platforms may share an id)
    keys = conversation_keys(convs)
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    platform, chosen = left.selectbox("Conversation", keys, key="topic_conv_pick",
                                      format_func=conversation_label) or keys[0]
    if right.button("Open thread", key="open_thread", type="primary"):
        st.session_state["pw_conversation"] = (platform, chosen)  # plain key: survives the switch
        st.switch_page(CONVERSATION_PAGE, query_params={"conversation": chosen,
                                                        "platform": platform})


context = ctx()
st.title("Topic")
topics = known_topics(context)
if topics is not None:
    topic = pick_topic(context, topics)
    render_accuracy(context, topic)
    left, right = st.columns(2)
    metric = str(left.selectbox("Metric", list(queries.METRICS), key="metric",
                                format_func=lambda m: queries.METRICS[m][0]))
    stored = read(context, queries.native_window) or "1 hour"
    choices = queries.window_choices(stored)
    # The stored window ([aggregate] window) is the default: the forecast, its band and the
    # report use it too.
    window = str(right.segmented_control("Window", choices, key="window",
                                         default=stored) or stored)
    calendar = load_calendar(context, topic)  # once: a broken file is reported once
    live(context, render_series, context, topic, metric, window, stored, calendar)
    render_event_studies(context, topic, calendar)
    render_conversations(context, topic)
