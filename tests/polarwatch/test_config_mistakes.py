"""Mistakes in polarwatch.toml, topics.toml and the environment, through the real command line:
each is one line naming the file (or variable), what was found and what is expected, exit 2;
each was a traceback, a garbled message or silently accepted before."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.config import SECTIONS, load_config
from polarwatch.config_errors import unknown_env

REPO = Path(__file__).resolve().parents[2]
TOPIC_KEYS = "1-249 characters of letters, digits, '.', '_' and '-' (not '.' or '..')"


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the shipped topics.toml and events.toml, and no polarwatch variable."""
    for name in ("topics.toml", "events.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    for name in [n for n in os.environ if n.upper().startswith("POLARWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def one_error(rc: int, err: str) -> str:
    errors = [line for line in err.splitlines() if "error:" in line]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in err, (rc, err)
    return errors[0]


@pytest.mark.parametrize(("toml", "says"), [
    (b"[aggregate]\nextreme_threshold = 11\n",
     "[aggregate] extreme_threshold: expected a number from 0 to 10 (interaction scores run "
     "from 0 to 10), got 11"),
    (b"[aggregate]\nextreme_threshold = -5\n",
     "[aggregate] extreme_threshold: expected a number from 0 to 10"),
    (b"[aggregate]\nextreme_threshold = inf\n",
     "[aggregate] extreme_threshold: expected a finite number, got inf"),
    (b"[forecast]\nmin_volume = 1e400\n", "[forecast] min_volume: expected a finite number, got inf"),
    (b"[broker]\nretention_hours = inf\n", "[broker] retention_hours: expected a finite number"),
    # a whole-number key given a float past int64 said "expected Unable to parse input string
    # as an integer, exceeded maximum size, got 1e+20"
    (b"[forecast]\nmin_volume = 1e20\n", "[forecast] min_volume: expected a number, got 1e+20"),
    (b"[topics]\npartitions = 1e300\n", "[topics] partitions: expected a number, got 1e+300"),
    (b'[topics]\nposts = ""\n', f"[topics] posts: expected a Kafka topic name: {TOPIC_KEYS}, got ''"),
    (b"[topics]\nposts = 'bad topic/name'\n",
     "[topics] posts: expected a Kafka topic name: 1-249 characters"),
    (b'[topics]\ndead_letter = ".."\n', "[topics] dead_letter: expected a Kafka topic name"),
    (b'[topics]\ndead_letter = "' + b"x" * 250 + b'"\n',
     "[topics] dead_letter: expected a Kafka topic name"),
    (b"[broker]\n# caf\xe9\n", "polarwatch.toml: byte 0xe9 at offset 14 (line 2, column 6) is "
                               "not UTF-8; save the file as UTF-8"),
    (b"\xff", "polarwatch.toml: byte 0xff at offset 0 (line 1, column 1) is not UTF-8"),
    ("[broker]\n".encode("utf-16"), "polarwatch.toml: the file is UTF-16"),
])
def test_a_bad_config_file_is_one_line(project: Path, capsys: pytest.CaptureFixture[str],
                                       toml: bytes, says: str) -> None:
    (project / "polarwatch.toml").write_bytes(toml)
    error = one_error(*run(capsys, "events", "list"))
    assert says in error and "Input should be" not in error, error


def test_good_edges_still_load(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "polarwatch.toml").write_text(
        '[aggregate]\nextreme_threshold = 10\n[topics]\nposts = "a.b_c-D9"\n'
        f'dead_letter = "{"x" * 249}"\n')
    rc, err = run(capsys, "events", "list")
    assert rc == 0, err


def test_a_byte_order_mark_is_accepted(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Editors on Windows write one: it was "invalid TOML: Invalid statement (at line 1,
    column 1)"."""
    (project / "polarwatch.toml").write_bytes(
        b"\xef\xbb\xbf[topics]\nposts = \"bom.posts\"\n")
    topics = project / "topics.toml"
    topics.write_bytes(b"\xef\xbb\xbf" + topics.read_bytes())
    src = project / "posts.jsonl"
    src.write_text(json.dumps({"id": "1", "text": "ban assault weapons", "topic": "gun_control"}))
    rc, err = run(capsys, "label", str(src), "--backend", "lexicon", "--fallback", "",
                  "-o", str(project / "out.jsonl"))
    assert rc == 0, err
    assert json.loads((project / "out.jsonl").read_text())["topic"] == "gun_control"
    assert load_config(project / "polarwatch.toml", env={}).topics.posts == "bom.posts"


def test_a_topics_file_that_is_not_utf8_is_one_line(project: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (project / "topics.toml").write_bytes(b'[[topic]]\nid = "x"\nname = "\xff"\n')
    src = project / "posts.jsonl"
    src.write_text(json.dumps({"id": "1", "text": "x", "topic": "x"}))
    error = one_error(*run(capsys, "label", str(src), "--backend", "lexicon"))
    assert (f"{project / 'topics.toml'}: byte 0xff at offset 27 (line 3, column 9) is not "
            f"UTF-8; save the file as UTF-8") in error, error


SIDES = ('[[topic]]\nid = "gun_control"\nname = "Gun control"\npro = "Supports stricter gun '
         'laws."\nanti = "Opposes stricter gun laws."\n[[topic]]\nid = "{id}"\nname = "X"\n'
         'pro = "{pro}"\nanti = "{anti}"\n')


@pytest.mark.parametrize(("pro", "anti", "says"), [
    ("Supports stricter gun laws.", "Supports stricter gun laws.", "pro and anti say the same"),
    ("Supports stricter  gun laws.", " supports STRICTER gun laws. ", "pro and anti say the same"),
    (" ", " ", "pro and anti are blank"),
    ("Supports stricter gun laws.", "\\t", "anti is blank"),
], ids=["identical", "case-and-spacing", "both-blank", "anti-blank"])
@pytest.mark.parametrize("command", [
    ["label", "posts.jsonl", "--backend", "lexicon"], ["stream"],
    ["train", "--from-warehouse", "--topic", "gun_control"], ["relabel", "--since", "2026-01-01"],
    ["events", "add", "x", "--topic", "gun_control", "--start", "2026-01-01", "--kind", "sudden"],
], ids=lambda c: " ".join(c[:2]))
def test_sides_that_say_nothing_or_the_same_stop_every_command(
        project: Path, capsys: pytest.CaptureFixture[str], pro: str, anti: str, says: str,
        command: list[str]) -> None:
    """Identical or blank pro/anti were accepted and every stance came out "anti 0.5"."""
    (project / "topics.toml").write_text(SIDES.format(id="odd_one", pro=pro, anti=anti))
    (project / "posts.jsonl").write_text(
        json.dumps({"id": "1", "text": "x", "topic": "odd_one"}) + "\n")
    error = one_error(*run(capsys, *command))
    assert f"{project / 'topics.toml'}: topic 'odd_one': {says}" in error, error
    assert ("write the opposing side as anti" if "same" in says
            else "write what taking that side means") in error, error
    assert not (project / "events.toml").read_text().count('"x"'), "the event was added"


def test_an_unknown_key_of_a_known_section_in_the_environment_is_refused(
        project: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARWATCH_BROKER_BOGUS", "1")
    error = one_error(*run(capsys, "events", "list"))
    assert "$POLARWATCH_BROKER_BOGUS: unknown key 'bogus' in [broker]; valid keys are [" in error
    assert "'bootstrap_servers'" in error and "'retention_mb'" in error, error
    # variables that are not a known section's key work as before
    monkeypatch.delenv("POLARWATCH_BROKER_BOGUS")
    (project / "polarwatch.toml").write_text("")
    for name, value in (("POLARWATCH_DASHBOARD_SNAPSHOT_S", "5"),  # set by `dashboard` for its
                        ("POLARWATCH_DASHBOARD_TOKEN", "t"),  # app, which loads the config
                        ("POLARWATCH_CACHE_DIR", str(project)), ("POLARWATCH_TEST_NO_SKIP", "1"),
                        ("POLARWATCH_EVENTS_FILE", str(project / "events.toml")),
                        ("POLARWATCH_CONFIG", str(project / "polarwatch.toml"))):
        monkeypatch.setenv(name, value)
    rc, err = run(capsys, "events", "list")
    assert rc == 0, err


def _repo_variables() -> set[str]:
    """Every POLARWATCH_* name the repository spells out (code, tests, docs, Makefile, CI),
    except in the config tests, which spell wrong names on purpose."""
    names: set[str] = set()
    for top, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d == ".ci" or not (d.startswith(".") or d == "__pycache__"
                                                          or d.endswith(".egg-info"))]
        for name in files:
            path = Path(top, name)
            if (path.suffix in (".py", ".md", ".toml", ".sh", ".yml", ".yaml", ".j2", "")
                    and not (path.parent == REPO / "tests" / "polarwatch"
                             and name.startswith("test_config"))):
                names.update(re.findall(r"POLARWATCH_[A-Z0-9_]*[A-Z0-9]",
                                        path.read_text(encoding="utf-8", errors="replace")))
    return names


def test_every_variable_the_repository_reads_still_loads() -> None:
    names = _repo_variables()
    assert {"POLARWATCH_DASHBOARD_SNAPSHOT_S", "POLARWATCH_CACHE_DIR",
            "POLARWATCH_TEST_NO_SKIP", "POLARWATCH_BROKER_BOOTSTRAP_SERVERS"} <= names
    assert unknown_env(dict.fromkeys(names, "1"), SECTIONS) is None


def test_an_unknown_forecast_metric_stops_every_command(project: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """`report` wrote a report on "forecast metric bogus", with matplotlib's warnings, rc 0."""
    monkeypatch.setenv("POLARWATCH_FORECAST_METRIC", "bogus")
    error = one_error(*run(capsys, "report", "-o", str(project / "report.html")))
    assert "$POLARWATCH_FORECAST_METRIC: expected one of 'volume', " in error, error
    assert error.endswith("got 'bogus'") and not (project / "report.html").exists()


@pytest.mark.parametrize(("file", "env", "where"), [
    ("[broker]\nembedded = true\n", {"POLARWATCH_BROKER_SECURITY_PROTOCOL": "SSL"},
     "$POLARWATCH_BROKER_SECURITY_PROTOCOL with {file} [broker]: "),
    ("", {"POLARWATCH_BROKER_SECURITY_PROTOCOL": "SSL", "POLARWATCH_BROKER_EMBEDDED": "true"},
     "$POLARWATCH_BROKER_EMBEDDED and $POLARWATCH_BROKER_SECURITY_PROTOCOL: "),
    ('[broker]\nsecurity_protocol = "SSL"\n', {}, "{file} [broker]: "),
    ('[broker]\nembedded = false\nsecurity_protocol = "SASL_SSL"\n',
     {"POLARWATCH_BROKER_SASL_USERNAME": ""},
     "$POLARWATCH_BROKER_SASL_USERNAME with {file} [broker]: security_protocol SASL_SSL needs "
     "sasl_username"),
])
def test_a_rule_over_several_keys_names_the_variables_that_set_them(
        project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        file: str, env: dict[str, str], where: str) -> None:
    """It named the file when the value came from a variable."""
    (project / "polarwatch.toml").write_text(file)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    error = one_error(*run(capsys, "schema"))
    assert f"error: {where.format(file=project / 'polarwatch.toml')}" in error, error
