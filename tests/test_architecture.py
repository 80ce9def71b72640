"""The rooms' import contracts (pyproject ``[tool.importlinter]``) hold for the whole tree.

``make lint`` runs the same check; running it here too means CI (which runs ``make test``) fails
on a sideways import, a stage imported by the spine, or Kafka/Spark/DuckDB reached from scoring.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Contracts: 5 kept, 0 broken." in done.stdout, done.stdout[-2000:]
