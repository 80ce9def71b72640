"""Every dashboard page through Streamlit's AppTest against the seeded DuckDB warehouse."""

from __future__ import annotations

import html
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Element

from dashboard.safety import TOKEN_ENV, md_text
from polarwatch.events import Event, load_events, save_events
from polarwatch.warehouse import connect, init_schema

from .conftest import EXPLANATION, START, Seed, add_window, reply_rows, store_replies

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"


def run_app(monkeypatch: pytest.MonkeyPatch, warehouse: Path, events: Path,
            page: str | None = None, **query: str) -> AppTest:
    monkeypatch.chdir(REPO)  # load_config() finds polarwatch.toml + topics.toml here
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(events))
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params.update(query)
    if page:
        at.switch_page(page)
    return at.run()


def texts(at: AppTest, *kinds: str) -> str:
    kinds = kinds or ("markdown", "caption", "info", "error", "warning", "success", "subheader",
                      "title")
    return "\n".join(str(e.value) for kind in kinds for e in elements(at, kind))


def elements(at: AppTest, kind: str) -> list[Element]:
    """The elements of `kind` (at.get also types the blocks a page may hold)."""
    return [e for e in at.get(kind) if isinstance(e, Element)]


def link_labels(at: AppTest) -> list[str]:
    """The labels of the page's st.page_link elements (as their Markdown source)."""
    return [str(e.proto.label) for e in elements(at, "page_link")]


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("caption", "warning", "info")
                     for e in at.sidebar.get(kind) if isinstance(e, Element))


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return tmp_path / "events.toml"


def test_overview_cards(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
                        events_file: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file)
    assert not at.exception
    text = texts(at)
    assert "#### Gun control" in text and "#### Climate change" in text
    metrics = [(m.label, m.value) for m in at.metric]
    for latest in seeded_warehouse.latest.values():
        assert ("Polarization ↑", f"{latest['mean_score']:.2f}") in metrics
        assert ("Extreme share", f"{latest['extreme_share']:.0%}") in metrics
        assert ("Volume", f"{latest['volume']:,}") in metrics
    assert metrics.count(("Hostility share", "20%")) == 2
    # each card says how uncertain its values are (Wilson 95 %, from what is behind them)
    assert text.count("95 % intervals: score ") == 2 and "(33 interactions)" in text
    assert "thin window" not in text  # 33 and 43 interactions: above [forecast] min_volume
    # the dip on climate_change is in its last 3 windows: active; the old spike is not
    assert ":green-badge[dip · mean\\_score · 03-02 22:00]" in text  # escaped: shown as text
    assert "spike" not in text and "No active flags." in text
    assert "13 posts, 10 interactions" in sidebar_text(at)
    assert "last batch" in sidebar_text(at) and "No batch for" not in sidebar_text(at)
    assert link_labels(at) == ["Open Gun control", "Open Climate change"]


def test_thin_window_card_shows_its_uncertainty(monkeypatch: pytest.MonkeyPatch,
                                                seeded_warehouse: Seed, events_file: Path,
                                                tmp_path: Path) -> None:
    """A newest window of 2 interactions at 9.87: no trend arrow or delta, a thin-window badge
    and an interval that spans most of the scale."""
    path = tmp_path / "thin.duckdb"
    shutil.copy(seeded_warehouse.path, path)
    add_window(path, "gun_control", mean_score=9.87)  # 2 interactions, 5 posts
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    text = texts(at)
    assert text.count("thin window") == 1 and "2 interaction(s), fewer than" in text
    assert ("Polarization", "9.87") in [(m.label, m.value) for m in at.metric]  # no arrow
    assert "95 % intervals: score 3.3–10.0 (2 interactions)" in text


def test_overview_card_says_when_sides_look_random(monkeypatch: pytest.MonkeyPatch,
                                                  seeded_warehouse: Seed, events_file: Path,
                                                  tmp_path: Path) -> None:
    """Climate change gets 120 replies whose sides are a coin flip against their agreement: its
    card marks them; gun control's 10 replies are too few to tell, so its card says nothing."""
    path = tmp_path / "sides.duckdb"
    shutil.copy(seeded_warehouse.path, path)
    coin = [("agree", "pro"), ("agree", "anti"), ("disagree", "pro"), ("disagree", "anti")] * 30
    store_replies(path, reply_rows("climate_change", coin))
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    text = texts(at)
    assert text.count("sides look random") == 1
    assert ("of the stored replies that agree with their parent, 50% of 60 are on its side; "
            "of those that disagree, 50% of 60 are on the other side") in text
    assert "Sides against agreement" not in text  # gun control: too few pairs to tell


