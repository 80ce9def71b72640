"""Spark under an ASCII locale (LC_ALL=C, Python's UTF-8 mode off) started from a directory with
non-ASCII characters: the JVM could not encode its working directory and failed to start
(ExceptionInInitializerError in a ~75-line Py4JJavaError traceback). The driver now starts the
JVM and its Python workers with LC_ALL=C.UTF-8 when the locale is not UTF-8."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

PROBE = """
from stream.session import build_spark
spark = build_spark("local[1]")
print("rows", spark.range(3).count())
spark.stop()
"""


@pytest.mark.parametrize("utf8_mode", ["0", None])  # None: Python turns its UTF-8 mode on
def test_spark_starts_under_an_ascii_locale_in_a_non_ascii_directory(
        tmp_path: Path, utf8_mode: str | None) -> None:
    here = tmp_path / "dir ü x"
    here.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C"}
    env.pop("PYTHONIOENCODING", None)
    env.pop("PYTHONUTF8", None)
    if utf8_mode is not None:
        env["PYTHONUTF8"] = utf8_mode
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=here, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "rows 3" in proc.stdout, proc.stderr[-3000:]
