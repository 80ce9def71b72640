"""An event named with non-ASCII characters under an ASCII locale (``LC_ALL=POSIX`` with
``PYTHONUTF8=0``: a cron job, a minimal container): Python decodes the command line as ASCII, so
the UTF-8 bytes of "Zürich" arrived as lone surrogates and ``events add`` refused the name with
"contains a lone UTF-16 surrogate (not valid Unicode); retype it" (exit 2) — retyping cannot
help. Now a command-line name or topic whose bytes are UTF-8 is read as UTF-8 under any locale.
The locale is set here: POSIX exists on every machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from polarwatch.events import load_events

REPO = Path(__file__).resolve().parents[2]
NAME = "Gipfel in Zürich — İstanbul 🌍"


def _ascii_locale_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LC_") and k not in ("LANG", "LANGUAGE", "PYTHONUTF8",
                                                     "PYTHONIOENCODING")}
    return {**env, "LC_ALL": "POSIX", "PYTHONUTF8": "0"}


def _events(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "polarwatch.cli", "events", "--file", str(path), *args]
    return subprocess.run([os.fsencode(a) for a in argv], cwd=REPO, env=_ascii_locale_env(),
                          capture_output=True, timeout=120, check=False)


def test_an_ascii_locale_reads_a_utf8_event_name_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "events.toml"
    added = _events(path, "add", NAME, "--topic", "climate_change", "--start",
                    "2026-04-01T10:00Z", "--kind", "sudden")
    assert added.returncode == 0, added.stderr.decode("utf-8", "replace")
    assert [e.name for e in load_events(path)] == [NAME]
    listed = _events(path, "list", "--topic", "climate_change")
    assert listed.returncode == 0 and NAME in listed.stdout.decode("utf-8"), listed
    removed = _events(path, "remove", NAME, "--topic", "climate_change")
    assert removed.returncode == 0, removed.stderr.decode("utf-8", "replace")
    assert load_events(path) == []
