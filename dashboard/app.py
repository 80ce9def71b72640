"""polarwatch dashboard: a multi-page Streamlit app over the DuckDB warehouse.

Run with ``streamlit run dashboard/app.py`` (or ``polarwatch dashboard``). The DuckDB file comes
from ``load_config()`` (``polarwatch.toml`` in the working directory or ``$POLARWATCH_CONFIG``;
``POLARWATCH_WAREHOUSE_PATH`` overrides it); the event calendar is ``events.toml`` next to it
(``POLARWATCH_EVENTS_FILE`` overrides it). Every read is a short-lived read-only connection
(``dashboard/queries.py``), so the dashboard never blocks the stream writer.

Pages (``dashboard/views/``, listed in ``dashboard.common.PAGES``): Overview, Topic,
Conversations, Alerts, Events, Label, Dead letters. This script sets up the page, the sidebar
(live toggle, stream status) and the shared context, then runs the page. Every URL runs it:
the page scripts are not in a folder named ``pages/``, which Streamlit would otherwise serve
as pages of their own to a deep link opened before any session ran this script (without the
bind refusal, the navigation or the sidebar). :func:`dashboard.common.ctx` checks the bind as
well, should a page ever run on its own.
"""

from __future__ import annotations

import streamlit as st

from dashboard import common


def main() -> None:
    st.set_page_config(page_title="polarwatch", page_icon="🧭", layout="wide")
    pages = [st.Page(path, title=title, default=i == 0)
             for i, (path, title) in enumerate(common.PAGES.items())]
    nav = st.navigation(pages)
    live = st.sidebar.toggle(f"Live refresh (every {common.REFRESH_SECONDS} s)", value=True,
                             key="live")
    context = common.build_context(live)
    if context is None or not common.bind_allowed(context):
        return
    st.session_state[common.CONTEXT_KEY] = context
    context.token_presented()  # a ?token= on the page first opened is kept for the session
    with st.sidebar:
        common.live(context, common.render_status, context)
        st.caption(f"Warehouse: `{context.warehouse}`")
    nav.run()


if __name__ == "__main__":  # streamlit runs the script as __main__; plain imports stay inert
    main()
