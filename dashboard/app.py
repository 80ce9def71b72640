"""polarwatch dashboard: a multi-page Streamlit app over the DuckDB warehouse.

Run with ``streamlit run dashboard/app.py`` (or ``polarwatch dashboard``). The DuckDB file comes
from ``load_config()`` (``polarwatch.toml`` in the working directory or ``$POLARWATCH_CONFIG``;
``POLARWATCH_WAREHOUSE_PATH`` overrides it); the event calendar is ``events.toml`` next to it
(``POLARWATCH_EVENTS_FILE`` overrides it). Every read is a short-lived read-only connection
(``dashboard/queries.py``), so the dashboard never blocks the stream writer.

Pages (``dashboard/pages/``, listed in ``dashboard.common.PAGES``): Overview, Topic,
Conversations, Alerts, Events, Dead letters. This script sets up
the page, the sidebar (live toggle, stream status) and the shared context, then runs the page.
"""

from __future__ import annotations

import streamlit as st

from dashboard import common
from dashboard.safety import bind_refusal


def main() -> None:
    st.set_page_config(page_title="polarwatch", page_icon="🧭", layout="wide")
    pages = [st.Page(path, title=title, default=i == 0)
             for i, (path, title) in enumerate(common.PAGES.items())]
    nav = st.navigation(pages)
    live = st.sidebar.toggle(f"Live refresh (every {common.REFRESH_SECONDS} s)", value=True,
                             key="live")
    context = common.build_context(live)
    if context is None:
        return
    # A browser session always comes with HTTP headers; a script run without a server
    # (Streamlit's AppTest) has none and nothing to bind.
    served = bool(st.context.headers)
    refusal = bind_refusal(st.get_option("server.address"), context.address) if served else None
    if refusal is not None:
        st.error(refusal)
        return
    st.session_state[common.CONTEXT_KEY] = context
    context.token_presented()  # a ?token= on the page first opened is kept for the session
    with st.sidebar:
        common.live(context, common.render_status, context)
        st.caption(f"Warehouse: `{context.warehouse}`")
    nav.run()


if __name__ == "__main__":  # streamlit runs the script as __main__; plain imports stay inert
    main()
