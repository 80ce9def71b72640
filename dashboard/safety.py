"""Dashboard safety: where the server may listen, which Host names it answers, who may write,
what of a URL a page may show, and how text from posts and files reaches Markdown and CSV.

The server binds 127.0.0.1 unless ``[dashboard] address`` says otherwise (``polarwatch
dashboard`` passes it; ``dashboard/.streamlit/config.toml`` sets 127.0.0.1 for a plain
``streamlit run``). :func:`bind_refusal` is the last line: when Streamlit was nevertheless
started on another interface (``--server.address 0.0.0.0``, ``STREAMLIT_SERVER_ADDRESS``) that
the config does not name, the app shows why instead of the data.
"""

from __future__ import annotations

import contextlib
import hmac
import re
import secrets
import socket

import pandas as pd

from polarwatch.display import name_text
from polarwatch.redact import host_only

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


def redact_urls(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose URL-like columns (name contains url / webhook / endpoint) show the
    host only."""
    out = df.copy()
    for col in out.columns:
        if any(h in str(col).lower() for h in URL_COLUMN_HINTS) and out[col].dtype == object:
            out[col] = out[col].map(host_only)
    return out


# ------------------------------------------------------------------------------ text


_MD_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark: CommonMark escapes


def md_text(value: object) -> str:
    """`value` as literal text inside Markdown (st.markdown, st.caption, st.subheader, …): one
    line, every ASCII punctuation mark backslash-escaped, so emphasis, links, images, headings,
    ``$…$`` LaTeX, ``:color[…]`` directives and HTML in a topic id, event name or query
    parameter stay text; bidi controls visible and right-to-left text isolated (:func:`name_text`).
    Not for use inside backticks (escapes show there)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(name_text(value).split()))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose text cells cannot run as spreadsheet formulas once downloaded as CSV
    (the table toolbar's download): a cell starting with = + - @ tab or CR gets a leading ``'``
    (OWASP's CSV-injection advice), also shown on the page."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object:
            out[col] = out[col].map(lambda v: f"'{v}" if isinstance(v, str)
                                    and v.startswith(FORMULA_START) else v)
    return out


# Columns holding ids and names (not free text): shown through :func:`name_text` in every table.
NAME_COLUMNS = frozenset({"id", "post_id", "parent_id", "author_id", "platform",
                          "conversation_id", "topic", "name", "event", "flag", "class", "kind",
                          "backend", "rule", "source", "source_topic"})


def shown_names(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose id and name columns (NAME_COLUMNS) are shown as :func:`name_text`:
    bidi controls visible, right-to-left names isolated."""
    out = df.copy()
    for col in out.columns:
        if col in NAME_COLUMNS and out[col].dtype == object:
            out[col] = out[col].map(lambda v: name_text(v) if isinstance(v, str) else v)
    return out


def for_table(df: pd.DataFrame) -> pd.DataFrame:
    """What every st.dataframe shows: URLs cut to their host, ids and names bidi-safe, text
    safe as CSV."""
    return spreadsheet_safe(shown_names(redact_urls(df)))


# ------------------------------------------------------------------------------ hosts, writes

TOKEN_ENV = "POLARWATCH_DASHBOARD_TOKEN"  # set by `polarwatch dashboard` for its app only


def allowed_hosts(address: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The Host names the server answers (Streamlit ``server.allowedHosts``; ports are ignored):
    the bound address and its names. A web page that rebinds its own name to 127.0.0.1 sends
    its own name as Host and is refused. ``extra``: ``[dashboard] allowed_hosts`` (a proxy's
    name)."""
    address = address.strip()
    hosts = set(LOOPBACK) if address in LOOPBACK else {address}
    if address in ALL_INTERFACES:  # exposed on purpose: the machine's own names and addresses
        hosts = set(LOOPBACK) | {socket.gethostname(), socket.getfqdn()}
        with contextlib.suppress(OSError):
            hosts |= set(socket.gethostbyname_ex(socket.gethostname())[2])
    return sorted((hosts | set(extra)) - {""})


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_ok(presented: object, expected: str | None) -> bool:
    """Whether a page session presented the dashboard's write token (``?token=`` in the URL
    `polarwatch dashboard` prints). No expected token: nobody may write."""
    return (bool(expected) and isinstance(presented, str)
            and hmac.compare_digest(presented.encode(), str(expected).encode()))
