"""Secrets stay where they belong: logs, errors and stored labels name a webhook's host, not its
path or query; the processes polarwatch starts do not inherit credentials; a signing secret is
never an argument or echoed."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from forecast.alerts.webhooks import Endpoint, RetryPolicy, WebhookSender, decode_secret
from ingest.broker import EmbeddedBroker, free_port
from polarwatch.config import Topic
from polarwatch.errors import BackendError, ConfigError
from polarwatch.records import Labels
from polarwatch.redact import host_only, scrubbed_env, url_for_log
from scoring.extractors.base import Extractor, PostPair
from scoring.fallback import FallbackExtractor
from tests.forecast.test_webhooks import alert

REPO = Path(__file__).resolve().parents[2]
TOKEN_URL = "https://hooks.example.com/services/T0/B0/s3cr3t-path?token=s3cr3t-query"
CREDENTIALS = {"POLARWATCH_ALERTS_SECRET": "whsec_c2VjcmV0", "POLARWATCH_EXTRACTOR_LLM_API_KEY":
               "sk-s3cr3t", "POLARWATCH_INGEST_MASTODON_TOKEN": "m-s3cr3t",
               "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t", "GITHUB_TOKEN": "ghp_s3cr3t",
               "PGPASSWORD": "pg-s3cr3t", "OPENAI_API_KEY": "sk-s3cr3t2"}


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_urls_are_cut_to_their_host() -> None:
    assert host_only(TOKEN_URL) == "https://hooks.example.com"
    assert url_for_log(TOKEN_URL) == "https://hooks.example.com/…"
    assert url_for_log("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert url_for_log("http://[::1]:9/x") == "http://[::1]:9/…"


def test_credentials_are_not_passed_on() -> None:
    env = {"PATH": "/bin", "HOME": "/root", "POLARWATCH_CONFIG": "/x.toml",
           "POLARWATCH_WAREHOUSE_PATH": "/w.duckdb", **CREDENTIALS}
    assert scrubbed_env(env) == {"PATH": "/bin", "HOME": "/root",
                                 "POLARWATCH_CONFIG": "/x.toml",
                                 "POLARWATCH_WAREHOUSE_PATH": "/w.duckdb"}


def test_the_broker_process_inherits_no_credential(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    broker = EmbeddedBroker(free_port(), tmp_path / "broker")
    broker.start()
    try:
        pid = broker.pid()
        assert pid is not None
        env = environ_of(pid)
    finally:
        broker.stop()
    assert "PATH" in env and not set(CREDENTIALS) & set(env), sorted(set(CREDENTIALS) & set(env))


def test_webhook_logs_and_errors_name_the_host_only(caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook/s3cr3t-path?token=s3cr3t-query"
    policy = RetryPolicy(max_attempts=2, initial=0.01, factor=2.0, max_delay=0.02, timeout=1.0)
    with caplog.at_level(logging.INFO):
        [res] = WebhookSender([Endpoint(dead)], None, policy).send(alert())
    assert not res.delivered and caplog.records
    assert "s3cr3t" not in caplog.text and "127.0.0.1" in caplog.text
    with pytest.raises(ConfigError) as bad_url:
        Endpoint("ftp://hooks.example.com/s3cr3t-path")
    with pytest.raises(ConfigError) as bad_secret:
        decode_secret("s3cr3tvalue-without-prefix")
    assert "s3cr3t" not in str(bad_url.value) and "s3c" not in str(bad_secret.value)
    for url, says in (("http://[::1/s3cr3t", "not a valid URL: Invalid port"),  # a traceback
                      ("http:///s3cr3t", "has no host"),  # was "(invalid URL)" at delivery
                      ("http://hooks.example.com:99999/s3cr3t", "port 99999 is not a port")):
        with pytest.raises(ConfigError, match=says) as bad:
            Endpoint(url)
        assert "s3cr3t" not in str(bad.value)


def test_a_signing_secret_is_never_an_argument(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "polarwatch.cli", "alerts", "test",
                          "http://127.0.0.1:9/x", "--secret", "whsec_c2VjcmV0"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "unrecognized arguments: --secret" in run.stderr
    run = subprocess.run([sys.executable, "-m", "polarwatch.cli", "alerts", "test",
                          "http://127.0.0.1:9/x", "--secret-env", "PW_UNSET_SECRET_VAR"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "--secret-env PW_UNSET_SECRET_VAR: that variable is not set" in run.stderr
    run = subprocess.run([sys.executable, "-m", "polarwatch.cli", "alerts", "test",
                          "http://127.0.0.1:9/x", "--secret-env", "whsec_c2VjcmV0="],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "c2VjcmV0" not in run.stderr, run.stderr


class Failing(Extractor):
    """A backend that fails the way an LLM server does: its error names the server and quotes
    the answer."""

    def __init__(self, topics: Sequence[Topic], name: str) -> None:
        super().__init__(topics)
        self.name = name

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        raise BackendError("http://10.0.0.7:8080/v1?key=s3cr3t answered 500: internal s3cr3t")


def test_a_stored_label_keeps_the_kind_of_failure_not_its_text(
        caplog: pytest.LogCaptureFixture) -> None:
    topics = [Topic(id="t", name="T", pro="for", anti="against")]
    chain = FallbackExtractor(topics, [Failing(topics, "llm"), Failing(topics, "llm2")])
    with caplog.at_level(logging.WARNING):
        [labels] = chain.extract([PostPair(post_id="p", topic="t", text="x")])
    assert labels.backend == "none"
    assert labels.explanation == "every backend failed: llm: BackendError; llm2: BackendError"
    assert "answered 500" in caplog.text  # the operator still sees what happened
