"""Free-text arguments typed in UTF-8 under an ASCII locale (``LC_ALL=POSIX`` with
``PYTHONUTF8=0``: a cron job, a minimal container). Python decodes the command line as ASCII,
so "Zürich" arrived as lone surrogates (``Z\\udcc3\\udcbcrich``): ``ingest mastodon --tag
Zürich`` ended in a ``UnicodeEncodeError: ... surrogates not allowed`` traceback, ``alerts
test`` on a URL with "ö" too, and a platform, a topic or a metric was stored, compared or named
as surrogates. Now every free-text argument that is not a path goes through
:func:`polarwatch.argtypes.utf8_text` and is read as UTF-8 under any locale. Each test runs the
real command in a child process and sets the locale itself (POSIX exists on every machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ingest.broker import EmbeddedBroker
from polarwatch.warehouse import init_schema
from tests.forecast.test_forecast import seed, window_rows
from tests.kafka_helpers import consume, unique_topics

REPO = Path(__file__).resolve().parents[2]
NOWHERE = "http://127.0.0.1:1"  # nothing listens on port 1


def _run(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("LC_", "POLARWATCH_"))
            and k not in ("LANG", "LANGUAGE", "PYTHONUTF8", "PYTHONIOENCODING")}
    full = [sys.executable, "-m", "polarwatch.cli", "--config", str(REPO / "polarwatch.toml"),
            *argv]
    return subprocess.run([os.fsencode(a) for a in full], cwd=REPO, capture_output=True,
                          timeout=120, check=False,
                          env={**base, "LC_ALL": "POSIX", "PYTHONUTF8": "0",
                               "POLARWATCH_EVENTS_FILE": str(tmp_path / "events.toml"), **env})


def _err(done: subprocess.CompletedProcess[bytes]) -> str:
    """Standard error as written (ASCII, with backslash escapes: "ï" shows as ``\\xef``, a
    lone surrogate as ``\\udcc3``)."""
    err = done.stderr.decode("ascii", "replace")
    assert "Traceback" not in err and "\\udc" not in err, err
    return err


def test_a_mastodon_tag_in_utf8_ends_in_one_error_line_not_a_traceback(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    posts, dead = unique_topics(broker.bootstrap, "utf8tag")
    done = _run(tmp_path, "ingest", "mastodon", "--instance", NOWHERE, "--tag", "Zürich",
                "--max-posts", "1", "--duration", "5s", "--state-dir", str(tmp_path / "state"),
                POLARWATCH_BROKER_BOOTSTRAP_SERVERS=broker.bootstrap,
                POLARWATCH_TOPICS_POSTS=posts, POLARWATCH_TOPICS_DEAD_LETTER=dead)
    err = _err(done)  # the last line says the server could not be reached, at the URL sent
    assert done.returncode == 1 and "hashtag?tag=Z%C3%BCrich could not be reached" in err, err


def test_a_platform_and_a_mapped_constant_in_utf8_are_stored_as_utf8(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    posts, dead = unique_topics(broker.bootstrap, "utf8plat")
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"id": "p1", "text": "climate talk", "author_id": "a1",
                               "created_at": "2026-03-01T10:00:00Z"}) + "\n", encoding="utf-8")
    done = _run(tmp_path, "ingest", "file", str(src), "--platform", "réddit", "--map",
                "lang==français", "--topic", "climate_change",
                "--state-dir", str(tmp_path / "state"),
                POLARWATCH_BROKER_BOOTSTRAP_SERVERS=broker.bootstrap,
                POLARWATCH_TOPICS_POSTS=posts, POLARWATCH_TOPICS_DEAD_LETTER=dead)
    assert done.returncode == 0, _err(done)
    _err(done)
    got = [json.loads(r.value) for r in consume(broker.bootstrap, posts, 1)]
    assert [(p["platform"], p["lang"]) for p in got] == [("réddit", "français")]
    assert consume(broker.bootstrap, dead, 0) == []


def test_a_report_topic_in_utf8_is_named_as_utf8(tmp_path: Path) -> None:
    warehouse = tmp_path / "pw.duckdb"
    init_schema(warehouse)
    seed(warehouse, window_rows("gun_control", np.full(20, 3.0)))
    done = _run(tmp_path, "report", "--topic", "clïmate", "-o", str(tmp_path / "r.html"),
                POLARWATCH_WAREHOUSE_PATH=str(warehouse))
    assert done.returncode == 2 and "cl\\xefmate" in _err(done), _err(done)
    done = _run(tmp_path, "forecast", "--metric", "vólume",
                POLARWATCH_WAREHOUSE_PATH=str(warehouse))
    assert done.returncode == 2 and "'v\\xf3lume'" in _err(done), _err(done)


def test_an_alert_url_in_utf8_is_tried_not_a_traceback(tmp_path: Path) -> None:
    done = _run(tmp_path, "alerts", "test", f"{NOWHERE}/hoök", "--attempts", "1", "--no-log")
    assert done.returncode == 1 and "NOT delivered" in _err(done), _err(done)


def test_a_backend_option_in_utf8_is_text_and_a_path_option_keeps_its_bytes(
        tmp_path: Path) -> None:
    """``label -O llm.model=mödel`` under an ASCII locale ended in a ``UnicodeEncodeError``
    traceback (the model name went into the LLM cache key as surrogates). A text option is read
    as UTF-8; a path option (``learned.heads_dir``, ``transformers.model_path``) keeps the bytes
    the operating system gave, which name the file."""
    from scoring.extractors.registry import checked_option

    typed = "mödel".encode().decode("ascii", "surrogateescape")  # as an ASCII locale reads it
    assert checked_option("llm", "model", typed, "str | None") == "mödel"
    assert checked_option("learned", "heads_dir", typed, "str | Path | None") == typed
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "1", "text": "climate policy now", "topic": "climate_change"}\n')
    done = _run(tmp_path, "label", str(data), "-o", str(tmp_path / "out.jsonl"), "--backend",
                "llm", "-O", "llm.model=mödel", "-O", f"llm.base_url={NOWHERE}/v1",
                "-O", "llm.retries=0")
    err = _err(done)
    assert done.returncode == 0 and "labeled 1 of 1 rows" in err, err
