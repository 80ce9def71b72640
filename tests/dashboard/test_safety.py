"""Dashboard safety: loopback by default (also under a plain `streamlit run`), events editing
is opt-in, webhook URLs show the host only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.safety import (
    TOKEN_ENV,
    bind_refusal,
    host_only,
    md_text,
    redact_urls,
    spreadsheet_safe,
)
from ingest.broker import free_port
from polarwatch.warehouse import connect, init_schema

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "dashboard" / "app.py"
SECRET_URL = "https://user:pa55@hooks.example.com:8443/services/T0/B0/s3cr3t?token=abc"


def test_bind_refusal() -> None:
    assert bind_refusal("127.0.0.1", "127.0.0.1") is None
    assert bind_refusal("localhost", "127.0.0.1") is None
    assert bind_refusal("10.0.0.5", "10.0.0.5") is None  # configured on purpose
    assert bind_refusal("0.0.0.0", "0.0.0.0") is None
    assert bind_refusal("", "0.0.0.0") is None  # Streamlit's default = every interface
    for bound in (None, "", "0.0.0.0", "::", "10.0.0.5"):
        msg = bind_refusal(bound, "127.0.0.1")
        assert msg is not None and "[dashboard] address" in msg, bound


def test_host_only_drops_credentials_path_and_query() -> None:
    assert host_only(SECRET_URL) == "https://hooks.example.com:8443"
    assert host_only("http://[::1]:9000/x") == "http://[::1]:9000"
    assert host_only("not a url") == "not a url" and host_only(None) is None
    df = redact_urls(pd.DataFrame({"url": [SECRET_URL], "status": ["200"],
                                   "webhook_url": ["http://h/p?k=1"]}))
    assert df.to_dict("records") == [{"url": "https://hooks.example.com:8443",
                                      "status": "200", "webhook_url": "http://h"}]


def _run(monkeypatch: pytest.MonkeyPatch, warehouse: Path, events: Path, page: str,
         token: str | None = None, **env: str) -> AppTest:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    monkeypatch.delenv("POLARWATCH_DASHBOARD_EDIT_EVENTS", raising=False)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(warehouse))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(events))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(APP), default_timeout=30)
    if token is not None:
        at.query_params["token"] = token
    at.switch_page(page)
    return at.run()


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "wh.duckdb"
    init_schema(path)
    with connect(path) as con:  # the delivery log forecast/alerts/webhooks.py keeps
        con.execute("INSERT INTO alert_deliveries VALUES (?, 'f1', 'firing', now(), 'msg_1', 1, "
                    "200, NULL, 'delivered', now())", [SECRET_URL])
    return path


def test_alerts_page_shows_webhook_hosts_only(monkeypatch: pytest.MonkeyPatch,
                                              warehouse: Path, tmp_path: Path) -> None:
    at = _run(monkeypatch, warehouse, tmp_path / "events.toml", "views/alerts.py")
    assert not at.exception
    shown = at.dataframe[-1].value
    assert list(shown["endpoint"]) == ["https://hooks.example.com:8443"]
    assert "s3cr3t" not in shown.to_csv() and "pa55" not in shown.to_csv()


@pytest.mark.parametrize(("value", "escaped"), [
    ("conv-1", r"conv\-1"),
    ("**b** $x$", r"\*\*b\*\* \$x\$"),
    ("![i](http://h/p.png)", r"\!\[i\]\(http\:\/\/h\/p\.png\)"),
    (":red[x] <b>", r"\:red\[x\] \<b\>"),
    ("a\n\n# h", r"a \# h"),  # one line: no blank line, no heading
    ("`c`\\", r"\`c\`\\"),
])
def test_markdown_text_escapes_every_mark(value: str, escaped: str) -> None:
    assert md_text(value) == escaped


def test_cells_a_spreadsheet_would_run_are_defused() -> None:
    df = pd.DataFrame({"text": ["=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx",
                                "\r=1", "fine = ok", None], "n": range(8)})
    out = spreadsheet_safe(df)
    assert list(out["text"][:6]) == ["'" + v for v in df["text"][:6]]
    assert out["text"][6] == "fine = ok" and out["text"][7] is None
    assert list(out["n"]) == list(range(8)) and df["text"][0].startswith("=")  # a copy


def test_dead_letter_table_download_runs_no_formula(monkeypatch: pytest.MonkeyPatch,
                                                    warehouse: Path, tmp_path: Path) -> None:
    with connect(warehouse) as con:
        con.execute("INSERT INTO dead_letters (source_topic, kafka_partition, kafka_offset, "
                    "reason, raw, seen_at, source, raw_size, rejected_at) VALUES "
                    "('polarwatch.posts', 0, 1, "
                    "'=cmd|/c calc!A1', '=HYPERLINK(\"http://x\",\"y\")', now(), 'stream', "
                    "20, now())")
    at = _run(monkeypatch, warehouse, tmp_path / "events.toml", "views/dead_letters.py")
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["raw"]) == ['\'=HYPERLINK("http://x","y")']
    assert list(shown["reason"]) == ["'=cmd|/c calc!A1"]


def test_events_page_is_read_only_unless_editing_is_enabled(
        monkeypatch: pytest.MonkeyPatch, warehouse: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.toml"
    at = _run(monkeypatch, warehouse, events, "views/event_calendar.py")
    assert not at.exception
    assert "Editing is off" in "\n".join(str(i.value) for i in at.info)
    assert not at.button and not at.text_input  # no form at all

    at = _run(monkeypatch, warehouse, events, "views/event_calendar.py", token="t",
              POLARWATCH_DASHBOARD_EDIT_EVENTS="true", **{TOKEN_ENV: "t"})
    at.text_input[0].input("a\x07b\x7fc")  # control characters in the name: refused
    at.button[0].click().run()
    assert not at.exception
    assert md_text("control character(s)") in "\n".join(str(e.value) for e in at.error)
    assert not events.exists()
    at.text_input[0].input("Vote <b>x</b> $y$")
    at.button[0].click().run()
    raw = tomllib.loads(events.read_text(encoding="utf-8"))  # what the forecaster reads
    assert [e["name"] for e in raw["event"]] == ["Vote <b>x</b> $y$"]


def _listening(pid: int, port: int, timeout: float = 60.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                break
        except OSError:
            time.sleep(0.3)
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {c.laddr.ip for p in procs for c in p.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


@pytest.mark.slow
def test_plain_streamlit_run_binds_loopback_only(tmp_path: Path) -> None:
    """`streamlit run dashboard/app.py` with no address flag, started from another directory
    (no project-level .streamlit/ there): dashboard/.streamlit/config.toml applies."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HOME"] = str(tmp_path)  # no global ~/.streamlit/config.toml either
    with (tmp_path / "streamlit.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP),
                                 "--server.port", str(port)],
                                cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert _listening(proc.pid, port) == {"127.0.0.1"}, \
                (tmp_path / "streamlit.log").read_text()[-2000:]
        finally:
            proc.terminate()
            proc.wait(15)
