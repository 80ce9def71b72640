"""Alerts: active and resolved flags from the forecaster, and the webhook delivery log when a
stage keeps one (found through information_schema; an explanation otherwise)."""

from __future__ import annotations

import streamlit as st

from dashboard import queries
from dashboard.analysis import describe_flags
from dashboard.common import Context, ctx, live, read, table

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
    names = read(c, queries.table_names)
    if names is None:
        return
    log_table = queries.find_delivery_table(names)
    if log_table is None:
        st.info("No webhook delivery log in the warehouse yet. Alerts are delivered by the "
                "alerts stage (`polarwatch alerts`) to the URLs in `[alerts] webhooks` of "
                "polarwatch.toml; its deliveries and their HTTP status appear here once it runs.")
        return
    deliveries = read(c, queries.read_table, log_table)
    if deliveries is None:
        return
    if deliveries.empty:
        st.caption(f"`{log_table}` is empty: no alert has been delivered yet.")
        return
    status_col = "outcome" if "outcome" in deliveries else next(  # alert_deliveries: outcome
        (col for col in deliveries.columns if "status" in col.lower()), None)
    if status_col is not None:
        counts = deliveries[status_col].astype(str).value_counts()
        st.caption(" · ".join(f"{status}: {n}" for status, n in counts.items()))
    table(deliveries, hide_index=True, key="deliveries")


context = ctx()
st.title("Alerts")
st.caption("One flag per alarm episode: *active* while its episode is open, *resolved* once the "
           "series has stayed inside its band long enough (alarms stored before episodes "
           f"existed count as active for the last {queries.ACTIVE_FLAG_WINDOWS} windows).")
live(context, render_alerts, context)
