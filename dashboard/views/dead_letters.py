"""Dead letters: every record ingest or the stream rejected, with the reason, filterable by
source, reason and time (the ``dead_letters`` table; raw bytes are cut, the size is kept)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from dashboard import rejects
from dashboard.common import Context, ctx, live, read, table

ALL = "all"
SOURCES = (ALL, "ingest", "stream")
COLUMNS = {
    "rejected_at": st.column_config.DatetimeColumn("rejected (UTC)",
                                                   format="YYYY-MM-DD HH:mm:ss"),
    "reason": st.column_config.TextColumn("reason", width="large"),
    "raw_size": st.column_config.NumberColumn("original bytes", format="%d"),
    "raw": st.column_config.TextColumn("raw (cut)", width="medium"),
}


def _day_start(day: object) -> datetime | None:
    if isinstance(day, date):
        return datetime.combine(day, time(0), tzinfo=UTC)
    return None


def old_file_message(warehouse: object, missing: list[str]) -> str:
    """What to do about a warehouse file from an older polarwatch (``missing``: the columns of
    ``dead_letters`` it lacks)."""
    what = ("has no dead_letters table yet" if "reason" in missing else
            f"has a dead_letters table without the column(s) {', '.join(missing)}")
    return (f"The warehouse `{warehouse}` was written by an older polarwatch: it {what}. The "
            f"dashboard only reads, so it does not upgrade files: run `polarwatch forecast` or "
            f"start the stream (`polarwatch stream`) once — either upgrades the file in place "
            f"and keeps every row — then reload this page.")


def render_dead_letters(c: Context) -> None:
    missing = read(c, rejects.dead_letters_missing)
    if missing is None:
        return
    if missing:
        st.warning(old_file_message(c.warehouse, missing))
        return
    summary = read(c, rejects.dead_letter_summary)
    if summary is None:
        return
    if summary.empty:
        st.success("No rejected records: every record so far matched the record contract.")
        return
    a, b = st.columns(2)
    by_source = summary.groupby("source")["n"].sum()
    a.metric("Rejected at ingest", f"{int(by_source.get('ingest', 0)):,}")
    b.metric("Rejected by the stream", f"{int(by_source.get('stream', 0)):,}")

    f1, f2, f3 = st.columns(3)
    source = f1.selectbox("Source", SOURCES, key="dl_source")
    kinds = [ALL, *sorted({str(k) for k in summary["kind"]})]
    kind = f2.selectbox("Reason", kinds, key="dl_kind",
                        help="the field or check that rejected the record")
    contains = f3.text_input("Reason contains", key="dl_contains")
    first = summary["first_at"].min()
    last = summary["last_at"].max()
    t1, t2 = st.columns(2)
    since = t1.date_input("From (UTC)", value=first.date(), key="dl_since")
    until = t2.date_input("Until (UTC, inclusive)", value=last.date(), key="dl_until")
    end = _day_start(until)
    rows = read(c, rejects.dead_letters, None if source == ALL else source,
                None if kind == ALL else kind, contains or None, _day_start(since),
                end + timedelta(days=1) if end else None)
    if rows is None:
        return
    shown = f"{len(rows):,}" + (f" (newest {rejects.DEAD_LETTER_LIMIT:,})"
                                if len(rows) == rejects.DEAD_LETTER_LIMIT else "")
    st.caption(f"{shown} rejected records match.")
    table(rows, hide_index=True, column_config=COLUMNS, key="dead_letters")
    st.subheader("By source and reason")
    table(summary, hide_index=True, key="dead_letter_summary")


context = ctx()
st.title("Dead letters")
st.caption("Records that did not match the record contract (malformed or deeply nested JSON, "
           "oversize records, fields outside their domain, dates in the future). Ingest sends "
           "them to the dead-letter topic, the stream stores them here with its own rejects.")
live(context, render_dead_letters, context)
