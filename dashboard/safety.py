"""Dashboard safety: where the server may listen, and what of a URL a page may show.

The server binds 127.0.0.1 unless ``[dashboard] address`` says otherwise (``polarwatch
dashboard`` passes it; ``dashboard/.streamlit/config.toml`` sets 127.0.0.1 for a plain
``streamlit run``). :func:`bind_refusal` is the last line: when Streamlit was nevertheless
started on another interface (``--server.address 0.0.0.0``, ``STREAMLIT_SERVER_ADDRESS``) that
the config does not name, the app shows why instead of the data.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pandas as pd

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
ALL_INTERFACES = frozenset({"", "0.0.0.0", "::"})  # Streamlit's default "" binds every one
URL_COLUMN_HINTS = ("url", "webhook", "endpoint")


def bind_refusal(bound: str | None, configured: str) -> str | None:
    """None when serving on `bound` (Streamlit's ``server.address``) is allowed; else the
    message the app shows instead of its pages."""
    bound, configured = (bound or "").strip(), configured.strip()
    if bound in LOOPBACK or bound == configured:
        return None
    if bound in ALL_INTERFACES and configured in ALL_INTERFACES - {""}:
        return None
    where = f"address {bound}" if bound else "every network interface (Streamlit's default)"
    return (f"This dashboard is being served on {where}, but polarwatch.toml allows only "
            f"[dashboard] address = {configured!r}. It shows nothing until that matches: serve "
            f"it with `polarwatch dashboard` or `streamlit run dashboard/app.py` (both bind "
            f"127.0.0.1), or set [dashboard] address = \"{bound or '0.0.0.0'}\" to expose it "
            f"on purpose.")


def host_only(url: object) -> object:
    """``scheme://host[:port]`` of a URL: no user, password, path or query (where webhook
    secrets live). Values that are not URLs are returned unchanged."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}" if host else "(invalid URL)"


def redact_urls(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose URL-like columns (name contains url / webhook / endpoint) show the
    host only."""
    out = df.copy()
    for col in out.columns:
        if any(h in str(col).lower() for h in URL_COLUMN_HINTS) and out[col].dtype == object:
            out[col] = out[col].map(host_only)
    return out
