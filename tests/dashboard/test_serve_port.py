"""`polarwatch dashboard` on a port another program listens on: before, it printed "dashboard at
http://127.0.0.1:PORT" (and, with labelling on, a ?token= link to that other program), Streamlit
said "Port PORT is not available" and the command exited 0. Now one error line, exit 2, no link;
and a server that ends by itself (not by Ctrl-C or SIGTERM) is a non-zero exit."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dashboard import serve
from polarwatch.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_a_port_in_use_is_one_error_line_and_no_link(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("POLARWATCH_DASHBOARD_ALLOW_LABELS", "true")
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(tmp_path / "pw.duckdb"))
    with socket.socket() as other:  # another program's server on that port
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        rc = main(["--config", str(REPO / "polarwatch.toml"), "dashboard", "--port", str(port)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "token=" not in err and "dashboard at" not in err, err
    [line] = [x for x in err.splitlines() if x.startswith("polarwatch: error:")]
    assert f"127.0.0.1:{port} is in use" in line and "--port" in line, err


def test_a_server_that_ends_by_itself_is_a_failed_run(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setattr(serve, "APP", tmp_path / "no_such_app.py")  # streamlit exits at once
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(tmp_path / "pw.duckdb"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rc = main(["--config", str(REPO / "polarwatch.toml"), "dashboard", "--port", str(port)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "the dashboard server stopped by itself (exit" in err, err
