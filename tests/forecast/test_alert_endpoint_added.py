"""An endpoint added to ``[alerts] webhooks`` while an episode is open gets that episode's firing
message (once), and never a resolved message for an episode it was not sent firing for: real
local receivers and a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forecast.alerts.delivery import send_flag_alerts
from tests.forecast.test_alert_episodes import iso, messages, write_history
from tests.forecast.test_alert_escalation import one_open_episode, reclassify
from tests.forecast.test_alerting import config
from tests.forecast.test_webhooks import Receiver


@pytest.fixture()
def second() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return one_open_episode(tmp_path)


def test_an_endpoint_added_while_an_episode_is_open_gets_its_firing_message(
        path: Path, receiver: Receiver, second: Receiver) -> None:
    assert send_flag_alerts(config(path, receiver.url))["sent"] == 1
    [(_, key, starts, _)] = messages(receiver)
    both = config(path, f"{receiver.url},{second.url}")
    assert send_flag_alerts(both) == dict(active=1, opened=0, resolved=0, sent=1, failed=0,
                                          escalated=0, history=0, deferred=0)
    assert messages(second) == [("alert.firing", key, starts, "spike")]
    assert second.requests[0]["verified"] and second.requests[0]["id"] != \
        receiver.requests[0]["id"]
    assert len(receiver.requests) == 1  # the first endpoint is not sent it again
    assert send_flag_alerts(both)["sent"] == 0  # once: later runs send nothing more
    assert len(second.requests) == 1 and len(receiver.requests) == 1
    write_history(path, 120, [(100, 114)])  # the episode resolves
    assert send_flag_alerts(both)["sent"] == 1
    assert messages(second) == [("alert.firing", key, starts, "spike"),
                                ("alert.resolved", key, starts, "spike")]
    assert [m[0] for m in messages(receiver)] == ["alert.firing", "alert.resolved"]


def test_an_endpoint_added_as_the_episode_resolves_gets_firing_before_resolved(
        path: Path, receiver: Receiver) -> None:
    """The new endpoint is down on its first run: it gets nothing, the resolved message stays
    pending for it; the next run sends it the firing message, then the resolved one."""
    assert send_flag_alerts(config(path, receiver.url))["sent"] == 1
    write_history(path, 120, [(100, 114)])
    late = Receiver(down_for=1)  # 503 to its first request
    try:
        both = config(path, f"{receiver.url},{late.url}", max_attempts="1")
        first = send_flag_alerts(both)
        assert (first["sent"], first["failed"]) == (0, 2)  # the catch-up and the resolved
        assert [r["body"]["type"] for r in late.requests] == ["alert.firing"]
        assert [m[0] for m in messages(receiver)] == ["alert.firing", "alert.resolved"]
        again = send_flag_alerts(both)
        assert (again["sent"], again["failed"]) == (2, 0)
        assert [(m[0], m[2]) for m in messages(late)] == [
            ("alert.firing", iso(100)), ("alert.firing", iso(100)),
            ("alert.resolved", iso(100))]
        assert len(receiver.requests) == 2
        assert send_flag_alerts(both)["sent"] == 0 and len(late.requests) == 3
    finally:
        late.close()


def test_a_new_endpoints_first_message_carries_the_class_now(
        path: Path, receiver: Receiver, second: Receiver) -> None:
    """The first endpoint got the spike, then an escalation update; the class then fell to a
    dip (nothing sent). The endpoint added now gets one firing message, as a dip."""
    cfg = config(path, receiver.url)
    assert send_flag_alerts(cfg)["sent"] == 1
    reclassify(path, "reactive")
    assert send_flag_alerts(cfg)["escalated"] == 1
    reclassify(path, "dip")
    assert send_flag_alerts(cfg)["sent"] == 0
    assert send_flag_alerts(config(path, f"{receiver.url},{second.url}"))["sent"] == 1
    [data] = [r["body"]["data"] for r in second.requests]
    assert (data["labels"]["flag"], data["labels"]["severity"]) == ("dip", "info")
    assert data["annotations"]["summary"].startswith("dip on guns")
    assert "escalated_from" not in data["annotations"] and len(receiver.requests) == 2
