"""An event whose topic was removed from topics.toml: `events list` shows it marked (one
warning), `events remove` removes it, and forecast/report refuse naming that command."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest

from polarwatch.cli import main
from polarwatch.events import load_events
from polarwatch.warehouse import init_schema
from tests.forecast.test_forecast import seed, window_rows

REPO = Path(__file__).resolve().parents[2]


def _err(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines()
            if ln.strip() and "streamlit" not in ln]


def test_an_event_on_a_removed_topic_can_be_listed_and_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLARWATCH_EVENTS_FILE", raising=False)
    warehouse = tmp_path / "pw.duckdb"
    init_schema(warehouse)
    seed(warehouse, window_rows("gun_control", np.full(20, 3.0)))
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(warehouse))
    shutil.copy(REPO / "polarwatch.toml", tmp_path / "polarwatch.toml")
    topics = (REPO / "topics.toml").read_text()
    (tmp_path / "topics.toml").write_text(topics)
    config = ["--config", str(tmp_path / "polarwatch.toml")]
    for name, topic in (("COP vote", "climate_change"), ("Senate", "gun_control")):
        assert main([*config, "events", "add", name, "--topic", topic, "--start",
                     "2026-12-05T12:00:00Z", "--kind", "scheduled"]) == 0
    # the analyst removes the climate_change topic
    cut = topics.index('[[topic]]\nid = "climate_change"')
    (tmp_path / "topics.toml").write_text(topics[:cut])
    capsys.readouterr()
    command = (f"polarwatch events --file={shlex.quote(str(tmp_path / 'events.toml'))} remove "
               f"--topic=climate_change -- 'COP vote'")  # the calendar named: any directory

    assert main([*config, "events", "list"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].endswith("COP vote  [unknown topic]") and "climate_change" in lines[0]
    assert lines[1].endswith("Senate")  # on a known topic: not marked
    warnings = [ln for ln in out.err.splitlines() if "warning" in ln]
    assert len(warnings) == 1, out.err
    assert ("1 event(s) in" in warnings[0] and "(climate_change)" in warnings[0]
            and f"`{command}`" in warnings[0])

    report = tmp_path / "r.html"
    for argv in (["forecast"], ["report", "-o", str(report)]):
        assert main([*config, *argv]) == 2, argv
        err = _err(capsys)
        assert len(err) == 1, err
        assert "unknown topic 'climate_change' (known: gun_control)" in err[0]
        assert f"remove it with `{command}`" in err[0]
    assert not report.exists()

    # a new event on an unknown topic is still refused
    assert main([*config, "events", "add", "X", "--topic", "climate_change", "--start",
                 "2026-12-06", "--kind", "sudden"]) == 2
    assert "unknown topic 'climate_change'" in _err(capsys)[0]

    monkeypatch.chdir(REPO)  # the command as shown, from another directory
    assert main(shlex.split(command)[1:]) == 0
    assert [(e.topic, e.name) for e in load_events(tmp_path / "events.toml")] == [
        ("gun_control", "Senate")]
    capsys.readouterr()
    assert main([*config, "events", "list"]) == 0
    out = capsys.readouterr()
    assert "[unknown topic]" not in out.out and "warning" not in out.err


def test_the_remove_command_parses_whatever_starts_with_a_dash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hand-edited calendar may hold a topic, and its file a name, starting with '-'
    (review: `--topic -x` and `--file -rel.toml` were read as options)."""
    from polarwatch.events import remove_command

    monkeypatch.chdir(tmp_path)
    Path("-cal.toml").write_text('[[event]]\nname = "-walk"\ntopic = "-x"\n'
                                 'start = "2026-12-05T12:00:00Z"\nkind = "sudden"\n')
    command = remove_command("-walk", "-x", Path("-cal.toml"))
    assert main(shlex.split(command)[1:]) == 0, command
    assert load_events(Path("-cal.toml")) == []
