"""The shipped polarwatch.toml against the config model, and the file's value types.

The file has every key of every section with the code's default and a comment (a secret as a
commented line: it belongs in the environment), so a key added to the model and not to the file
fails here. A TOML string where a boolean or a number is expected stops the load, like a number
where a string is expected; the same text in an environment variable (always a string) is read.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import SecretStr

from polarwatch.config import SECTIONS, Config, load_config
from polarwatch.config_errors import env_var
from polarwatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "polarwatch.toml"


def section_text(text: str, name: str) -> str:
    """The lines of ``[name]`` in the file, up to the next section."""
    found = re.search(rf"^\[{name}\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    assert found, f"no [{name}] in {SHIPPED}"
    return found.group(1)


def secrets(name: str) -> set[str]:
    return {k for k, f in SECTIONS[name].model_fields.items() if f.annotation is SecretStr}


def test_the_shipped_file_has_every_key_with_its_default_and_a_comment() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    shipped = tomllib.loads(text)
    assert set(shipped) == set(SECTIONS)
    for name, model in SECTIONS.items():
        keys, lines = set(shipped[name]), section_text(text, name)
        missing = set(model.model_fields) - secrets(name) - keys
        assert not missing, f"[{name}] keys missing from {SHIPPED}: {sorted(missing)}"
        assert not keys & secrets(name), f"[{name}] a secret is set in the file"
        for key in secrets(name):  # shown, commented out, with where to set it
            assert re.search(rf"^# {key} = .*secret: set {env_var(name, key)} instead$",
                             lines, re.M), f"[{name}] {key}: no commented line"
        for key in keys:
            line = re.search(rf"^{key} = .*$", lines, re.M)
            assert line and re.search(r"\s#\s\S", line.group(0)), f"[{name}] {key}: no comment"
    cfg = load_config(SHIPPED, env={})
    defaults = Config(root=cfg.root, file=cfg.file)
    for name in SECTIONS:
        shipped_values = getattr(cfg, name).model_dump()
        default_values = getattr(defaults, name).model_dump()
        differing = {k: (v, default_values[k]) for k, v in shipped_values.items()
                     if v != default_values[k]}
        assert not differing, f"[{name}] file vs code default: {differing}"


# Every boolean and number key, found from the model so that a new one is checked too.
TYPED = [(name, key, f.annotation) for name, model in SECTIONS.items()
         for key, f in model.model_fields.items() if f.annotation in (bool, int, float)]
TEXT = {bool: ("true", True, "true/false"), int: ("1", 1, "a number"),
        float: ("0.5", 0.5, "a number")}  # values inside every key's bounds


def test_every_boolean_and_number_key_is_found() -> None:
    assert {("broker", "embedded", bool), ("broker", "retention_mb", int),
            ("broker", "retention_hours", float), ("forecast", "alpha", float),
            ("dashboard", "allow_labels", bool)} <= set(TYPED)
    assert len(TYPED) >= 30, TYPED


@pytest.mark.parametrize(("section", "key", "kind"), TYPED)
def test_a_string_in_the_file_is_not_a_boolean_or_a_number(tmp_path: Path, section: str,
                                                           key: str, kind: type) -> None:
    text, value, expected = TEXT[kind]
    path = tmp_path / "pw.toml"
    path.write_text(f'[{section}]\n{key} = "{text}"\n')
    with pytest.raises(ConfigError, match=re.escape(
            f"{path} [{section}] {key}: expected {expected}, got '{text}'")):
        load_config(path, env={})
    path.write_text(f"[{section}]\n{key} = {text}\n")  # unquoted: read
    assert getattr(getattr(load_config(path, env={}), section), key) == value
    path.write_text("")  # the same text from the environment: read
    cfg = load_config(path, env={env_var(section, key): text})
    assert getattr(getattr(cfg, section), key) == value


def test_the_audited_strings_are_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "pw.toml"
    path.write_text('[broker]\nembedded = "yes"\nretention_mb = "5"\nretention_hours = "1.5"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == (
        f"{path} [broker] embedded: expected true/false, got 'yes'; "
        f"{path} [broker] retention_hours: expected a number, got '1.5'; "
        f"{path} [broker] retention_mb: expected a number, got '5'")
    cfg = load_config(path, env={"POLARWATCH_BROKER_EMBEDDED": "false",
                                 "POLARWATCH_BROKER_RETENTION_MB": "5",
                                 "POLARWATCH_BROKER_RETENTION_HOURS": "1.5"})
    assert (cfg.broker.embedded, cfg.broker.retention_mb, cfg.broker.retention_hours) == (
        False, 5, 1.5)


def test_the_file_s_strings_stay_plain_strings() -> None:
    """The file's strings are marked while they are validated; the config holds plain ones."""
    cfg = load_config(SHIPPED, env={})
    assert type(cfg.broker.bootstrap_servers) is str and type(cfg.aggregate.window) is str
    assert type(cfg.broker.security_protocol) is str and type(cfg.extractor.fallback[0]) is str