def test_topic_page_series_flags_and_switches(monkeypatch: pytest.MonkeyPatch,
                                              seeded_warehouse: Seed, events_file: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    assert not at.exception
    assert at.selectbox(key="topic_pick").value == "gun_control"
    assert len(at.get("vega_lite_chart")) == 1
    text = texts(at)
    assert "48 windows of 1 hour · 1 flag(s) on mean_score (one per episode) · " in text
    assert "shaded band = prediction interval" in text
    flags = at.dataframe[0].value
    assert list(flags["class"]) == ["spike"] and list(flags["status"]) == ["resolved"]
    assert flags["explanation"].iloc[0] == ("mean_score 8.75 is 3.75 above the prediction band "
                                            "[3.00, 5.00]; forecast was 4.00 (ets)")
    assert "No events for Gun control in the calendar" in text
    convs = at.dataframe[1].value
    assert list(convs["conversation_id"]) == ["conv-hot", "conv-early", "conv-calm"]

    at.selectbox(key="metric").set_value("volume").run()
    at.segmented_control(key="window").set_value("1 day").run()
    assert not at.exception
    assert ("2 windows of 1 day · 0 flag(s) on volume (one per episode), 1 of other metrics "
            "drawn as vertical rules · no forecast for volume") in texts(at)
    assert len(at.get("vega_lite_chart")) == 1

    at.selectbox(key="topic_pick").set_value("climate_change").run()
    assert not at.exception
    assert list(at.dataframe[0].value["status"]) == ["active"]
    assert "No scored conversations for Climate change yet." in texts(at)


def test_topic_page_opens_a_conversation(monkeypatch: pytest.MonkeyPatch,
                                         seeded_warehouse: Seed, events_file: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    at.selectbox(key="topic_conv_pick").set_value(("test", "conv-hot"))
    at.button(key="open_thread").click().run()
    assert not at.exception
    assert at.title[0].value == "Conversations"
    assert at.query_params["conversation"] == "conv-hot"
    assert at.query_params["platform"] == "test"
    assert "Thread conv\\-hot on test" in texts(at)  # Markdown-escaped: shown as conv-hot
    assert ("Mean interaction score", "9.00") in [(m.label, m.value) for m in at.metric]


def test_topic_page_event_study(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
                                events_file: Path) -> None:
    save_events(events_file, [Event("Senate vote", "gun_control",
                                    START + timedelta(hours=45), "scheduled",
                                    START + timedelta(hours=46))])
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 3  # series + score and extreme-share per event
    text = texts(at)
    assert "**Senate vote** (scheduled, 2026-03-02 21:00 UTC)" in text
    # conv-early (5.5) starts a day before; conv-hot (9) and conv-calm (2) during the event
    assert "before: 5.50, during: 5.50 (3 conversations)" in text


def test_conversation_page_thread(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
                                  events_file: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/conversation.py",
                 conversation="conv-hot")
    assert not at.exception
    assert at.selectbox(key="conv_pick").value == ("test", "conv-hot")
    thread = next(h.proto.body for h in at.get("html") if "reply h3" in h.proto.body)
    assert not [m for m in at.markdown if "reply h3" in m.value]  # never through Markdown
    assert thread.index("Ban assault weapons") < thread.index("reply h1") < thread.index(
        "reply h2") < thread.index("reply h3") < thread.index("reply h4")
    assert 'margin-left:56px' in thread  # h2/h3 are two replies deep
    assert "interaction score <b>10.00</b>" in thread and "backend <code>lexicon</code>" in thread
    assert "agreement <b>disagree</b>" in thread and "stance <b>pro</b>" in thread
    assert f"why: {html.escape(EXPLANATION)}" in thread  # escaped: data is never raw HTML
    # the range defaults to the week before the newest conversation: all three are listed
    listed = at.dataframe[0].value
    assert list(listed["conversation_id"]) == ["conv-hot", "conv-early", "conv-calm"]

    day1 = START.date()
    at.date_input(key="conv_range").set_value((day1, day1)).run()
    assert not at.exception
    assert list(at.dataframe[0].value["conversation_id"]) == ["conv-early"]
    assert at.selectbox(key="conv_pick").options == ["conv-hot (test)",  # link kept
                                                     "conv-early (test)"]
    at.selectbox(key="conv_pick").set_value(("test", "conv-early")).run()
    assert at.query_params["conversation"] == "conv-early"
    assert ("Mean interaction score", "5.50") in [(m.label, m.value) for m in at.metric]


def test_alerts_page(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
                     tmp_path: Path) -> None:
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/alerts.py")
    assert not at.exception
    assert [(m.label, m.value) for m in at.metric] == [("Active flags", "1"),
                                                       ("Resolved flags", "1")]
    active, resolved = (df.value for df in at.dataframe)
    assert list(active["topic"]) == ["Climate change"] and list(active["class"]) == ["dip"]
    assert list(resolved["topic"]) == ["Gun control"] and list(resolved["class"]) == ["spike"]
    # every migrated file has the (empty) alert_deliveries table of polarwatch/tables.py
    assert "`alert_deliveries` is empty: no alert has been delivered yet." in texts(at)
    assert "`polarwatch forecast`" in texts(at)  # the command that delivers alerts
    assert "`polarwatch alerts`" not in texts(at)  # only sends a test alert

    copy = tmp_path / "with_deliveries.duckdb"
    shutil.copy(seeded_warehouse.path, copy)
    with connect(copy) as con:
        con.execute("INSERT INTO alert_deliveries VALUES "
                    "('http://a', 'f1', 'firing', '2026-03-02 22:00+00', 'msg_a', 1, 200, NULL, "
                    "'delivered', '2026-03-02 22:01+00'), "
                    "('http://b', 'f1', 'firing', '2026-03-02 22:00+00', 'msg_b', 1, 500, "
                    "'HTTP 500', 'failed', '2026-03-02 22:02+00')")
    at = run_app(monkeypatch, copy, events_file, "views/alerts.py")
    assert not at.exception
    deliveries = at.dataframe[2].value
    assert list(deliveries["endpoint"]) == ["http://b", "http://a"]  # newest first
    assert "delivered: 1 · failed: 1" in texts(at) or "failed: 1 · delivered: 1" in texts(at)


def test_events_page_add_edit_delete(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
                                     events_file: Path) -> None:
    monkeypatch.setenv("POLARWATCH_DASHBOARD_EDIT_EVENTS", "true")  # editing is opt-in
    monkeypatch.setenv(TOKEN_ENV, "run-token")  # ... and needs this run's link
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/event_calendar.py",
                 token="run-token")
    assert not at.exception
    assert "No events yet" in texts(at)
    at.text_input[0].input("Senate vote")
    at.selectbox[1].set_value("gun_control")
    at.radio[0].set_value("scheduled")
    at.date_input[0].set_value(date(2026, 3, 2))
    at.checkbox[0].check()
    at.date_input[1].set_value(date(2026, 3, 3))
    at.button[0].click().run()
    assert not at.exception
    assert "Saved “Senate vote”" in texts(at)
    saved = load_events(events_file)
    assert [(e.name, e.topic, e.kind) for e in saved] == [("Senate vote", "gun_control",
                                                            "scheduled")]
    assert saved[0].start.date().isoformat() == "2026-03-02" and saved[0].end is not None
    assert list(at.dataframe[0].value["name"]) == ["Senate vote"]

    at.selectbox(key="event_choice").set_value("gun_control · Senate vote").run()
    assert at.text_input[0].value == "Senate vote"
    at.text_input[0].input("Senate final vote")
    at.radio[0].set_value("sudden")
    at.button[0].click().run()
    assert [(e.name, e.kind) for e in load_events(events_file)] == [("Senate final vote",
                                                                     "sudden")]

    at.selectbox(key="event_choice").set_value("gun_control · Senate final vote").run()
    at.button[1].click().run()  # Delete event
    assert not at.exception
    assert load_events(events_file) == [] and "Deleted" in texts(at)

    at.text_input[0].input("")  # a nameless event is refused with the reason
    at.button[0].click().run()
    refused = md_text("event: 'name' is required")  # shown as text, not Markdown
    assert f"Not saved: {refused}" in texts(at)


@pytest.mark.parametrize("token", [None, "guessed", ""])
def test_events_page_without_the_run_s_token_cannot_write(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path,
        token: str | None) -> None:
    """Editing on, but the page was not opened from the printed link: a page from another site
    (which cannot know the token) gets no form."""
    monkeypatch.setenv("POLARWATCH_DASHBOARD_EDIT_EVENTS", "true")
    monkeypatch.setenv(TOKEN_ENV, "run-token")
    query = {} if token is None else {"token": token}
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/event_calendar.py",
                 **query)
    assert not at.exception
    assert not at.button and not at.text_input
    assert "only from the link `polarwatch dashboard` printed" in texts(at)


