"""`polarwatch dashboard` hands its app the LLM API key and no other credential: with
``$POLARWATCH_EXTRACTOR_LLM_API_KEY`` set as security.md says, the Label page's "Ask the LLM"
reaches a real HTTP server standing in for the LLM with ``Authorization: Bearer <key>``, while
the other secrets of the environment stay out of the app's process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.serve import app_env
from polarwatch.config import load_config
from tests.http_fakes import QuietHandler, serve

from .conftest import seed_warehouse
from .test_browser import CHROMIUM, CHROMIUM_ARGS, REPO, _free_port, _idle, _wait_healthy, stop

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's headless Chromium: apt-get install -y chromium")

KEY_ENV = "POLARWATCH_EXTRACTOR_LLM_API_KEY"
KEY = "sk-dashboard-test-key"
# other credentials a shell may hold: none of them is the app's business
OTHERS = {"POLARWATCH_ALERTS_SECRET": "whsec_c2VjcmV0", "GITHUB_TOKEN": "ghp_not_for_the_app",
          "POLARWATCH_INGEST_MASTODON_TOKEN": "mastodon-token"}
ANSWER = {"stance": "pro", "affect": "no", "agreement": "agree", "emotion": "neutral",
          "intensity": "low", "explanation": "supports it"}


class LLM(QuietHandler):
    """An OpenAI-compatible chat endpoint that answers only ``Bearer KEY`` (else 401, as a
    real gateway does) and records every Authorization header it was sent."""

    seen: list[str | None] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization")
        LLM.seen.append(auth)
        if auth != f"Bearer {KEY}":
            self._send(401, {"error": {"message": "invalid api key"}})
            return
        self._send(200, {"id": "x", "object": "chat.completion", "model": "m", "choices": [
            {"index": 0, "finish_reason": "stop",
             "message": {"role": "assistant", "content": json.dumps(ANSWER)}}]})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def llm_url() -> Iterator[str]:
    LLM.seen = []
    server = serve(LLM)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.fixture
def dashboard(tmp_path: Path, llm_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """`polarwatch dashboard` itself (dashboard/serve.py starts the app) with labelling on,
    the llm server configured and its key plus other secrets in the environment; yields the
    printed Label link and the app process's environment."""
    seed = seed_warehouse(tmp_path / "live.duckdb")
    port = _free_port()
    env = {**os.environ, **OTHERS, KEY_ENV: KEY,
           "POLARWATCH_WAREHOUSE_PATH": str(seed.path),
           "POLARWATCH_EVENTS_FILE": str(tmp_path / "events.toml"),
           "POLARWATCH_DASHBOARD_ALLOW_LABELS": "true",
           "POLARWATCH_DASHBOARD_LABEL_RANDOM_SHARE": "1.0",
           "POLARWATCH_EXTRACTOR_LLM_BASE_URL": llm_url}
    env.pop("POLARWATCH_CONFIG", None)
    err = tmp_path / "dashboard.err"
    with err.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "polarwatch.cli", "dashboard", "--port",
                                 str(port)], cwd=REPO, env=env, stdout=log, stderr=log)
    try:
        link = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"to label posts open (\S+/label\?token=\S+)", err.read_text())
            children = _children(proc.pid)
            if found and children:
                link = found.group(1)
                break
            time.sleep(0.2)
        assert link, f"no Label link (exit {proc.poll()}): {err.read_text()[-2000:]}"
        # the link is printed before the server listens: on a loaded machine (CI) the page
        # was asked for too early and refused
        _wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=max(deadline - time.monotonic(),
                                                                     10.0))
        yield link, _environ(children[0])
    finally:
        stop(proc, 20)


def test_the_app_process_gets_the_llm_key_and_no_other_secret(
        dashboard: tuple[str, dict[str, str]]) -> None:
    _, child = dashboard
    assert child.get(KEY_ENV) == KEY
    assert not set(OTHERS) & set(child), sorted(set(OTHERS) & set(child))


def test_ask_the_llm_sends_the_key_from_the_environment(
        dashboard: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    link, _ = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{link}&topic=gun_control", timeout=60_000)
            page.get_by_text("Stance towards the topic").wait_for(timeout=60_000)
            _idle(page)
            page.get_by_role("button", name=re.compile(r"^Ask the LLM")).click()
            outcome = page.get_by_text(re.compile(r"The LLM suggests|No suggestion:"))
            outcome.first.wait_for(timeout=30_000)
            _idle(page)
            shown = outcome.first.inner_text()
        finally:
            browser.close()
    assert LLM.seen and set(LLM.seen) == {f"Bearer {KEY}"}, LLM.seen
    assert shown.startswith("The LLM suggests"), shown


def test_without_labelling_or_an_llm_backend_the_key_stays_out(tmp_path: Path) -> None:
    base = {KEY_ENV: KEY, **OTHERS, "HOME": "/home/x"}
    on = {"POLARWATCH_EXTRACTOR_BACKEND": "llm", "POLARWATCH_DASHBOARD_ALLOW_LABELS": "true"}
    cfg = load_config(REPO / "polarwatch.toml", env={**base, **on})
    assert app_env(cfg, base=base)[KEY_ENV] == KEY
    for off in ({**on, "POLARWATCH_DASHBOARD_ALLOW_LABELS": "false"},
                {"POLARWATCH_DASHBOARD_ALLOW_LABELS": "true"}):  # backend learned, no llm
        cfg = load_config(REPO / "polarwatch.toml", env={**base, **off})
        child = app_env(cfg, base=base)
        assert KEY_ENV not in child and not set(OTHERS) & set(child)
