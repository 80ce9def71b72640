"""Under spark-submit its --master stands: build_spark used to name the config's master on
the builder, which overrode it, so docs/cluster.md's recipe ran on the config's local[2]."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyspark

from tests.conftest import REPO

DRIVER = """
import logging, sys
logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                    format="%(levelname)s %(name)s: %(message)s")
from stream.job import build_spark
spark = build_spark("local[2]", app_name="polarwatch-submit-test")
conf = spark.sparkContext.getConf()
print("master", spark.sparkContext.master)
print("bind", conf.get("spark.driver.bindAddress"), conf.get("spark.driver.host"))
spark.stop()
"""


def test_spark_submit_master_wins_over_the_configured_one(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    # spark.driver.host given to spark-submit stands too; bindAddress, not given, is local-only
    proc = subprocess.Popen([str(submit), "--master", "local[1]",
                             "--conf", "spark.driver.host=localhost", str(driver)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and spark-submit's JVM
        out, err = proc.communicate()
    assert proc.returncode == 0, out + err[-3000:]
    # spark-submit sends its Python driver's stderr to its own stdout (PythonRunner)
    said = [ln for ln in out.splitlines() if ln.startswith(("master ", "bind "))]
    assert said == ["master local[1]", "bind 127.0.0.1 localhost"], out + err[-3000:]
    warnings = [ln for ln in (out + err).splitlines() if ln.startswith("WARNING stream.session:")]
    assert warnings == ["WARNING stream.session: spark-submit's --master local[1] wins over the "
                        "config's [spark] master 'local[2]'; drop one of the two to silence "
                        "this"], err[-3000:]
