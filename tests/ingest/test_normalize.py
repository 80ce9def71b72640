"""Text normalization and keyword routing: pure functions, no broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.normalize import (
    MENTION_TOKEN,
    URL_TOKEN,
    TopicRouter,
    hashtags,
    html_to_text,
    normalize_text,
)
from polarwatch.config import Topic, load_topics

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router() -> TopicRouter:
    return TopicRouter.from_topics(load_topics(REPO / "topics.toml"))


@pytest.mark.parametrize(("raw", "expected"), [
    ("See https://example.com/a?b=1 now", f"See {URL_TOKEN} now"),
    ("www.example.org is down", f"{URL_TOKEN} is down"),
    ("@alice and @bob@mastodon.social agree", f"{MENTION_TOKEN} and {MENTION_TOKEN} agree"),
    ("mail me at bob@example.com", "mail me at bob@example.com"),  # not a mention
    ("Fish &amp; chips &lt;3 &#39;ok&#39;", "Fish & chips <3 'ok'"),
    ("  many\n\n spaces\t here ", "many spaces here"),
    ("𝗴𝘂𝗻 𝗰𝗼𝗻𝘁𝗿𝗼𝗹", "gun control"),  # math bold folded by NFKC
    ("#Climate stays", "#Climate stays"),
])
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_normalize_is_idempotent_and_keeps_raw_untouched() -> None:
    raw = "RT @x: &quot;Guns&quot; https://t.co/abc #2A"
    once = normalize_text(raw)
    assert normalize_text(once) == once
    assert raw == "RT @x: &quot;Guns&quot; https://t.co/abc #2A"  # pure: input not modified
    assert once == f'RT {MENTION_TOKEN}: "Guns" {URL_TOKEN} #2A'


def test_html_to_text_keeps_urls_and_mentions() -> None:
    content = ('<p>Hi <span class="h-card"><a href="https://m.s/@bob">@<span>bob</span></a>'
               '</span> &amp; all</p><p>read <a href="https://x.org/a">x.org/a</a><br />bye</p>')
    assert html_to_text(content) == "Hi @bob & all\n\nread x.org/a\nbye"


def test_hashtags() -> None:
    assert hashtags("#Climate and #2A, see https://x.org/#frag and a#b") == ["climate", "2a"]


@pytest.mark.parametrize(("text", "topic"), [
    ("We need gun control now", "gun_control"),
    ("#2A forever", "gun_control"),
    ("A background check saves lives", "gun_control"),
    ("Background checks save lives", None),  # exact keywords: no stemming
    ("GUNS everywhere", "gun_control"),
    ("#ClimateCrisis is real", "climate_change"),
    ("Cut emissions and carbon now, climate!", "climate_change"),
    ("I like turtles", None),
    ("COP28 ended with a weak deal", "climate_change"),
    ("A cop pulled me over today", None),  # a police officer, not the climate summit
    ("gunshot wound", None),  # word boundaries: 'gun' is not in 'gunshot'
    ("@nra said so", None),  # mentions are not keywords
    ("look https://example.com/gun-control", None),  # nor are URLs
])
def test_route(router: TopicRouter, text: str, topic: str | None) -> None:
    assert router.route(text) == topic


def test_route_prefers_more_hits_then_file_order() -> None:
    a = Topic("a", "A", "p", "q", keywords=("x", "shared"))
    b = Topic("b", "B", "p", "q", keywords=("y", "shared"))
    router = TopicRouter.from_topics([a, b])
    assert router.route("shared") == "a"  # tie → first listed
    assert router.route("shared y") == "b"
    assert router.scores("x y y") == {"a": 1, "b": 2}
    assert TopicRouter.from_topics([Topic("c", "C", "p", "q")]).route("anything") is None
