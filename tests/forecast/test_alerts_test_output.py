"""`polarwatch alerts test` against a real receiver: what it says goes to stderr, like every
command's notes (docs/cli.md: stdout carries only data); it printed both lines on stdout."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarwatch.cli import main
from tests.forecast.test_webhooks import SECRET, Receiver


@pytest.fixture()
def receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    for name in [n for n in os.environ if n.upper().startswith("POLARWATCH_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no polarwatch.toml: the defaults
    r = Receiver()
    yield r
    r.close()


def test_a_delivered_sample_is_reported_on_stderr(receiver: Receiver,
                                                  capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_TEST_HOOK_SECRET", SECRET)
    rc = main(["alerts", "test", receiver.url, "--secret-env", "PW_TEST_HOOK_SECRET",
               "--no-log"])
    out, err = capsys.readouterr()
    assert rc == 0 and out == "", (out, err)
    assert "polarwatch alerts: delivered to http://127.0.0.1:" in err
    assert "after 1 attempt(s), last status 200" in err
    assert [r["verified"] for r in receiver.requests] == [True]


def test_an_unsigned_sample_says_so_on_stderr(receiver: Receiver,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["alerts", "test", receiver.url, "--no-log"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "", (out, err)  # the receiver refuses an unsigned request: 401
    assert "polarwatch alerts: no --secret-env and no [alerts] secret " in err
    assert "sending unsigned" in err and "NOT delivered" in err and "last status 401" in err
    assert [r["verified"] for r in receiver.requests] == [False]


def test_any_number_of_attempts_works(receiver: Receiver, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """--attempts 1026 and more stopped with OverflowError: the backoff computed
    initial * factor ** k before capping it at max_backoff_seconds."""
    from forecast.alerts.webhooks import RetryPolicy

    receiver.down_for = 2  # 503, 503, then 200: two waits of the schedule
    monkeypatch.setenv("PW_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("POLARWATCH_ALERTS_BACKOFF_SECONDS", "0.01")
    monkeypatch.setenv("POLARWATCH_ALERTS_MAX_BACKOFF_SECONDS", "0.02")
    rc = main(["alerts", "test", receiver.url, "--secret-env", "PW_TEST_HOOK_SECRET",
               "--no-log", "--attempts", "100000"])
    err = capsys.readouterr().err
    assert rc == 0 and "after 3 attempt(s), last status 200" in err, err
    huge = RetryPolicy(max_attempts=10**9)
    assert [huge.delay(k) for k in (0, 5, 6, 1025, 10**8)] == [2, 64, 120, 120, 120]
    assert RetryPolicy(max_attempts=3000).delays()[-1] == 120
    assert RetryPolicy().delays() == [2, 4, 8, 16, 32, 64, 120, 120, 120, 120, 120]
