"""Two `forecast` runs at once (cron overlapping `report --every --forecast`) deliver each message
once: the second run finds the first delivering, says so and leaves what it would send pending.
Two real processes, a real receiver and a real DuckDB file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from polarwatch.warehouse import init_schema
from tests.forecast.test_alert_episodes import write_history
from tests.forecast.test_webhooks import Scripted, _reply

REPO = Path(__file__).resolve().parents[2]
RUN = """
import json, logging, sys
from pathlib import Path
from forecast.alerts.delivery import send_flag_alerts
from tests.forecast.test_alerting import config
logging.basicConfig(level=logging.INFO, format="%(message)s")
try:  # a second run waits this long for the first to finish delivering
    from forecast.alerts import run_lock
    run_lock.LOCK_WAIT_SECONDS = 0.5
except ImportError:  # (before the lock: the test is red, not broken)
    pass
cfg = config(Path(sys.argv[1]), sys.argv[2], timeout_seconds="60", max_attempts="1")
print(json.dumps(send_flag_alerts(cfg)))
"""


def run(path: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", RUN, str(path), url], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_at_once_deliver_each_message_once(tmp_path: Path) -> None:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    write_history(path, 120, [(100, 110), (112, None)])  # three messages
    release, ids = threading.Event(), Counter[str]()

    def answer(h: BaseHTTPRequestHandler, n: int, s: Any) -> None:
        ids[h.headers["webhook-id"]] += 1
        if n == 1:  # the first run is in the middle of its delivery until released
            release.wait(60)
        _reply(h, 200)

    receiver = Scripted(answer)
    try:
        first = run(path, receiver.url)
        deadline = time.monotonic() + 60
        while not ids and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ids, first.communicate()
        second = run(path, receiver.url)
        out, err = second.communicate(timeout=120)
        release.set()
        first_out, first_err = first.communicate(timeout=120)
    finally:
        release.set()
        receiver.close()
    assert second.returncode == 0 and first.returncode == 0, (err, first_err)
    assert sum(ids.values()) == 3 and set(ids.values()) == {1}, ids
    assert json.loads(first_out.splitlines()[-1])["sent"] == 3
    skipped = json.loads(out.splitlines()[-1])
    assert skipped["sent"] == skipped["failed"] == 0 and skipped["deferred"] == 3, skipped
    assert "another run (PID" in err and "is delivering the alerts of" in err, err
    assert "stays pending for the next run" in err
