"""What a mistake in the configuration reads like: pydantic's errors as one line naming the key,
the file or the variable, what was expected and what was found (:func:`describe`), and the
environment variables that are refused: renamed ones (``RENAMED_ENV``) and unknown keys of a
known section (:func:`unknown_env`), which would hide the typo that the file refuses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from polarwatch.fields import DURATION_HELP

ENV_PREFIX = "POLARWATCH_"
Sections = Mapping[str, type[BaseModel]]

# Alternative names that used to work for the same setting: set in the environment, they stop
# the load with an error naming the one name that is read now.
RENAMED_ENV = {
    "POLARWATCH_WEBHOOK_SECRET": "POLARWATCH_ALERTS_SECRET",
    "POLARWATCH_LLM_BASE_URL": "POLARWATCH_EXTRACTOR_LLM_BASE_URL",
    "POLARWATCH_LLM_MODEL": "POLARWATCH_EXTRACTOR_LLM_MODEL",
    "POLARWATCH_LLM_API_KEY": "POLARWATCH_EXTRACTOR_LLM_API_KEY",
    "POLARWATCH_MASTODON_TOKEN": "POLARWATCH_INGEST_MASTODON_TOKEN",
    "POLARWATCH_CACHE": "POLARWATCH_CACHE_DIR",
    "POLARWATCH_TRANSFORMERS_MODEL": "POLARWATCH_EXTRACTOR_TRANSFORMERS_MODEL",
    "POLARWATCH_TRANSFORMERS_GGUF_FILE": "POLARWATCH_EXTRACTOR_TRANSFORMERS_GGUF_FILE",
}
# Names like POLARWATCH_<SECTION>_<KEY> that are not keys: what `polarwatch dashboard` gives its
# app (dashboard/snapshot.py, dashboard/safety.py). Any other unknown key stops the load.
NOT_SETTINGS_ENV = frozenset({"POLARWATCH_DASHBOARD_SNAPSHOT_S", "POLARWATCH_DASHBOARD_TOKEN"})


def env_var(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


EXPECTED = {"int_parsing": "a number", "int_from_float": "a number", "int_type": "a number",
             "int_parsing_size": "a number",
             "float_parsing": "a number", "float_type": "a number", "number": "a number",
             "finite_number": "a finite number",
             "bool_parsing": "true/false", "bool_type": "true/false", "boolean": "true/false",
             "string_type": "a string", "list_type": "a list", "duration": DURATION_HELP,
             "greater_than_equal": "a number >= {ge}", "greater_than": "a number > {gt}",
             "less_than_equal": "a number <= {le}", "less_than": "a number < {lt}",
             "literal_error": "one of {expected}"}


def describe(errors: list[Any], source: str, from_env: set[tuple[str, str]],
             sections: Sections) -> str:
    """pydantic's errors as one line: where (variable, or file [section] key), what was
    expected, what was found (never a secret's value)."""
    unknown: dict[str, list[str]] = {}
    problems: list[str] = []
    for e in errors:
        section, key = str(e["loc"][0]), str(e["loc"][1]) if len(e["loc"]) > 1 else ""
        if e["type"] == "extra_forbidden":
            unknown.setdefault(section, []).append(key)
            continue
        if not key:  # a rule over the section's keys (its input may hold a secret: not shown)
            text = str(e["ctx"]["error"])
            problems.append(f"{rule_where(section, text, source, from_env, sections)}: {text}")
            continue
        where = (f"${env_var(section, key)}" if (section, key) in from_env
                 else f"{source} [{section}] {key}")
        field = sections[section].model_fields.get(key)
        secret = field is not None and field.annotation is SecretStr
        got = f"a {type(e['input']).__name__} (not shown: a secret)" if secret else repr(e["input"])
        expected = EXPECTED.get(e["type"], e["msg"]).format(**e.get("ctx", {}))
        problems.append(f"{where}: expected {expected}, got {got}")
    return "; ".join([f"{source}: unknown key(s) {sorted(keys)} in [{section}]; valid keys are "
                      f"{sorted(sections[section].model_fields)}"
                      for section, keys in unknown.items()] + problems)


def rule_where(section: str, text: str, source: str, from_env: set[tuple[str, str]],
               sections: Sections) -> str:
    """Where a rule over several keys of ``[section]`` was broken: the variables that set the
    keys its message names, with the file (or the defaults) when the others come from there."""
    named = [k for k in sections[section].model_fields if re.search(rf"\b{k}\b", text)]
    env = [f"${env_var(section, k)}" for k in named if (section, k) in from_env]
    if not env:
        return f"{source} [{section}]"
    rest = "" if len(env) == len(named) else (
        " with the defaults" if source == "<defaults>" else f" with {source} [{section}]")
    return " and ".join(env) + rest


def unknown_env(env: Mapping[str, str], sections: Sections) -> str | None:
    """Variables of a known section with no such key, as one message (None: there are none):
    ignored, they would hide the typo that the file refuses."""
    problems = []
    for name in sorted(env):
        section, _, key = name.upper().removeprefix(ENV_PREFIX).lower().partition("_")
        if (name.upper().startswith(ENV_PREFIX) and name.upper() not in NOT_SETTINGS_ENV
                and section in sections and key and key not in sections[section].model_fields):
            problems.append(f"${name}: unknown key {key!r} in [{section}]; valid keys are "
                            f"{sorted(sections[section].model_fields)}")
    return "; ".join(problems) + " (fix or unset the variable)" if problems else None


def renamed_env(env: Mapping[str, str]) -> str | None:
    """The renamed variables set in `env`, as one message (None: there are none)."""
    renamed = sorted(old for old in RENAMED_ENV if old in env)
    if not renamed:
        return None
    return ("renamed environment variable(s): " + ", ".join(
        f"${old} is now ${RENAMED_ENV[old]}" for old in renamed)
        + "; set the new name and unset the old one")
