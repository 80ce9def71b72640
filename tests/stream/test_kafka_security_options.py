"""[broker] security settings cross from the driver to the Spark source's Python workers as
options, all but the SASL password, which never becomes an option (options show in query plans
and logs): the workers read it from the environment the job sets before Spark starts."""

from __future__ import annotations

import pytest

from stream.kafka_source import PASSWORD_ENV, security_from_options, spark_security_options

SASL_SSL = {"security_protocol": "SASL_SSL", "ssl_check_hostname": True,
            "ssl_cafile": "/etc/ca.pem", "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": "analyst", "sasl_plain_password": "kafka-do-not-print"}


def test_the_password_is_not_an_option_and_the_workers_get_it_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    options = spark_security_options(SASL_SSL)
    assert "kafka-do-not-print" not in str(options)
    monkeypatch.setenv(PASSWORD_ENV, "kafka-do-not-print")
    spark_lower_cases_them = {k.lower(): v for k, v in options.items()}
    assert security_from_options(spark_lower_cases_them) == SASL_SSL


def test_plaintext_adds_no_option() -> None:
    assert spark_security_options({}) == {}
    assert security_from_options({"bootstrap": "127.0.0.1:9092", "topic": "t"}) == {}


def test_tls_without_sasl_checks_the_host_name() -> None:
    got = security_from_options({k.lower(): v for k, v in spark_security_options(
        {"security_protocol": "SSL", "ssl_check_hostname": True}).items()})
    assert got == {"security_protocol": "SSL", "ssl_check_hostname": True}
