"""Alerts: active and resolved flags from the forecaster, and the webhook delivery log
(``alert_deliveries``)."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.analysis import describe_flags
from dashboard.common import Context, ctx, live, read, table
from dashboard.safety import md_text

FLAG_COLUMNS = {
    "ts": st.column_config.DatetimeColumn("window (UTC)", format="YYYY-MM-DD HH:mm"),
    "explanation": st.column_config.TextColumn("why", width="large"),
}


def render_alerts(c: Context) -> None:
    raw = read(c, queries.flags)
    if raw is None:
        return
    flags = describe_flags(raw)
    flags["topic"] = [c.name(str(t)) for t in flags["topic"]]
    active = flags[flags["status"] == "active"]
    resolved = flags[flags["status"] == "resolved"]
    a, b = st.columns(2)
    a.metric("Active flags", f"{len(active):,}")
    b.metric("Resolved flags", f"{len(resolved):,}")

    st.subheader("Active")
    if active.empty:
        st.caption("No active flags: no alarm episode is open on any series.")
    else:
        table(active.drop(columns="status"), hide_index=True, column_config=FLAG_COLUMNS,
                     key="active_flags")
    st.subheader("Resolved")
    if resolved.empty:
        st.caption("No resolved flags yet.")
    else:
        table(resolved.drop(columns="status"), hide_index=True,
                     column_config=FLAG_COLUMNS, key="resolved_flags")

    st.subheader("Webhook deliveries")
    deliveries = read(c, queries.alert_deliveries)
    if deliveries is None:
        return
    if deliveries.empty:
        st.caption("`alert_deliveries` is empty: no alert has been delivered yet. "
                   "`polarwatch forecast` (and `polarwatch report --forecast`, and the demo's "
                   "live loop) sends one firing and one resolved alert per episode to the URLs "
                   "in `[alerts] webhooks` of polarwatch.toml; each attempt and its HTTP status "
                   "appear here.")
        return
    counts = deliveries["outcome"].astype(str).value_counts()
    st.caption(" · ".join(f"{md_text(outcome)}: {n}" for outcome, n in counts.items()))
    table(deliveries, hide_index=True, key="deliveries")


context = ctx()
st.title("Alerts")
st.caption("One flag per alarm episode: *active* while its episode is open, *resolved* once the "
           "series has stayed inside its band long enough (alarms stored before episodes "
           f"existed count as active for the last {queries.ACTIVE_FLAG_WINDOWS} windows).")
live(context, render_alerts, context)
