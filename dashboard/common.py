"""What every page shares: the run context, warehouse reads that turn errors into messages, the
stream status line and the live-refresh fragment.

``app.py`` builds a :class:`Context` once per run and stores it in session state under a plain
key; pages fetch it with :func:`ctx`. Query parameters carry page-to-page selections (``topic``,
``conversation`` with its ``platform``) so links are shareable and survive ``st.switch_page``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pandas as pd
import streamlit as st

from dashboard import queries, rejects, snapshot
from dashboard.analysis import fmt_duration
from dashboard.label_assist import llm_configured
from dashboard.safety import TOKEN_ENV, bind_refusal, for_table, md_text, token_ok
from dashboard.status import EMPTY_HINT, heartbeat_note, status_line
from polarwatch import warehouse
from polarwatch.config import load_config
from polarwatch.display import name_text
from polarwatch.errors import ConfigError
from polarwatch.events import Event, EventError, events_path, load_events
from polarwatch.heartbeat import read_heartbeat
from polarwatch.warehouse import is_lock_error

REFRESH_SECONDS = 5  # how often live sections re-read the warehouse
NO_DATA = f"No data yet — {EMPTY_HINT}."
CONTEXT_KEY = "pw_context"
TOKEN_KEY = "pw_write_token"
REPLACED_KEY = "pw_topic_replaced"  # (topic a link asked for, topic shown instead) or None
T = TypeVar("T")

# page file (relative to app.py) -> title; the first one is the default page. Not in a folder
# named pages/: Streamlit would run such a file without app.py for a first deep link (app.py)
PAGES = {
    "views/overview.py": "Overview",
    "views/topic.py": "Topic",
    "views/conversation.py": "Conversations",
    "views/alerts.py": "Alerts",
    "views/event_calendar.py": "Events",
    "views/label.py": "Label",
    "views/dead_letters.py": "Dead letters",
}


def conversation_keys(convs: pd.DataFrame) -> list[tuple[str, str]]:
    """The (platform, conversation_id) of each listed conversation, the pickers' values."""
    return [(str(p), str(i)) for p, i in zip(convs["platform"], convs["conversation_id"],
                                             strict=True)]


def conversation_label(key: tuple[str, str]) -> str:
    """A (platform, conversation_id) as a picker shows it: a conversation is named by its
    platform and its id there, as a post is (two platforms' threads may share an id)."""
    platform, conversation = key
    return f"{name_text(conversation)} ({name_text(platform)})" if platform else \
        name_text(conversation)


@dataclass(frozen=True)
class Context:
    warehouse: Path
    names: dict[str, str]  # topic id -> display name (from topics.toml)
    events_file: Path
    forecast_metric: str
    extreme_threshold: float
    live: bool
    address: str = "127.0.0.1"  # [dashboard] address: the interface the server may bind
    edit_events: bool = False  # [dashboard] edit_events: the Events page may write the file
    write_token: str | None = None  # this run's token (`polarwatch dashboard` sets it)
    allow_labels: bool = False  # [dashboard] allow_labels: the Label page may store labels
    label_random_share: float = 0.3  # [dashboard] label_random_share
    min_stance_accuracy: float = 0.6  # [dashboard] min_stance_accuracy
    min_validation_labels: int = 30  # [dashboard] min_validation_labels
    # the Label page may ask the llm backend for a suggestion, waiting at most this many
    # seconds ([dashboard] llm_assist_seconds); 0 when no llm backend is configured
    llm_assist_seconds: float = 0.0
    # topic id -> its (pro, anti) descriptions now, which stance labels are read under
    sides: dict[str, tuple[str, str]] = field(default_factory=dict)

    def name(self, topic: str) -> str:
        return self.names.get(topic, topic)

    def may_write(self) -> bool:
        """Whether this browser session may write: editing is on and the session opened a link
        with this run's ``?token=`` (kept for the session once seen)."""
        return self.edit_events and self.token_presented()

    def may_label(self) -> bool:
        """Whether this browser session may store labels: labelling is on and the session
        opened a link with this run's ``?token=`` (as :meth:`may_write`)."""
        return self.allow_labels and self.token_presented()

    def token_presented(self) -> bool:
        presented = st.query_params.get("token") or st.session_state.get(TOKEN_KEY)
        if token_ok(presented, self.write_token):
            st.session_state[TOKEN_KEY] = presented
            return True
        return False


