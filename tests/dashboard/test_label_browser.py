"""The Label page in headless Chromium: an analyst labels posts with one click per label, the
Topic page then shows the measured accuracy; with labelling off, or without the run's token,
the page stores nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.label_store import make_labels, make_suggestions, save_labels, save_suggestions
from ingest.broker import free_port
from polarwatch.warehouse import connect

from .conftest import seed_warehouse
from .test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    TOKEN,
    _idle,
    _shot,
    serve_app,
)

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's headless Chromium: apt-get install -y chromium")


def _serve(tmp_path: Path, allow_labels: bool, **extra: str) -> Iterator[tuple[str, Path]]:
    seed = seed_warehouse(tmp_path / "live.duckdb")
    settings = {"POLARWATCH_WAREHOUSE_PATH": str(seed.path),
                "POLARWATCH_EVENTS_FILE": str(tmp_path / "events.toml"),
                "POLARWATCH_DASHBOARD_ALLOW_LABELS": str(allow_labels).lower(),
                # every post drawn at random, validated after 3 of them, floor above 2 of 3
                "POLARWATCH_DASHBOARD_LABEL_RANDOM_SHARE": "1.0",
                "POLARWATCH_DASHBOARD_MIN_VALIDATION_LABELS": "3",
                "POLARWATCH_DASHBOARD_MIN_STANCE_ACCURACY": "0.7", **extra}
    with serve_app(tmp_path, settings) as url:
        yield url, seed.path


@pytest.fixture
def labelling_on(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _serve(tmp_path, allow_labels=True)


@pytest.fixture
def labelling_off(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _serve(tmp_path, allow_labels=False)


@pytest.fixture
def llm_down(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Labelling on, with an llm backend configured whose server is not running."""
    yield from _serve(tmp_path, allow_labels=True, POLARWATCH_EXTRACTOR_LLM_BASE_URL=(
        f"http://127.0.0.1:{free_port()}/v1"))


def _labels(path: Path) -> list[tuple[Any, ...]]:
    with connect(path, read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'labels'"
                           ).fetchall()[0][0]:
            return []
        return con.execute("SELECT post_id, task, value, sample, model_value, labeller "
                           "FROM labels ORDER BY post_id, task").fetchall()


def _page(p: Any) -> tuple[Any, Any]:
    browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    return browser, browser.new_page(viewport={"width": 1400, "height": 1000})


def _next_post(page: Any, seen: list[str]) -> str:
    """Wait until the page shows a post not in `seen`, and its script run has finished.

    The new post's caption proves the rerun happened, so the idle state after it is this run's
    (right after a click the page still reads "not running" from the run before, and stale
    elements of the last post stay on the page until the run ends)."""
    caption = page.get_by_text(re.compile(r"^Post .+ on .+ · drawn"))
    for _ in range(300):
        texts = caption.all_inner_texts()
        if len(texts) == 1:
            post = texts[0].removeprefix("Post ").split(" on ")[0]
            if post not in seen:
                _idle(page)
                if caption.all_inner_texts() == texts:
                    seen.append(post)
                    return post
        page.wait_for_timeout(100)
    raise AssertionError(f"no new post after {seen}: the page shows {caption.all_inner_texts()}")


def _button(page: Any, name: str) -> Any:
    """The button labelled `name` (its accessible name also names its key: "pro Shortcut 1")."""
    return page.get_by_role("button", name=re.compile(rf"^{re.escape(name)}( Shortcut \w+)?$"))


def _click(page: Any, name: str, then: str) -> None:
    """Click one label button, then wait for `then`, which only this click's rerun shows."""
    _button(page, name).click()
    page.get_by_text(then, exact=False).first.wait_for(timeout=30_000)
    _idle(page)


