"""Webhook URLs: the scheme in any case (RFC 3986), a port urllib cannot read refused rather than
delivered and logged as "(invalid URL)", and every [alerts] webhooks entry checked before
`forecast` (or `report --forecast`) does any work, against a real receiver and warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecast.alerts.webhooks import Endpoint, WebhookSender, sample_alert
from polarwatch.cli import main
from polarwatch.errors import ConfigError
from polarwatch.redact import url_for_log
from polarwatch.warehouse import connect, init_schema, scalar
from tests.forecast.test_alerting import N, series
from tests.forecast.test_forecast import seed, window_rows
from tests.forecast.test_webhooks import SECRET, Receiver

# httpx sends these (to port 19719, or 80 for " 80") while urllib, which the logs use, cannot
# read their port
UNREADABLE_PORTS = ["http://127.0.0.1:+19719/h", "http://h: 80/x", "http://h:\u0663\u0663/x",
                    "http://h:1_000/x"]


@pytest.mark.parametrize("scheme", ["HTTP", "Http", "hTtP"])
def test_an_upper_case_scheme_is_delivered(receiver: Receiver, scheme: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    url = receiver.url.replace("http", scheme, 1)
    [result] = WebhookSender([Endpoint(url, secret=SECRET)], None).send(sample_alert())
    assert result.delivered and result.status == 200
    assert [r["verified"] for r in receiver.requests] == [True]
    assert "(invalid URL)" not in caplog.text


def test_an_upper_case_https_scheme_is_accepted() -> None:
    assert Endpoint("HTTPS://hooks.example.org/T0K3N").url == "HTTPS://hooks.example.org/T0K3N"


@pytest.mark.parametrize("url", UNREADABLE_PORTS)
def test_a_port_that_is_not_plain_digits_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="port that is not plain digits .*; write it as "
                                          "1-65535 in the digits 0-9") as info:
        Endpoint(url)
    assert "/h" not in str(info.value) and "/x" not in str(info.value)  # no path shown


@pytest.mark.parametrize("url", ["http://exa mple.com/T0K3N", "http://hooks,example.org/x",
                                 'http://"hooks".example.org/x'])
def test_a_host_no_host_name_can_have_is_refused(url: str) -> None:
    """A space in the host was accepted, then every attempt failed to resolve it (the audit)."""
    with pytest.raises(ConfigError, match="host holds a character no host name has") as info:
        Endpoint(url)
    assert "T0K3N" not in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:19719/h", "HTTPS://[::1]:8443/x",
                                 "http://u:p@hooks.example.org/x?t=1", "http://h:0080/x"])
def test_an_accepted_url_is_named_in_the_logs(url: str) -> None:
    Endpoint(url)
    assert url_for_log(url) != "(invalid URL)"


def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, webhooks: str) -> Path:
    path = tmp_path / "pw.duckdb"
    init_schema(path)
    seed(path, window_rows("guns", series(N)))
    monkeypatch.chdir(tmp_path)
    for var in ("POLARWATCH_CONFIG", "POLARWATCH_ALERTS_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POLARWATCH_WAREHOUSE_PATH", str(path))
    monkeypatch.setenv("POLARWATCH_EVENTS_FILE", str(tmp_path / "events.toml"))
    monkeypatch.setenv("POLARWATCH_ALERTS_WEBHOOKS", webhooks)
    return path


def forecast_rows(path: Path) -> int:
    with connect(path, read_only=True) as con:
        return int(scalar(con, "SELECT count(*) FROM forecasts"))


@pytest.mark.parametrize(("bad", "says"), [
    ("ftp://hooks.example.org/T0K3N", "must start with http:// or https://"),
    ("http://127.0.0.1:+19719/T0K3N", "port that is not plain digits"),
])
@pytest.mark.parametrize("argv", [["forecast"], ["report", "--forecast", "-o", "r.html"]])
def test_a_bad_webhook_entry_stops_forecast_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        receiver: Receiver, bad: str, says: str, argv: list[str]) -> None:
    path = seeded(tmp_path, monkeypatch, f"{receiver.url},{bad}")
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith("polarwatch: error: [alerts] webhooks entry 2 of 2: ") and says in err
    assert "T0K3N" not in err  # the URL is not shown: it may carry a token
    assert forecast_rows(path) == 0 and receiver.requests == []
    assert not (tmp_path / "r.html").exists()