PAGES = ["views/overview.py", "views/topic.py", "views/conversation.py", "views/alerts.py"]


def test_missing_warehouse_every_page_says_so(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path, events_file: Path) -> None:
    for page in PAGES:
        at = run_app(monkeypatch, tmp_path / "absent.duckdb", events_file, page)
        assert not at.exception, page
        assert "No data yet — run `make demo` or `polarwatch stream`." in texts(at, "info"), page
        assert not at.metric and not at.get("vega_lite_chart")


def test_empty_and_stopped_stream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                  events_file: Path) -> None:
    path = tmp_path / "empty.duckdb"
    init_schema(path)
    at = run_app(monkeypatch, path, events_file)
    assert not at.exception
    assert "No scored windows yet" in texts(at)
    assert "has not committed a batch yet" in sidebar_text(at)
    at = run_app(monkeypatch, path, events_file, "views/alerts.py")
    assert ("Active flags", "0") in [(m.label, m.value) for m in at.metric]

    with connect(path) as con:
        con.execute("INSERT INTO stream_batches (query, batch_id, n_posts, n_dead, "
                    "n_interactions, committed_at) VALUES ('posts', 1, 5, 0, 2, ?)",
                    [datetime.now(UTC) - timedelta(minutes=12)])
    at = run_app(monkeypatch, path, events_file)
    status = sidebar_text(at)
    assert "No batch for 12 min" in status and "either idle" in status and "or stopped" in status
    assert "Stream stopped" not in status  # an idle stream writes nothing: both are possible