def test_label_posts_with_one_click_each_and_see_the_accuracy(
        labelling_on: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, warehouse = labelling_on
    with sync_playwright() as p:
        browser, page = _page(p)
        try:
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # without this run's token the page shows posts but cannot store
            page.goto(f"{url}/label?topic=gun_control")
            page.get_by_text("Stance towards the topic").wait_for(timeout=30_000)
            _idle(page)
            page.get_by_text("only from the link", exact=False).wait_for()
            expect(_button(page, "pro")).to_be_disabled()
            expect(_button(page, "Retrain from the labels")).to_have_count(0)

            page.goto(f"{url}/label?topic=gun_control&token={TOKEN}")
            page.get_by_text("Stance towards the topic").wait_for(timeout=30_000)
            _idle(page)
            expect(_button(page, "pro")).to_be_enabled()
            page.get_by_text("0 posts of Gun control labelled", exact=False).wait_for()
            _shot(page, tmp_path / "label_page.png")
            seen: list[str] = []
            replies = 0
            for stance in ("pro", "pro", "anti"):  # the model says pro
                post = _next_post(page, seen)
                reply = page.get_by_text("In reply to:").count() > 0
                # the count goes up with the post's first label: wait for its last one
                done = f"Stored the labels of post {post}."
                _click(page, stance, then=f"— stored: {stance}")
                _click(page, "not hostile", then=done if not reply else "— stored: no")
                if reply:
                    _click(page, "disagrees", then=done)
                    replies += 1
            page.get_by_text("3 posts of Gun control labelled, 3 of them drawn at random",
                             exact=False).wait_for(timeout=15_000)

            stored = _labels(warehouse)
            stance_rows = [r for r in stored if r[1] == "stance"]
            assert sorted(r[2] for r in stance_rows) == ["anti", "pro", "pro"]
            assert {(r[3], r[4], r[5]) for r in stored} >= {("random", "pro", "analyst")}
            assert len({r[0] for r in stored}) == 3  # three different posts, none twice
            assert [r[2] for r in stored if r[1] == "agreement"] == ["disagree"] * replies

            page.goto(f"{url}/topic?topic=gun_control")
            page.get_by_text("Unreliable: stance accuracy 0.67", exact=False).wait_for(
                timeout=30_000)
            _idle(page)
            page.get_by_text("3 random labels", exact=False).first.wait_for()
            _shot(page, tmp_path / "topic_accuracy.png")
            assert not errors, errors
        finally:
            browser.close()


def test_with_labelling_off_the_page_refuses_to_write(labelling_off: tuple[str, Path]) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, warehouse = labelling_off
    with sync_playwright() as p:
        browser, page = _page(p)
        try:
            page.goto(f"{url}/label?topic=gun_control&token={TOKEN}")  # even with the token
            page.get_by_text("Stance towards the topic").wait_for(timeout=30_000)
            _idle(page)
            page.get_by_text("Labelling is off", exact=False).wait_for()
            page.get_by_text("allow_labels = true", exact=False).wait_for()
            for name in ("pro", "anti", "not hostile"):
                expect(_button(page, name)).to_be_disabled()
            # no retrain either: it would write a head file
            expect(page.get_by_text("Retrain this topic's stance head")).to_have_count(0)
            expect(_button(page, "Retrain from the labels")).to_have_count(0)
            page.get_by_text("Labels not validated: 0 of the 3", exact=False).count()
        finally:
            browser.close()
    assert _labels(warehouse) == []


def test_one_key_per_label_and_an_unreachable_llm_is_a_message(
        llm_down: tuple[str, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, warehouse = llm_down
    # an earlier session: the LLM suggested anti for c0, the analyst labelled it pro
    c0 = {"platform": "test", "id": "c0", "topic": "gun_control"}
    save_suggestions(warehouse, make_suggestions(c0, "smol", "v", {"stance": "anti"}, None, "bo"))
    save_labels(warehouse, make_labels(c0, "informative", "bo", {"stance": "pro"}))
    with sync_playwright() as p:
        browser, page = _page(p)
        try:
            page.goto(f"{url}/label?topic=gun_control&token={TOKEN}")
            seen: list[str] = ["c0"]
            post = _next_post(page, seen)
            reply = page.get_by_text("In reply to:").count() > 0
            page.get_by_text("Keys: 1 pro · 2 anti · 3 unclear · 4 hostile", exact=False
                             ).first.wait_for()
            page.get_by_text("The LLM agreed with the analysts' labels: stance 0 of 1 (0%",
                             exact=False).wait_for()
            page.get_by_text("1 of these 1 labels were made after seeing", exact=False).wait_for()
            page.keyboard.press("L")  # ask the LLM: its server is down
            page.get_by_text("No suggestion: llm: the server at", exact=False).wait_for(
                timeout=30_000)
            page.get_by_text("is unreachable", exact=False).first.wait_for()
            _idle(page)
            _shot(page, tmp_path / "label_llm_down.png")
            page.keyboard.press("2")  # stance anti
            page.get_by_text("— stored: anti", exact=False).wait_for(timeout=30_000)
            _idle(page)
            page.keyboard.press("4")  # hostile
            if reply:
                page.get_by_text("— stored: yes", exact=False).wait_for(timeout=30_000)
                _idle(page)
                page.keyboard.press("8")  # disagrees
            page.get_by_text("2 posts of Gun control labelled", exact=False).wait_for(
                timeout=30_000)
            _next_post(page, seen)
            page.keyboard.press("S")  # skip: nothing stored for the next post
            _next_post(page, seen)
        finally:
            browser.close()
    stored = [r for r in _labels(warehouse) if r[0] != "c0"]
    assert {(r[0], r[1], r[2]) for r in stored} == {
        (post, "stance", "anti"), (post, "affect", "yes")} | (
        {(post, "agreement", "disagree")} if reply else set())
    with connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM label_suggestions").fetchall() == [(1,)]
