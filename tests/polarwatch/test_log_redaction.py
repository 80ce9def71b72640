"""No secret of a URL reaches the console: real commands against a real local HTTP server, at
the default verbosity and with -v. Webhook URLs carry their token in the path (Slack, Teams,
Discord) or the query; an LLM gateway's base URL may carry a key in its path, query or user part.

httpx logs every request at INFO with the full URL ("HTTP Request: POST https://…"): no polarwatch
command prints those lines, also when the root logger is set up at DEBUG before polarwatch runs
(an embedding script, a library calling basicConfig), because the CLI holds httpx and httpcore at
WARNING. The llm backend's messages named its whole base URL ("HTTP 404 from http://user:pw@host/
<key>/v1/chat/completions", "the server at … is unreachable")."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.config import load_topics
from polarwatch.errors import BackendError
from scoring.extractors import PostPair
from scoring.extractors.llm_http import LLMExtractor

REPO = Path(__file__).resolve().parents[2]
SECRETS = ("T0SECRET", "B0SECRET", "XOXBPATHTOKEN", "QUERYTOKEN", "GATEWAYKEY", "PASSWD")
ANSWER = {"stance": {"label": "pro", "explanation": "x"}, "affect": {"label": "no",
                                                                      "explanation": "x"},
          "agreement": {"label": "agree", "explanation": "x"}, "emotion": "anger",
          "intensity": "low"}
WEBHOOK_SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


class Server:
    """A local HTTP server: a webhook receiver (200), an OpenAI-compatible chat endpoint, a 404
    under any path holding `fail`, and a redirect under `moved`; it records each request's path."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.paths.append(self.path)
                if "moved" in self.path:
                    self.send_response(307)
                    self.send_header("Location", f"{outer.base}/elsewhere/GATEWAYKEY/v1"
                                                 f"/chat/completions?key=QUERYTOKEN")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, body = ((404, b"no such route") if "fail" in self.path else
                                (200, json.dumps({"choices": [{"message": {
                                    "content": json.dumps(ANSWER)}}]}).encode()))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_port}"
        self.base = f"http://{self.host}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name in ("polarwatch.toml", "topics.toml"):
        shutil.copy(REPO / name, root / name)
    rows = [{"id": "p1", "text": "We need stricter gun laws.", "topic": "gun_control"},
            {"id": "p2", "text": "No, that is wrong.", "topic": "gun_control", "parent_id": "p1"}]
    (root / "posts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _polarwatch(project: Path, *args: str, root_debug: bool = False,
                **env: str) -> tuple[int, str]:
    """Run the CLI; `root_debug`: with the root logger set up at DEBUG first, as an embedding
    script or a library calling logging.basicConfig would. Returns the exit code and everything
    it wrote (stdout, stderr)."""
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG); "
            "from polarwatch.cli import main; sys.exit(main(sys.argv[1:]))" if root_debug
            else "import sys; from polarwatch.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=project, capture_output=True,
                         text=True, timeout=300, env={**os.environ, **env})
    return out.returncode, out.stdout + out.stderr


def _no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, (leaked, text[-3000:])


def _webhook(server: Server) -> str:
    return f"{server.base}/services/T0SECRET/B0SECRET/XOXBPATHTOKEN?token=QUERYTOKEN"


@pytest.mark.parametrize("loud", [[], ["-v"]], ids=["default", "-v"])
def test_alerts_test_names_the_webhook_by_its_host(server: Server, project: Path,
                                                   loud: list[str]) -> None:
    before = len(server.paths)
    rc, said = _polarwatch(project, *loud, "alerts", "test", _webhook(server),
                           POLARWATCH_ALERTS_SECRET=WEBHOOK_SECRET)
    assert rc == 0, said
    assert server.paths[before:] == ["/services/T0SECRET/B0SECRET/XOXBPATHTOKEN?token=QUERYTOKEN"]
    assert f"delivered to {server.base}/…" in said, said
    _no_secret(said)
    assert "HTTP Request:" not in said


def test_httpx_request_lines_stay_out_even_under_a_debug_root_logger(server: Server,
                                                                     project: Path) -> None:
    before = len(server.paths)
    rc, said = _polarwatch(project, "-v", "alerts", "test", _webhook(server), root_debug=True,
                           POLARWATCH_ALERTS_SECRET=WEBHOOK_SECRET)
    assert rc == 0, said
    assert len(server.paths) == before + 1  # the POST was made: httpx had a line to log
    assert "HTTP Request:" not in said, said
    _no_secret(said)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("loud", [[], ["-v"]], ids=["default", "-v"])
def test_label_with_the_llm_backend_names_the_server_by_its_host(
        server: Server, project: Path, loud: list[str]) -> None:
    """An HTTP error (404 under a gateway path with a key, and a user:password), and a server
    that refuses the connection (a key in the path and in the query)."""
    port = _closed_port()
    for url, shown in ((f"http://user:PASSWD@{server.host}/fail/GATEWAYKEY/v1",
                        f"HTTP 404 from {server.base}/…/v1/chat/completions"),
                       (f"http://127.0.0.1:{port}/GATEWAYKEY/v1?key=QUERYTOKEN",
                        f"the server at http://127.0.0.1:{port}/…/v1 is unreachable")):
        out = project / "labels.jsonl"
        rc, said = _polarwatch(project, *loud, "label", "posts.jsonl", "--backend", "llm",
                               "--fallback", "", "-O", "retries=0", "-o", str(out),
                               POLARWATCH_EXTRACTOR_LLM_BASE_URL=url)
        assert rc == 1 and shown in said, said  # every backend failed: the failures are shown
        _no_secret(said + out.read_text())
        assert "HTTP Request:" not in said


def test_label_with_the_llm_backend_works_and_logs_no_request_line(server: Server,
                                                                   project: Path) -> None:
    before = len(server.paths)
    out = project / "labels.jsonl"
    rc, said = _polarwatch(project, "-v", "label", "posts.jsonl", "--backend", "llm",
                           "--fallback", "", "-o", str(out), root_debug=True,
                           POLARWATCH_EXTRACTOR_LLM_BASE_URL=f"{server.base}/ok/GATEWAYKEY/v1")
    assert rc == 0 and "labels by backend: {'llm': 2}" in said, said
    assert server.paths[before:] == ["/ok/GATEWAYKEY/v1/chat/completions"] * 2
    assert "HTTP Request:" not in said
    _no_secret(said)


def test_a_redirect_names_neither_address_beyond_its_host(server: Server) -> None:
    llm = LLMExtractor(load_topics(REPO / "topics.toml"), base_url=f"{server.base}/moved/GATEWAYKEY/v1", retries=0,
                       api_key="sk-PASSWD")
    with pytest.raises(BackendError) as failed:
        llm.extract([PostPair("p1", "We need stricter gun laws.", "gun_control")])
    message = str(failed.value)
    assert f"HTTP 307 from {server.base}/…/v1/chat/completions redirects to " \
           f"'{server.base}/…', which is not followed" in message, message
    _no_secret(message)