def test_a_cut_thread_says_so(monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed,
                              events_file: Path) -> None:
    from dashboard import queries

    monkeypatch.setattr(queries, "THREAD_MAX_POSTS", 3)
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/conversation.py",
                 conversation="conv-hot")
    assert not at.exception
    assert "Showing 3 of this thread's 5 posts" in texts(at, "warning")
    thread = next(h.proto.body for h in at.get("html") if "reply h1" in h.proto.body)
    assert "reply h2" in thread and "reply h3" not in thread
    assert ("Posts", "5") in [(m.label, m.value) for m in at.metric]


def test_topic_page_shows_how_often_the_llm_agreed_with_the_analysts(
        monkeypatch: pytest.MonkeyPatch, seeded_warehouse: Seed, events_file: Path) -> None:
    """The Label page's agreement figure, on the Topic page too (read through the snapshot)."""
    from dashboard.label_store import make_labels, make_suggestions, save_labels, save_suggestions

    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    assert not at.exception and "The LLM agreed" not in texts(at)  # nothing suggested yet
    for post, llm, analyst in (("c0", "anti", "pro"), ("h0", "pro", "pro"), ("e0", "pro", "pro")):
        row = {"platform": "test", "id": post, "topic": "gun_control"}
        save_suggestions(seeded_warehouse.path, make_suggestions(
            row, "smol", "v", {"stance": llm}, None, "bo", START))
        save_labels(seeded_warehouse.path, make_labels(row, "informative", "bo",
                                                       {"stance": analyst}, START))
    at = run_app(monkeypatch, seeded_warehouse.path, events_file, "views/topic.py",
                 topic="gun_control")
    assert not at.exception
    assert ("The LLM agreed with the analysts' labels: stance 2 of 3 (67%, 95 % interval "
            "21%–94%). 3 of these 3 labels were made after seeing its suggestion. Its "
            "suggestions are never counted as labels.") in texts(at, "caption")


def test_topic_page_shows_routine_bursts_and_why_they_raised_no_flag(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, events_file: Path) -> None:
    from .conftest import seed_warehouse
    seed = seed_warehouse(tmp_path / "polarwatch.duckdb")
    why = "routine, not flagged: mean_score was as far out within an hour of this time of day"
    with connect(seed.path) as con:  # the forecast stage marks a routine burst like this
        con.execute("UPDATE forecasts SET episode_event = 'routine', explanation = ? "
                    "WHERE topic = 'gun_control' AND metric = 'mean_score' AND ts = ?",
                    [why, START + timedelta(hours=30)])
    at = run_app(monkeypatch, seed.path, events_file, "views/topic.py", topic="gun_control")
    assert not at.exception
    assert ("1 routine burst(s) not flagged (grey rings: as far out within an hour of the same "
            "time on 2 of the 3 days before; hover for why)") in texts(at, "caption")
    assert "why no flag" in at.get("vega_lite_chart")[0].proto.spec
    assert list(at.dataframe[0].value["class"]) == ["spike"]  # not a flag
