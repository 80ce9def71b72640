"""Under a locale that is not UTF-8 (``LC_ALL=C`` without Python's UTF-8 mode: an ASCII
standard output, as in cron jobs and CI scripts), ``label`` stopped with a UnicodeEncodeError
after writing part of its JSONL (80 of 104 lines at the first ``’``), and ``events list`` on its
``→``. Standard output is UTF-8 whatever the locale now; standard error escapes what its
encoding cannot hold. Each test runs the real command in a child process with that locale."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polarwatch.cli import main

REPO = Path(__file__).resolve().parents[2]
TEXTS = ["Plain ASCII opening post about the climate.",
         "It’s the climate, stupid – über alles.",  # ’ and – are not in ASCII nor Latin-9
         "Grüße aus München: CO₂ matters"]


def _ascii_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONIOENCODING", "LANG", "LANGUAGE") and not k.startswith("LC_")}
    env.update(LC_ALL="C", PYTHONUTF8="0", POLARWATCH_EVENTS_FILE=str(tmp_path / "events.toml"))
    return env


def _run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "polarwatch.cli", "--config",
                           str(REPO / "polarwatch.toml"), *argv], env=env, cwd=REPO,
                          capture_output=True, timeout=120, check=False)


def test_label_writes_every_line_as_utf8_under_an_ascii_locale(tmp_path: Path) -> None:
    plain = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
                           env=_ascii_env(tmp_path), capture_output=True, timeout=60, check=True)
    assert plain.stdout.decode().strip() == "ascii"  # the premise: Python's own default
    src = tmp_path / "posts.jsonl"
    rows = [{"id": f"p{i}", "text": t, "topic": "climate_change"} for i, t in enumerate(TEXTS)]
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    done = _run(_ascii_env(tmp_path), "label", str(src), "--backend", "lexicon")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert b"Traceback" not in done.stderr
    lines = done.stdout.decode("utf-8").splitlines()  # strict: the bytes are UTF-8
    assert [json.loads(line)["text"] for line in lines] == TEXTS


def test_events_list_prints_its_arrow_under_an_ascii_locale(tmp_path: Path) -> None:
    env = _ascii_env(tmp_path)
    added = _run(env, "events", "add", "vote", "--topic", "climate_change", "--kind",
                 "scheduled", "--start", "2026-03-04T18:00:00Z", "--end", "2026-03-05T18:00:00Z")
    assert added.returncode == 0, added.stderr.decode("utf-8", "replace")
    done = _run(env, "events", "list")
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    assert done.stdout.decode("utf-8").splitlines() == [
        "2026-03-04 18:00 → 2026-03-05 18:00 UTC  scheduled  climate_change    vote"]
    assert done.stderr.decode("ascii").startswith("1 event(s) in ")


def test_an_error_naming_a_non_ascii_file_is_one_escaped_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Standard error keeps its encoding and escapes the rest. CPython's own stderr already
    does; a stream something else set up (an embedding wrapper, ``errors="strict"``) made the
    error line itself fail, so here it is a real strict ASCII stream."""
    raw = io.BytesIO()
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(raw, encoding="ascii", errors="strict"))
    rc = main(["--config", str(REPO / "polarwatch.toml"), "label",
               str(tmp_path / "vote→results.jsonl"), "--backend", "lexicon"])
    sys.stderr.flush()
    assert rc == 2
    err = raw.getvalue().decode("ascii")
    assert err.count("\n") == 1 and err.startswith("polarwatch: error: input file ")
    assert "vote\\u2192results.jsonl" in err