def build_context(live: bool) -> Context | None:
    """Load the configuration; show the error and return None when it is broken."""
    try:
        cfg = load_config()
    except ConfigError as exc:
        st.error(f"Configuration error: {md_text(exc)}")
        return None
    try:
        topics = cfg.load_topics()
    except ConfigError as exc:
        st.warning(f"Topic names unavailable ({md_text(exc)}); showing topic ids.")
        topics = []
    names = {t.id: t.name for t in topics}
    return Context(warehouse=cfg.warehouse_path, names=names, events_file=events_path(cfg.root),
                   forecast_metric=cfg.forecast.metric,
                   extreme_threshold=cfg.aggregate.extreme_threshold, live=live,
                   address=cfg.dashboard.address, edit_events=cfg.dashboard.edit_events,
                   write_token=os.environ.get(TOKEN_ENV) or None,
                   allow_labels=cfg.dashboard.allow_labels,
                   label_random_share=cfg.dashboard.label_random_share,
                   min_stance_accuracy=cfg.dashboard.min_stance_accuracy,
                   min_validation_labels=cfg.dashboard.min_validation_labels,
                   llm_assist_seconds=cfg.dashboard.llm_assist_seconds
                   if llm_configured(cfg.extractor) else 0.0,
                   sides={t.id: (t.pro, t.anti) for t in topics})


def bind_allowed(c: Context) -> bool:
    """Whether this server may show data: served on the interface polarwatch.toml names
    (:func:`dashboard.safety.bind_refusal`, the last line); else show why and return False.
    A browser session always comes with HTTP headers; a script run without a server
    (Streamlit's AppTest) has none and nothing to bind."""
    served = bool(st.context.headers)
    refusal = bind_refusal(st.get_option("server.address"), c.address) if served else None
    if refusal is not None:
        st.error(refusal)
        return False
    return True


def ctx() -> Context:
    """The run context app.py stored; every page calls it first. The bind is checked here too,
    so a page that ever runs without app.py still shows nothing on a refused interface."""
    context = st.session_state.get(CONTEXT_KEY)
    if not isinstance(context, Context):  # a page run on its own (not through app.py)
        context = build_context(live=False)
    if context is None or not bind_allowed(context):
        st.stop()
    return context


def read(c: Context, fn: Callable[..., T], *args: Any) -> T | None:
    """Call a ``queries`` function; on failure show a message a user understands, return None."""
    try:
        return fn(c.warehouse, *args)
    except FileNotFoundError:
        st.info(NO_DATA)
        st.caption(f"Waiting for the warehouse file `{c.warehouse}`.")
    except Exception as exc:  # duckdb.Error and friends: show it, keep refreshing
        st.error(unreadable(c.warehouse, exc))
    return None


def unreadable(path: Path, exc: BaseException) -> str:
    """Why the warehouse could not be read or written, as Markdown: for DuckDB's lock, still
    held after the retries, who holds it (the PID DuckDB names) and what to do."""
    if not is_lock_error(exc):
        return f"Could not read the warehouse `{path}`: {md_text(exc)}"
    held = re.search(r"held in (.+?) \(PID (\d+)\)", str(exc))
    who = f"another process (PID {held[2]}, {md_text(held[1])})" if held else "another process"
    waited = warehouse.LOCK_RETRY_SECONDS * warehouse.LOCK_RETRY_ATTEMPTS
    ps = f": `ps -p {held[2]}`" if held else ""
    return (f"The warehouse `{path}` is locked: {who} kept it open through {waited:g} s of "
            f"retries. The stream holds it while it stores a batch (a large one can take a "
            f"while): the page reads it again when it next runs. A program that keeps the file "
            f"open (a duckdb shell, a notebook, a stuck process{ps}) must close it.")


