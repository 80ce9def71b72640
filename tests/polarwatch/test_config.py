"""Configuration: defaults, the shipped files, env overrides, and errors that say what is wrong."""

from __future__ import annotations

import re
from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import get_args

import pytest

from polarwatch.config import (
    SECTIONS,
    Config,
    ExtractorConfig,
    SparkConfig,
    TopicsConfig,
    load_config,
    load_topics,
)
from polarwatch.config_errors import RENAMED_ENV
from polarwatch.errors import ConfigError
from polarwatch.fields import BACKENDS, FORECAST_METRICS, CascadeTo, parse_duration
from polarwatch.tables import TopicWindow

REPO = Path(__file__).resolve().parents[2]

GOOD_TOPIC = """
[[topic]]
id = "gun_control"
name = "Gun control"
pro = "stricter laws"
anti = "gun rights"
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ defaults


def test_defaults_without_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./polarwatch.toml here
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    cfg = load_config(env={})
    assert cfg.spark == SparkConfig()
    assert cfg.topics == TopicsConfig()
    assert cfg.extractor.backend == "learned" and cfg.extractor.fallback == ["lexicon"]
    assert cfg.broker.bootstrap_servers == "127.0.0.1:19092" and cfg.broker.embedded is True
    assert cfg.aggregate.extreme_threshold == 7.0
    assert cfg.alerts.webhooks == []
    assert cfg.root == tmp_path
    assert cfg.warehouse_path == tmp_path / ".polarwatch" / "polarwatch.duckdb"


def test_default_config_path_picks_up_local_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "polarwatch.toml", "[spark]\nmaster = \"local[3]\"\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("POLARWATCH_CONFIG", raising=False)
    assert load_config(env={}).spark.master == "local[3]"


def test_an_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "pw.toml", ""), env={})
    assert cfg == Config(root=tmp_path, file=(tmp_path / "pw.toml").resolve())


# ------------------------------------------------------------------------------ shipped files


def test_shipped_polarwatch_toml_loads() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={})
    assert cfg.root == REPO
    assert cfg.topics.posts == "polarwatch.posts"
    assert cfg.topics.dead_letter == "polarwatch.dead_letter"
    assert cfg.topics.partitions == 2
    assert cfg.spark.master == "local[2]"
    assert isinstance(cfg.spark.trigger_seconds, float)
    assert cfg.extractor == ExtractorConfig(backend="learned", fallback=["lexicon"],
                                            topics_file="topics.toml")
    assert cfg.forecast.horizon == 12


def test_the_shipped_file_says_what_the_code_defaults_are() -> None:
    """Every key set in polarwatch.toml holds the code's default: a user who deletes a line, or
    runs without the file, gets what the file showed them."""
    cfg = load_config(REPO / "polarwatch.toml", env={})
    defaults = Config(root=cfg.root, file=cfg.file)
    for name in SECTIONS:
        shipped, default = getattr(cfg, name).model_dump(), getattr(defaults, name).model_dump()
        differing = {k: (shipped[k], default[k]) for k in shipped if shipped[k] != default[k]}
        assert not differing, f"[{name}] file vs code default: {differing}"


def test_the_backend_names_are_the_registry_s() -> None:
    from scoring.extractors.registry import available_backends

    assert sorted(BACKENDS) == available_backends()
    assert set(get_args(CascadeTo)) == {"", *BACKENDS}


def test_the_forecast_metrics_are_the_series_numeric_window_columns() -> None:
    """The spine spells the metric names ([forecast] metric is checked at load); forecast/
    uses that tuple, and each is a number column of ``topic_windows``."""
    from forecast.series import METRICS, SUPPORT

    columns = {f.name: f.type for f in fields(TopicWindow)}
    assert METRICS is FORECAST_METRICS and set(SUPPORT) == set(FORECAST_METRICS)
    assert {columns[m] for m in FORECAST_METRICS} <= {"int", "float | None"}


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("broker storage", '"S3"', "expected one of 'memory' or 's3', got 'S3'"),
    ("extractor backend", '"learnd"', "expected one of 'lexicon', 'learned', 'transformers' or "
                                      "'llm', got 'learnd'"),
    ("extractor cascade_to", '"gpt"', "expected one of '', 'lexicon', 'learned', 'transformers' "
                                      "or 'llm', got 'gpt'"),
    ("extractor llm_response_format", '"json"', "expected one of '', 'json_object_schema', "
                                                "'json_schema' or 'none', got 'json'"),
    ("alerts format", '"slack"', "expected one of 'standard' or 'alertmanager', got 'slack'"),
    ("forecast metric", '"bogus"', "expected one of 'volume', 'n_interactions', 'mean_score', "
                                   "'n_conversations', 'extreme_share', 'hostility_share', "
                                   "'pro_share' or 'anti_share', got 'bogus'"),
    ("spark max_records_per_trigger", "0", "expected a number >= 1, got 0"),
    ("spark trigger_seconds", "0", "expected a number > 0, got 0"),
    ("extractor cascade_threshold", "-0.5", "expected a number >= 0, got -0.5"),
    ("forecast alpha", "1", "expected a number < 1, got 1"),
    ("alerts max_attempts", "0", "expected a number >= 1, got 0"),
])
def test_enumerated_and_bounded_keys_are_checked_at_load(tmp_path: Path, key: str, value: str,
                                                         expected: str) -> None:
    section, name = key.split()
    path = write(tmp_path / "pw.toml", f"[{section}]\n{name} = {value}\n")
    with pytest.raises(ConfigError, match=re.escape(f"[{section}] {name}: {expected}")):
        load_config(path, env={})


def test_shipped_topics_toml_loads() -> None:
    topics = load_config(REPO / "polarwatch.toml", env={}).load_topics()
    assert [t.id for t in topics] == ["gun_control", "climate_change"]
    for t in topics:
        assert t.name and t.pro and t.anti
        assert t.keywords and t.pro_terms and t.anti_terms
        assert all(isinstance(k, str) for k in t.keywords)
        assert isinstance(t.keywords, tuple)  # hashable, immutable
    gun = topics[0]
    assert "gun control" in gun.keywords
    assert "shall not be infringed" in gun.anti_terms
    assert "background checks" in gun.pro_terms


# ------------------------------------------------------------------------------ env overrides


def test_env_overrides_and_coercion() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_SPARK_MASTER": "local[4]",
        "POLARWATCH_TOPICS_PARTITIONS": "4",
        "POLARWATCH_EXTRACTOR_FALLBACK": "a, b,",
        "POLARWATCH_BROKER_EMBEDDED": "false",
        "POLARWATCH_SPARK_TRIGGER_SECONDS": "0.5",
        "POLARWATCH_ALERTS_WEBHOOKS": "",
    })
    assert cfg.spark.master == "local[4]"
    assert cfg.topics.partitions == 4 and isinstance(cfg.topics.partitions, int)
    assert cfg.extractor.fallback == ["a", "b"]
    assert cfg.broker.embedded is False
    assert cfg.spark.trigger_seconds == 0.5
    assert cfg.alerts.webhooks == []
    # untouched keys still come from the file
    assert cfg.topics.posts == "polarwatch.posts"


def test_env_wins_over_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[topics]\npartitions = 3\n")
    assert load_config(path, env={}).topics.partitions == 3
    assert load_config(path, env={"POLARWATCH_TOPICS_PARTITIONS": "8"}).topics.partitions == 8


def test_unrelated_env_vars_are_ignored() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={"POLARWATCH_NOPE_THING": "x", "HOME": "/"})
    assert cfg == load_config(REPO / "polarwatch.toml", env={})


@pytest.mark.parametrize(("var", "value"), [
    ("POLARWATCH_TOPICS_PARTITIONS", "four"),
    ("POLARWATCH_SPARK_TRIGGER_SECONDS", "fast"),
    ("POLARWATCH_BROKER_EMBEDDED", "maybe"),
])
def test_bad_env_value_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "polarwatch.toml", env={var: value})
    assert f"${var}" in str(info.value) and repr(value) in str(info.value)


# ------------------------------------------------------------------------------ file errors


def test_unknown_section_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[sparkk]\nmaster = \"local\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    msg = str(info.value)
    assert "sparkk" in msg and str(path) in msg
    for section in ("broker", "topics", "spark", "warehouse", "extractor", "aggregate",
                    "forecast", "alerts"):
        assert section in msg
    listed = msg.split("valid sections are", 1)[1]
    assert "root" not in listed  # an internal field, not a section


def test_unknown_key_lists_the_valid_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[spark]\nmasterr = \"local\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    msg = str(info.value)
    assert "masterr" in msg and "[spark]" in msg
    for key in ("master", "checkpoint_dir", "trigger_seconds", "max_records_per_trigger"):
        assert key in msg


def test_wrong_type_in_file_names_file_section_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[topics]\npartitions = \"two\"\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(path) in str(info.value) and "[topics] partitions" in str(info.value)


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "spark = 3\n")
    with pytest.raises(ConfigError, match=r"\[spark\] must be a table"):
        load_config(path, env={})


def test_list_key_rejects_a_scalar_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[alerts]\nwebhooks = 5\n")
    with pytest.raises(ConfigError, match="expected a list"):
        load_config(path, env={})


def test_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[spark\nmaster = \n")
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        load_config(path, env={})
    assert str(path) in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(path, env={})
    assert str(path) in str(info.value) and "POLARWATCH_CONFIG" in str(info.value)


# ------------------------------------------------------------------------------ topics file


def test_topics_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_topics(tmp_path / "topics.toml")


def test_topics_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_topics(write(tmp_path / "t.toml", "[[topic]\nid = 1"))


def test_topics_file_without_topics(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \[\[topic\]\] tables"):
        load_topics(write(tmp_path / "t.toml", "# nothing here\n"))


def test_topics_minimal_topic_loads(tmp_path: Path) -> None:
    (topic,) = load_topics(write(tmp_path / "t.toml", GOOD_TOPIC))
    assert topic.id == "gun_control" and topic.keywords == () and topic.pro_terms == ()


def test_topics_missing_pro(tmp_path: Path) -> None:
    text = GOOD_TOPIC.replace('pro = "stricter laws"\n', "")
    with pytest.raises(ConfigError, match="topic #1 is missing pro"):
        load_topics(write(tmp_path / "t.toml", text))


def test_topics_missing_several_keys_lists_them(tmp_path: Path) -> None:
    text = GOOD_TOPIC + '\n[[topic]]\nid = "other"\n'
    with pytest.raises(ConfigError, match="topic #2 is missing name, pro, anti"):
        load_topics(write(tmp_path / "t.toml", text))


def test_topics_duplicate_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'gun_control' is defined twice"):
        load_topics(write(tmp_path / "t.toml", GOOD_TOPIC + GOOD_TOPIC))


@pytest.mark.parametrize("bad_id", ["Gun-Control", "gun control", "gün"])
def test_topics_bad_id_chars(tmp_path: Path, bad_id: str) -> None:
    text = GOOD_TOPIC.replace('id = "gun_control"', f'id = "{bad_id}"')
    with pytest.raises(ConfigError, match="lowercase letters, digits and underscores"):
        load_topics(write(tmp_path / "t.toml", text))


def test_topics_unknown_key(tmp_path: Path) -> None:
    text = GOOD_TOPIC + 'hashtags = ["#x"]\n'
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['hashtags'\]"):
        load_topics(write(tmp_path / "t.toml", text))


# ------------------------------------------------------------------------------ paths


def test_relative_paths_resolve_against_the_config_dir(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    write(conf_dir / "my-topics.toml", GOOD_TOPIC)
    path = write(conf_dir / "pw.toml", "\n".join([
        "[warehouse]", 'path = "data/pw.duckdb"',
        "[spark]", 'checkpoint_dir = "ckpt"',
        "[extractor]", 'topics_file = "my-topics.toml"', ""]))
    cfg = load_config(Path("..") / "conf" / "pw.toml", env={})  # relative to cwd, on purpose
    assert cfg.root == conf_dir
    assert cfg.warehouse_path == conf_dir / "data" / "pw.duckdb"
    assert cfg.checkpoint_dir == conf_dir / "ckpt"
    assert [t.id for t in cfg.load_topics()] == ["gun_control"]
    # absolute paths are kept as they are
    absolute = tmp_path / "abs.duckdb"
    cfg = load_config(path, env={"POLARWATCH_WAREHOUSE_PATH": str(absolute)})
    assert cfg.warehouse_path == absolute
    # relative paths given in the environment resolve against the config dir too
    cfg = load_config(path, env={"POLARWATCH_WAREHOUSE_PATH": "env.duckdb"})
    assert cfg.warehouse_path == conf_dir / "env.duckdb"


# ------------------------------------------------------------------------------ wrong types


def test_int_key_rejects_a_fraction_instead_of_truncating(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "ok.toml", "[topics]\npartitions = 3.0\n"),
                       env={}).topics.partitions == 3
    with pytest.raises(ConfigError, match=r"\[topics\] partitions: expected a number, got 2.5"):
        load_config(write(tmp_path / "pw.toml", "[topics]\npartitions = 2.5\n"), env={})


def test_topics_id_must_be_a_string(tmp_path: Path) -> None:
    text = GOOD_TOPIC.replace('id = "gun_control"', "id = 5")
    with pytest.raises(ConfigError, match="topic #1: id must be a string"):
        load_topics(write(tmp_path / "t.toml", text))


def test_topics_id_with_trailing_newline_is_rejected(tmp_path: Path) -> None:
    text = GOOD_TOPIC.replace('id = "gun_control"', 'id = "gun_control\\n"')
    with pytest.raises(ConfigError, match="lowercase letters"):
        load_topics(write(tmp_path / "t.toml", text))


def test_topics_entry_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="topic #1 must be a"):
        load_topics(write(tmp_path / "t.toml", "topic = [1]\n"))


@pytest.mark.parametrize("value", ['"gun control"', '["ok", 3]'])
def test_topics_terms_must_be_a_list_of_strings(tmp_path: Path, value: str) -> None:
    # a bare string would otherwise become one stance cue per letter
    with pytest.raises(ConfigError, match="pro_terms must be a list of strings"):
        load_topics(write(tmp_path / "t.toml", GOOD_TOPIC + f"pro_terms = {value}\n"))



@pytest.mark.parametrize("key", ["keywords", "pro_terms", "anti_terms"])
def test_topics_terms_may_not_be_empty_strings(tmp_path: Path, key: str) -> None:
    """An empty keyword or cue ("" or "  ") was dropped unseen: a topic whose only keyword
    was blank routed no post and said nothing. Now the file, topic, key and items are named."""
    path = write(tmp_path / "t.toml", GOOD_TOPIC + f'{key} = ["guns", "", "  "]\n')
    with pytest.raises(ConfigError) as err:
        load_topics(path)
    assert str(err.value) == (f"{path}: topic 'gun_control': {key} holds 2 empty string(s) "
                              f"(item 2, 3 of 3); remove them or write the word meant")


# ------------------------------------------------------------------------------ secrets

SECRETS = {"POLARWATCH_ALERTS_SECRET": "whsec_c2VjcmV0LWtleQ==",
           "POLARWATCH_EXTRACTOR_LLM_API_KEY": "sk-do-not-print",
           "POLARWATCH_INGEST_MASTODON_TOKEN": "mastodon-do-not-print"}


def test_secrets_never_show_in_repr_str_or_dump() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env=SECRETS)
    shown = " ".join([repr(cfg), str(cfg), repr(cfg.alerts), str(cfg.extractor),
                      str(cfg.model_dump()), cfg.model_dump_json(), f"{cfg.ingest}"])
    for value in SECRETS.values():
        assert value not in shown
    assert "**********" in shown
    # the readers get the value on purpose
    assert cfg.alerts.secret.get_secret_value() == SECRETS["POLARWATCH_ALERTS_SECRET"]
    assert cfg.ingest.mastodon_token.get_secret_value() == "mastodon-do-not-print"
    assert cfg.extractor.backend_options()["llm"]["api_key"] == "sk-do-not-print"


def test_a_bad_secret_is_not_echoed_in_the_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "[alerts]\nsecret = 123456789\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    msg = str(info.value)
    assert "[alerts] secret" in msg and "123456789" not in msg and "not shown" in msg


def test_the_webhook_endpoints_get_the_secret_and_hide_it() -> None:
    from forecast.alerts.delivery import endpoints_for  # the reader of [alerts] secret

    cfg = load_config(REPO / "polarwatch.toml",
                      env={**SECRETS, "POLARWATCH_ALERTS_WEBHOOKS": "http://127.0.0.1:9/a"})
    [endpoint] = endpoints_for(cfg)
    assert endpoint.secret == SECRETS["POLARWATCH_ALERTS_SECRET"]
    assert SECRETS["POLARWATCH_ALERTS_SECRET"] not in repr(endpoint)


def test_unset_secrets_are_empty_and_the_llm_gets_no_key() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={})
    # the learned backend's trained topic heads directory is the only option set by default
    assert cfg.extractor.backend_options() == {"learned": {"topic_heads_dir": ".polarwatch/heads"}}
    assert cfg.alerts.secret.get_secret_value() == ""
    assert "api_key" not in cfg.extractor.backend_options().get("llm", {})


# ------------------------------------------------------------------------------ one name each


def test_each_key_is_read_from_its_one_variable() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_EXTRACTOR_LLM_BASE_URL": "http://llm:8080/v1",
        "POLARWATCH_EXTRACTOR_LLM_MODEL": "qwen",
        "POLARWATCH_EXTRACTOR_TRANSFORMERS_MODEL": "/models/smol.gguf",
        "POLARWATCH_BROKER_RETENTION_HOURS": "48",
        "POLARWATCH_BROKER_RETENTION_MB": "0",
        "polarwatch_spark_master": "local[1]",  # names are case-insensitive
    })
    assert cfg.extractor.backend_options()["llm"] == {"base_url": "http://llm:8080/v1",
                                                     "model": "qwen"}
    assert cfg.extractor.backend_options()["transformers"] == {"model_path": "/models/smol.gguf"}
    assert cfg.broker.retention_hours == 48.0 and cfg.broker.retention_mb == 0
    assert cfg.spark.master == "local[1]"


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED_ENV.items()))
def test_a_removed_alternative_name_is_refused_with_the_new_one(old: str, new: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "polarwatch.toml", env={old: "old-value", new: "new-value"})
    assert f"${old} is now ${new}" in str(info.value) and "unset the old" in str(info.value)
    assert "old-value" not in str(info.value)  # it may be a secret


def test_the_file_path_variable_is_not_a_setting(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", "")
    cfg = load_config(path, env={"POLARWATCH_CONFIG": str(path),
                                 "POLARWATCH_EVENTS_FILE": "e.toml", "POLARWATCH_ROOT": "/"})
    assert cfg == Config(root=tmp_path, file=path.resolve())


def test_an_unknown_key_in_the_environment_is_refused_like_one_in_the_file() -> None:
    """It was ignored: a typo in a variable's name silently left the setting as it was."""
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "polarwatch.toml", env={"POLARWATCH_SPARK_MASTERR": "local[9]"})
    assert str(info.value) == (
        "$POLARWATCH_SPARK_MASTERR: unknown key 'masterr' in [spark]; valid keys are "
        "['checkpoint_dir', 'master', 'max_records_per_trigger', 'trigger_seconds'] (fix or "
        "unset the variable)")


