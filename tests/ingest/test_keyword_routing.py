"""Keywords are normalized as the post text is: decomposed and full-width keywords route, an
@mention keyword matches that mention, and a link keyword is refused in one line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingest.normalize import TopicRouter
from polarwatch.config import Topic
from polarwatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
NFD = unicodedata.normalize("NFD", "réforme")  # as macOS pastes it

ROUTER = TopicRouter.from_topics([
    Topic("potus", "The president", "p", "a", keywords=("@POTUS",)),
    Topic("reforme", "Réforme", "p", "a", keywords=(NFD,)),
    Topic("wide", "Guns", "p", "a", keywords=("ｇｕｎ",)),  # full-width
    Topic("guns_zh", "枪支管制", "p", "a", keywords=("枪支", "銃規制")),  # unspaced scripts
])


@pytest.mark.parametrize(("text", "topic"), [
    ("Thanks @POTUS for nothing", "potus"),
    ("thanks @potus@whitehouse.gov", "potus"),  # a Mastodon handle of that account
    ("@POTUSfan says hi", None),  # another account
    ("the potus said", None),  # a mention keyword matches the mention only
    ("Non à la réforme !", "reforme"),  # composed in the post, decomposed in topics.toml
    (f"Non à la {NFD} !", "reforme"),
    ("ｇｕｎ show this weekend", "wide"),
    ("gun show this weekend", "wide"),
    ("@nra said so", None),  # other mentions still never route
    ("我支持枪支管制", "guns_zh"),  # no spaces between words: found inside the text
    ("銃規制に反対です", "guns_zh"),
    ("枪支 太多了", "guns_zh"),
    ("begun", None),  # a spaced script still needs its word edges
])
def test_keywords_route_as_the_text_is_normalized(text: str, topic: str | None) -> None:
    assert ROUTER.route(text) == topic


def test_mention_and_word_keywords_add_up() -> None:
    router = TopicRouter.from_topics([
        Topic("a", "A", "p", "q", keywords=("climate",)),
        Topic("b", "B", "p", "q", keywords=("@GretaThunberg", "strike")),
    ])
    assert router.scores("@GretaThunberg strike for climate") == {"a": 1, "b": 2}


def test_link_keyword_is_refused_naming_topic_and_keyword() -> None:
    with pytest.raises(ConfigError, match=r"topic 'x': keyword 'https://example.com/gun' is a "
                                          r"link.*remove it"):
        TopicRouter.from_topics([Topic("x", "X", "p", "q", keywords=("https://example.com/gun",))])


def test_ingest_refuses_link_keyword_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "polarwatch.toml").write_text(
        (REPO / "polarwatch.toml").read_text().replace("127.0.0.1:19092", "127.0.0.1:22791"))
    (tmp_path / "topics.toml").write_text(
        '[[topic]]\nid = "x"\nname = "X"\npro = "p"\nanti = "a"\n'
        'keywords = ["guns", "www.example.com/guns"]\n')
    post = {"id": "1", "text": "guns", "author_id": "a", "created_at": "2026-01-01T00:00:00Z"}
    (tmp_path / "p.jsonl").write_text(json.dumps(post) + "\n")
    run = subprocess.run([sys.executable, "-m", "polarwatch.cli", "ingest", "file", "p.jsonl"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, run.stderr
    assert "topic 'x': keyword 'www.example.com/guns' is a link" in lines[0]
    assert run.stdout == ""


PIECES = ["gun", "Gun", "GUN", "ß", "SS", "ss", "İ", "i", "ı", "K", "\u212a", "#", "@", " ", "2a",
          "é", "e\u0301", "ｇ", "-", "control", "x"]


@settings(max_examples=300, deadline=None)
@given(keywords=st.lists(st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=3)
                                  .map("".join).map(str.strip).filter(bool),
                                  min_size=1, max_size=3),
                         min_size=1, max_size=4),
       text=st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
@example(keywords=[["ß"], ["SS"]], text="ß")  # casefold() equates them, the pattern does not
def test_the_no_topic_shortcut_answers_as_the_scan_of_every_topic(
        keywords: list[list[str]], text: str) -> None:
    """A text that the one pattern of every keyword does not find is answered without a scan
    per topic: it must be exactly the texts that no topic's pattern finds (case-insensitive
    matches equate less than casefold() does: ß and SS, İ and i)."""
    topics = [Topic(f"t{i}", f"T{i}", "p", "a", keywords=tuple(k for k in kws
                                                                 if "http" not in k))
              for i, kws in enumerate(keywords)]
    try:
        router = TopicRouter.from_topics(topics)
    except ConfigError:  # a keyword normalization refuses (a link): not routed at all
        return
    scan = TopicRouter(router.topics, router.patterns, router.mention_patterns)
    assert router.scores(text) == scan.scores(text)
    assert router.route(text) == scan.route(text)