def live(c: Context, fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)`` as a fragment that re-runs every REFRESH_SECONDS when live is on."""
    st.fragment(fn, run_every=REFRESH_SECONDS if c.live else None)(*args)


def load_calendar(c: Context, topic: str | None = None) -> list[Event]:
    """The event calendar (optionally one topic's); a broken file is reported, not raised."""
    try:
        events = load_events(c.events_file, c.names or None)
    except EventError as exc:
        st.error(f"Event calendar not loaded: {md_text(exc)}")
        return []
    return [e for e in events if topic is None or e.topic == topic]


def render_status(c: Context) -> None:
    """Stream status for the sidebar (a live fragment)."""
    heartbeat = read_heartbeat(c.warehouse)  # None: no file, or not a heartbeat
    try:
        status = queries.stream_status(c.warehouse)
    except FileNotFoundError:
        st.info(NO_DATA)
        st.caption(f"Waiting for `{c.warehouse}`.")
        if heartbeat is not None:  # a stream starting up creates the file
            phrase, warning = heartbeat_note(heartbeat)
            st.caption(f"Stream: {phrase}")
            if warning:
                st.warning(warning)
        return
    except duckdb.CatalogException as exc:  # no stream_batches: an older or foreign file
        st.caption(f"Stream status unavailable: this file has no stream tables yet "
                   f"({md_text(str(exc).splitlines()[0])}); `polarwatch stream` adds them.")
        return
    except Exception as exc:
        st.error(unreadable(c.warehouse, exc))
        return
    try:  # a file from before dead_letters had a source: the stream's own count
        dead: dict[str, int] | None = rejects.dead_letter_counts(c.warehouse)
    except Exception:
        dead = None
    summary, warning = status_line(status, dead=dead, heartbeat=heartbeat)
    st.caption(summary)
    if warning:
        st.warning(warning)
    if (age := snapshot.locked_out(c.warehouse)) is not None:
        st.warning(f"Showing the warehouse as it was {fmt_duration(int(age))} ago: another "
                   f"process keeps the file locked (the stream storing a long batch, or a "
                   f"program holding it open); the pages catch up once it lets go.")


def pick_topic(c: Context, topics: list[str], label: str = "Topic") -> str:
    """A topic selectbox synced with the ``topic`` query parameter (shareable, survives page
    switches). A link to a topic not in `topics` says which topic is shown instead."""
    wanted = st.query_params.get("topic")
    linked = wanted is not None and st.session_state.get("pw_topic_qp") != wanted
    if linked and wanted in topics:  # a link brought us here: follow it
        st.session_state["topic_pick"] = wanted
    if st.session_state.get("topic_pick") not in topics:
        st.session_state["topic_pick"] = topics[0]
    if linked:  # a link to another topic: its warning stays until another topic is picked
        st.session_state[REPLACED_KEY] = (None if wanted in topics
                                          else (wanted, st.session_state["topic_pick"]))
    topic = str(st.selectbox(label, topics, key="topic_pick",
                             format_func=lambda t: name_text(c.name(t))))
    st.query_params["topic"] = topic
    st.session_state["pw_topic_qp"] = topic
    replaced = st.session_state.get(REPLACED_KEY)
    if replaced is not None and replaced[1] == topic:
        st.warning(replaced_message(c, replaced[0], topic))
    else:
        st.session_state[REPLACED_KEY] = None
    return topic


def replaced_message(c: Context, wanted: str, shown: str) -> str:
    """Why the page shows `shown` although its link asked for `wanted`."""
    why = ("is in topics.toml but has no stored window up to now (none of its posts has been "
           "aggregated yet, or only posts dated in the future)" if wanted in c.names else
           "is neither in topics.toml nor in the warehouse")
    asked = wanted if len(wanted) <= 200 else wanted[:199] + "…"
    return (f"The link asks for topic {md_text(asked)}, which {why}. Showing "
            f"{md_text(c.name(shown))} instead.")


def no_windows(c: Context) -> None:
    """The empty state of a page without a window up to now: none stored yet, or all of them
    dated in the future (their posts are dated ahead of this machine's clock)."""
    future = read(c, queries.future_windows)
    if future is None:
        return
    row = future.iloc[0]
    if not int(row["n"]):
        st.info(f"No scored windows yet — the stream has not aggregated any posts. Keep it "
                f"running, or {EMPTY_HINT}.")
        return
    n, topics = int(row["n"]), int(row["n_topics"])
    st.warning(f"No window up to now: all {n:,} stored window{'s' if n != 1 else ''} "
               f"({topics:,} topic{'s' if topics != 1 else ''}) lie in the future, the first "
               f"starting {pd.Timestamp(row['first_start']):%Y-%m-%d %H:%M} UTC "
               f"({md_text(c.name(str(row['first_topic'])))}). Their posts are dated ahead of "
               f"this machine's clock ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC): check that "
               f"clock and the sources' timestamps (`[ingest] max_future_skew_hours` bounds "
               f"how far ahead ingest accepts a post). The pages show windows up to now.")


def known_topics(c: Context) -> list[str] | None:
    """Topics with stored windows (config order first); None after showing an empty state."""
    overview = read(c, queries.topics_overview)
    if overview is None:
        return None
    if overview.empty:
        no_windows(c)
        return None
    stored = [str(t) for t in overview["topic"]]
    return [t for t in c.names if t in stored] + [t for t in stored if t not in c.names]


def table(df: pd.DataFrame, **kwargs: Any) -> Any:
    """st.dataframe over what a table may show (dashboard.safety.for_table): URLs cut to their
    host, cells that a spreadsheet would run as formulas defused for the CSV download."""
    return st.dataframe(for_table(df), **kwargs)
