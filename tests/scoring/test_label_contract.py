"""`polarwatch label`: the stream's parent rule, a failing backend (stdout stays JSONL, the
summary counts the failures, the exit status says no row got a label) and `-O` mistakes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from polarwatch.cli import main

REPO = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(REPO / "polarwatch.toml")]
ROWS = [
    {"id": "r1", "text": "ban assault weapons now", "topic": "gun_control"},
    {"id": "e7", "text": "ban assault weapons, idiots", "topic": "gun_control",
     "parent_id": "e7"},  # names itself: a root
    {"id": "j2", "text": "I agree totally", "topic": "gun_control", "parent_id": ""},
    {"id": "e9", "text": "guns protect families", "topic": "gun_control"},
    {"id": "e8", "text": "I agree! climate hoax", "topic": "climate_change",
     "parent_id": "e9"},  # a parent of another topic: not paired
    {"id": "ok", "text": "No, you are wrong, idiot", "topic": "gun_control", "parent_id": "r1"},
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main([*CONFIG, *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def posts(tmp_path: Path) -> Path:
    src = tmp_path / "posts.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return src


def test_label_pairs_as_the_stream_does(tmp_path: Path, posts: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    rc, _, err = run(capsys, "label", str(posts), "--backend", "lexicon", "-o", str(out))
    assert rc == 0, err
    got = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    for root in ("e7", "j2", "r1"):  # self-parent and "" are roots: no agreement, no score
        assert got[root]["parent_id"] is None and got[root]["agreement"] is None, got[root]
        assert got[root]["interaction_score"] is None
    assert got["e8"]["parent_id"] == "e9"  # kept as given, but never compared across topics
    assert got["e8"]["agreement"] is None and got["e8"]["interaction_score"] is None
    assert got["ok"]["agreement"] is not None  # a same-topic reply is still paired
    assert "1 replies to a row of another topic left unpaired" in err
    csv = tmp_path / "posts.csv"  # an empty CSV cell is a root too, as "" in JSONL
    csv.write_text("id,text,topic,parent_id\nc1,guns now,gun_control,\nc2,I agree,gun_control,c2\n")
    rc, _, err = run(capsys, "label", str(csv), "--backend", "lexicon", "-o", str(out))
    assert rc == 0, err
    assert all(r["parent_id"] is None and r["agreement"] is None
               for r in map(json.loads, out.read_text().splitlines()))


class _BadJSON(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint whose every answer is unusable (no JSON content)."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"choices": [{"message": {"content": "not json at all"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bad_llm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadJSON)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def test_failing_backend_keeps_stdout_jsonl_and_logs_on_stderr(posts: Path, bad_llm: str
                                                                ) -> None:
    for quiet in ([], ["-q"]):
        done = subprocess.run(
            [sys.executable, "-m", "polarwatch.cli", *CONFIG, *quiet, "label", str(posts),
             "--backend", "llm", "--fallback", "lexicon", "-O", f"llm.base_url={bad_llm}",
             "-O", "llm.model=m", "-O", "llm.retries=0", "-O", "llm.timeout=5"],
            capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 0, done.stderr[-2000:]
        lines = done.stdout.splitlines()
        assert len(lines) == len(ROWS) and all(json.loads(line)["id"] for line in lines), \
            done.stdout[:1000]
        assert "backend failure" in done.stderr
        assert f"failures by backend: {{'llm': {len(ROWS)}}}" in done.stderr, done.stderr


def test_every_row_failing_is_an_error(tmp_path: Path, posts: Path, bad_llm: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jsonl"
    rc, _, err = run(capsys, "label", str(posts), "--backend", "llm", "--fallback", "",
                     "-O", f"llm.base_url={bad_llm}", "-O", "llm.model=m", "-O", "llm.retries=0",
                     "-o", str(out))
    assert rc == 1, err
    assert f"labeled 0 of {len(ROWS)} rows" in err
    assert f"{len(ROWS)} rows failed on every backend" in err
    assert "every backend failed on all" in err
    assert len(out.read_text().splitlines()) == len(ROWS)  # the rows are still written


@pytest.mark.parametrize(("option", "said"), [
    ("lexicon.foo=1", "backend 'lexicon' has no option foo; its options are none"),
    ("llm.timeout_s=3", "backend 'llm' has no option timeout_s; its options are base_url, "),
    ("llm.timeout=abc", "option llm.timeout='abc': expected float"),
    ("lllm.timeout=3", "unknown backend 'lllm'"),
])
def test_a_wrong_option_is_one_line(posts: Path, tmp_path: Path, option: str, said: str,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = run(capsys, "label", str(posts), "--backend", "llm", "--fallback", "lexicon",
                     "-O", option, "-o", str(tmp_path / "o.jsonl"))
    assert rc == 2 and said in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_the_docs_list_every_backend_option() -> None:
    from scoring.extractors.registry import available_backends, backend_options

    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    for name in available_backends():
        assert all(f"`{key}`" in doc for key in backend_options(name)), name


@pytest.mark.parametrize("parent", [None, "", "p1", "p2", "0"])
def test_label_uses_the_streams_parent_rule(parent: str | None, tmp_path: Path) -> None:
    """`label` reads a row's parent with the rule the stream applies."""
    from polarwatch.validation import parent_of
    from scoring.io import read_posts

    src = tmp_path / "posts.jsonl"
    row = {"id": "p1", "text": "t", "topic": "gun_control", "parent_id": parent}
    src.write_text(json.dumps(row) + "\n", encoding="utf-8")
    posts, errors = read_posts(src, ["gun_control"])
    assert not errors and posts[0].parent_id == parent_of({"id": "p1", "parent_id": parent})
