"""`report -o` with a file name that is not UTF-8 (``rep\\xe9.html`` from a Latin-1 machine,
held by Python with a lone surrogate) stopped with a UnicodeEncodeError traceback: strftime,
which fills in the name's time codes, cannot encode the surrogate. Now the report is written
under those very bytes, with the codes around them filled in."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from forecast.reports.report import output_name
from polarwatch.cli import main
from tests.dashboard.conftest import seed_warehouse

REPO = Path(__file__).resolve().parents[2]


def test_report_is_written_under_a_latin1_name_with_its_codes_filled_in(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(seed_warehouse(tmp_path / "w.duckdb").path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    out = tmp_path / os.fsdecode(b"rep\xe9-%Y.html")
    assert main(["--config", str(REPO / "polarwatch.toml"), "report", "-o", str(out)]) == 0
    year = datetime.now(UTC).year
    written = [os.fsencode(p.name) for p in tmp_path.glob("rep*")]
    assert written == [f"rep\xe9-{year}.html".encode("latin-1")]
    assert "<h2>Gun control" in (tmp_path / os.fsdecode(written[0])).read_text()
    capsys.readouterr()


def test_output_name_fills_codes_on_both_sides_of_undecodable_bytes() -> None:
    now = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)
    name = os.fsdecode(b"%Y/\xe9\xe8-%m%d-\xff%%.html")
    assert os.fsencode(output_name(name, now)) == b"2026/\xe9\xe8-0304-\xff%.html"
    assert output_name("plain-%H%M.html", now) == "plain-0506.html"