def test_retention_defaults_and_negative_values() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={})
    assert (cfg.broker.retention_hours, cfg.broker.retention_mb) == (168.0, 1024)
    with pytest.raises(ConfigError, match=r"\$POLARWATCH_BROKER_RETENTION_MB: expected a number "
                                          r">= 0, got '-1'"):
        load_config(REPO / "polarwatch.toml", env={"POLARWATCH_BROKER_RETENTION_MB": "-1"})


# ------------------------------------------------------------------------------ durations


@pytest.mark.parametrize(("text", "expected"), [
    ("30m", timedelta(minutes=30)), ("1 hour", timedelta(hours=1)),
    ("5 minutes", timedelta(minutes=5)), ("1.5d", timedelta(hours=36)),
    ("2w", timedelta(days=14)), ("45 sec", timedelta(seconds=45)),
    ("10 S", timedelta(seconds=10)), (" 1h ", timedelta(hours=1)),
    ("3  days", timedelta(days=3)), ("1 hr", timedelta(hours=1)),
])
def test_durations_in_both_spellings(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "", "0m", "0 seconds", "-1h", "1 fortnight", "h",
                                  "1.h", "1 h our", "1h30m", "1,5h", "hourly",
                                  "9999999999999w", "9" * 400 + "s"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    msg = str(info.value)
    assert repr(text) in msg and "30m" in msg and "'1 hour'" in msg and "w/week(s)" in msg


def test_durations_are_checked_and_spelled_out_at_load(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "ok.toml", '[aggregate]\nwindow = "90m"\n'),
                      env={"POLARWATCH_AGGREGATE_WATERMARK": "1.5d"})
    assert cfg.aggregate.window == "90 minutes" and cfg.aggregate.watermark == "36 hours"
    assert cfg.aggregate.orphan_horizon == "1 day"
    assert parse_duration(cfg.aggregate.window) == timedelta(minutes=90)
    path = write(tmp_path / "pw.toml", '[aggregate]\nwindow = "hourly"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert f"{path} [aggregate] window: expected a positive duration like 30m" in str(info.value)
    with pytest.raises(ConfigError, match=r"^\$POLARWATCH_AGGREGATE_ORPHAN_HORIZON: .*'0 day'"):
        load_config(path, env={"POLARWATCH_AGGREGATE_WINDOW": "1h",
                               "POLARWATCH_AGGREGATE_ORPHAN_HORIZON": "0 day"})


# ------------------------------------------------------------------------------ error messages


def test_errors_are_one_line_and_list_every_problem(tmp_path: Path) -> None:
    path = write(tmp_path / "pw.toml", '[topics]\npartitions = "two"\n[spark]\nmasterr = 1\n'
                                       '[aggregate]\nwindow = "soon"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"POLARWATCH_BROKER_EMBEDDED": "maybe"})
    msg = str(info.value)
    assert "\n" not in msg and "pydantic" not in msg and "validation error" not in msg
    assert f"{path}: unknown key(s) ['masterr'] in [spark]" in msg
    assert f"{path} [topics] partitions: expected a number, got 'two'" in msg
    assert f"{path} [aggregate] window: expected a positive duration" in msg
    assert "$POLARWATCH_BROKER_EMBEDDED: expected true/false, got 'maybe'" in msg


def test_a_boolean_is_not_a_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[spark\] trigger_seconds: expected a number, got True"):
        load_config(write(tmp_path / "pw.toml", "[spark]\ntrigger_seconds = true\n"), env={})


def test_children_get_the_config_file_the_user_named(tmp_path: Path) -> None:
    """`polarwatch --config staging.toml dashboard` started the app and the pruner with the
    project's polarwatch.toml: child_env named the root's file, not the one loaded."""
    from dashboard.serve import app_env
    from polarwatch.config import CONFIG_ENV

    (tmp_path / "polarwatch.toml").write_text("[warehouse]\npath = 'prod.duckdb'\n")
    staging = tmp_path / "staging.toml"
    staging.write_text("[warehouse]\npath = 'staging.duckdb'\n")
    cfg = load_config(staging, env={})
    assert cfg.child_env({})[CONFIG_ENV] == str(staging.resolve())
    # --config wins over a $POLARWATCH_CONFIG the parent was started with
    assert cfg.child_env({CONFIG_ENV: str(tmp_path / "polarwatch.toml")})[CONFIG_ENV] == str(
        staging.resolve())
    assert app_env(cfg, {}, base={})[CONFIG_ENV] == str(staging.resolve())
    child = load_config(cfg.child_env({})[CONFIG_ENV], env={})
    assert child.warehouse_path.name == "staging.duckdb"


# ------------------------------------------------------------------------------ [broker] security


def test_a_secured_kafka_gets_every_setting_and_the_password_stays_hidden() -> None:
    cfg = load_config(REPO / "polarwatch.toml", env={
        "POLARWATCH_BROKER_EMBEDDED": "false", "POLARWATCH_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
        "POLARWATCH_BROKER_SASL_MECHANISM": "SCRAM-SHA-512",
        "POLARWATCH_BROKER_SASL_USERNAME": "analyst",
        "POLARWATCH_BROKER_SASL_PASSWORD": "kafka-do-not-print",
        "POLARWATCH_BROKER_SSL_CAFILE": "certs/ca.pem"})
    assert cfg.kafka_options() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True,
        "ssl_cafile": str(REPO / "certs" / "ca.pem"), "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "analyst", "sasl_plain_password": "kafka-do-not-print"}
    assert "kafka-do-not-print" not in repr(cfg) + cfg.model_dump_json()
    assert load_config(REPO / "polarwatch.toml", env={}).kafka_options() == {}


@pytest.mark.parametrize(("env", "says"), [
    ({"POLARWATCH_BROKER_SECURITY_PROTOCOL": "SSL"}, "embedded broker speaks PLAINTEXT only"),
    ({"POLARWATCH_BROKER_EMBEDDED": "false", "POLARWATCH_BROKER_SECURITY_PROTOCOL": "SASL_SSL",
      "POLARWATCH_BROKER_SASL_PASSWORD": "kafka-do-not-print"}, "needs sasl_username"),
    ({"POLARWATCH_BROKER_SECURITY_PROTOCOL": "TLS"}, "SASL_SSL"),
])
def test_security_mistakes_say_what_to_set(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "polarwatch.toml", env=env)
    assert says in str(info.value) and "kafka-do-not-print" not in str(info.value)
