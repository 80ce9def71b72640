"""Rows with no text get the shared "no text" labels, which are no backend's: they are counted
apart, and they neither count as a backend's labels nor hide a run in which every backend failed
on every row with text (exit 1). A file of rows with no text alone is no failure (exit 0)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.cli import main

REPO = Path(__file__).resolve().parents[2]
LOGIN = b"<!doctype html><html><body><form action=/login>Sign in</form></body></html>"


@pytest.fixture(scope="module")
def login_page() -> Iterator[str]:
    """A real server that answers every POST with an HTML login page (200, text/html), as a
    proxy in front of an LLM server does when the session ran out."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(LOGIN)))
            self.end_headers()
            self.wfile.write(LOGIN)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def label(tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, texts: list[str],
          fallback: str = "") -> tuple[int, str, list[dict[str, object]]]:
    src, out = tmp_path / "posts.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "text": t, "topic": "gun_control"}) + "\n"
                           for i, t in enumerate(texts)))
    rc = main(["--config", str(REPO / "polarwatch.toml"), "label", str(src), "--backend", "llm",
               "--fallback", fallback, "-O", f"llm.base_url={url}", "-O", "llm.retries=0",
               "-o", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return rc, capsys.readouterr().err, rows


def test_a_blank_row_does_not_hide_that_every_post_failed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], login_page: str) -> None:
    """It was "labeled 1 of 3 rows ... labels by backend: {'none': 2, 'llm': 1}", exit 0."""
    rc, err, rows = label(tmp_path, capsys, login_page,
                          ["Ban assault weapons.", "", "Guns protect families."])
    assert rc == 1, err
    assert "labeled 0 of 3 rows with llm" in err and "labels by backend: {'none': 2}" in err, err
    assert "1 rows had no text" in err and "every backend failed on all 2 rows with text" in err
    assert [r["backend"] for r in rows] == ["none", "llm", "none"]  # all three are written


def test_no_text_rows_are_not_a_backends_labels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], login_page: str) -> None:
    rc, err, _ = label(tmp_path, capsys, login_page, ["Ban assault weapons.", " \u200b"],
                       fallback="lexicon")
    assert rc == 0, err
    assert "labeled 1 of 2 rows" in err and "labels by backend: {'lexicon': 1}" in err, err
    assert "1 rows had no text" in err


def test_a_file_of_blank_rows_alone_is_no_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], login_page: str) -> None:
    rc, err, rows = label(tmp_path, capsys, login_page, ["", "   ", "\ufeff"])
    assert rc == 0, err
    assert "labeled 0 of 3 rows" in err and "labels by backend: {}" in err, err
    assert "3 rows had no text (written as unclear: nothing to label)" in err
    assert "error:" not in err and len(rows) == 3
