"""A numeric backend option out of its range (``-O llm.timeout=inf``, ``learned.batch_size=0``,
...) is one error line naming the option and its range, exit 2, before anything is labelled.
They were OverflowError tracebacks (inf), blamed on the server (-1: "unusable answer: Timeout
value out of range"), or accepted so that every post then failed (0)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.config import ExtractorConfig, Topic
from polarwatch.errors import BackendError
from scoring.extractors.registry import available_backends, backend_class, option_types
from scoring.fallback import build_from_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", available_backends())
def test_every_numeric_option_has_a_finite_range_holding_its_default(name: str) -> None:
    import inspect

    cls = backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    for key, annotation in option_types(cls).items():
        if {"int", "float"} & {p.strip() for p in annotation.split("|")}:
            bounds = cls.option_bounds.get(key)
            assert bounds is not None, f"{name}.{key} has no range"
            assert math.isfinite(bounds.low) and math.isfinite(bounds.high), (name, key)
            default = params[key].default
            assert default is None or bounds.holds(default), (name, key, default)


@pytest.mark.parametrize(("option", "said"), [
    ("llm.timeout=inf", "option llm.timeout=inf: expected a number above 0 and at most 3,600 "
                        "(seconds to wait for one answer) (e.g. -O llm.timeout=60)"),
    ("llm.timeout=-1", "option llm.timeout=-1: expected a number above 0"),
    ("llm.timeout=nan", "option llm.timeout=nan: expected a number above 0"),
    ("llm.timeout=0", "option llm.timeout=0: expected a number above 0"),
    ("llm.timeout=1e999", "option llm.timeout=inf: expected"),
    ("llm.batch_timeout=0", "option llm.batch_timeout=0: expected a number above 0"),
    ("llm.concurrency=0", "option llm.concurrency=0: expected a number from 1 to 256"),
    ("llm.retries=-1", "option llm.retries=-1: expected a number from 0 to 100"),
    ("llm.temperature=nan", "option llm.temperature=nan: expected a number from 0 to 2"),
    ("learned.token_budget=0", "option learned.token_budget=0: expected a number from 3 to 512"),
    ("learned.token_budget=-1", "option learned.token_budget=-1: expected a number from 3"),
    ("learned.batch_size=0", "option learned.batch_size=0: expected a number from 1 to 4,096 "
                             "(posts per encoder batch) (e.g. -O learned.batch_size=64)"),
    ("learned.unclear_above=1.5", "option learned.unclear_above=1.5: expected a number from 0"),
    ("transformers.max_chars=0", "option transformers.max_chars=0: expected a number from 1 to "
                                 "1,000,000"),
])
@pytest.mark.parametrize("used", [True, False], ids=["in-use", "unused"])
def test_an_option_out_of_range_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            option: str, said: str, used: bool) -> None:
    """Whether the option's backend runs (built by the registry) or not (checked, then
    ignored): the same line, before any model is loaded or server called."""
    backend = option.partition(".")[0] if used else "lexicon"
    posts, out = tmp_path / "posts.jsonl", tmp_path / "out.jsonl"
    posts.write_text(json.dumps({"id": "a", "text": "Ban assault weapons.",
                                 "topic": "gun_control"}) + "\n")
    rc = main(["--config", str(REPO / "polarwatch.toml"), "label", str(posts), "--backend",
               backend, "--fallback", "", "-O", option, "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and said in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_the_edges_of_a_range_are_accepted(topics: list[Topic]) -> None:
    ext = build_from_config(ExtractorConfig(), topics, "llm", [], {
        "llm": {"timeout": 3_600.0, "retries": 0, "temperature": 2, "explanation_chars": 0}})
    assert ext is not None


def test_options_from_the_config_section_are_checked_the_same_way(topics: list[Topic]) -> None:
    """``[extractor]``'s options and ``-O``'s reach the backend through the same registry."""
    with pytest.raises(BackendError, match=r"option llm\.timeout=inf: expected a number above 0"):
        build_from_config(ExtractorConfig(), topics, "llm", [], {"llm": {"timeout": math.inf}})
