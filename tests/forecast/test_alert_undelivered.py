"""A firing message no endpoint has taken yet follows a change of the episode's class that is no
escalation, in its labels and its annotations alike: the first message takes the class; an
escalation update not yet delivered follows a class of its severity or, when the class falls
back, is withdrawn (a rise still queues an update: the message may be in flight). Real local
receivers (one refusing connections) and a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from forecast.alerts.delivery import send_flag_alerts
from tests.forecast.test_alert_escalation import one_open_episode, reclassify, resolve, sent
from tests.forecast.test_alerting import config
from tests.forecast.test_webhooks import Receiver


@pytest.fixture()
def path(tmp_path: Path) -> Path:
    return one_open_episode(tmp_path)


@pytest.fixture()
def gone() -> Iterator[str]:
    """The URL of a receiver that is gone: connections are refused."""
    r = Receiver()
    r.close()
    yield r.url


def down(path: Path, url: str) -> dict[str, int]:
    summary = send_flag_alerts(config(path, url, max_attempts="1"))
    assert summary["sent"] == 0 and summary["failed"] >= 1
    return summary


@pytest.mark.parametrize(("first", "then"), [("reactive", "spike"), ("anticipatory", "dip"),
                                             ("reactive", "anticipatory")])
def test_a_first_message_never_delivered_carries_the_class_now(
        first: str, then: str, path: Path, gone: str, receiver: Receiver) -> None:
    reclassify(path, first)
    down(path, gone)
    reclassify(path, then)
    summary = send_flag_alerts(config(path, receiver.url))
    assert (summary["sent"], summary["escalated"]) == (1, 0)  # a first message, no update
    [(kind, _, _, flag, severity)] = sent(receiver)
    assert (kind, flag) == ("alert.firing", then)
    assert severity == ("info" if then in ("spike", "dip") else "warning")
    annotations = receiver.requests[0]["body"]["data"]["annotations"]
    assert annotations["summary"].startswith(f"{then} on guns")
    assert "escalated_from" not in annotations
    assert send_flag_alerts(config(path, receiver.url))["sent"] == 0


def test_an_update_never_delivered_follows_the_class_or_is_withdrawn(
        path: Path, gone: str, receiver: Receiver) -> None:
    cfg = config(path, receiver.url)
    assert send_flag_alerts(cfg)["sent"] == 1  # spike (info) delivered
    reclassify(path, "reactive")  # an escalation update, the endpoint down
    assert down(path, gone)["escalated"] == 1
    reclassify(path, "anticipatory")  # the same severity: the update follows
    assert send_flag_alerts(config(path, gone, max_attempts="1"))["escalated"] == 1
    reclassify(path, "dip")  # back to info: nothing to escalate, the update is withdrawn
    assert send_flag_alerts(cfg)["sent"] == 0 and len(receiver.requests) == 1

    reclassify(path, "anticipatory")  # up again: one update, with the class now
    summary = send_flag_alerts(cfg)
    assert (summary["sent"], summary["escalated"]) == (1, 1)
    assert sent(receiver)[1][3:] == ("anticipatory", "warning")
    data = receiver.requests[1]["body"]["data"]
    assert data["annotations"]["escalated_from"] == "spike (info)"
    assert data["annotations"]["summary"].startswith("anticipatory on guns")
    resolve(path)
    reclassify(path, "anticipatory")
    assert send_flag_alerts(cfg)["sent"] == 1
    assert sent(receiver)[2][0::3] == ("alert.resolved", "anticipatory")


def test_an_update_never_delivered_back_to_the_class_receivers_have_sends_nothing(
        path: Path, gone: str, receiver: Receiver) -> None:
    cfg = config(path, receiver.url)
    assert send_flag_alerts(cfg)["sent"] == 1  # spike (info) delivered
    reclassify(path, "reactive")
    assert down(path, gone)["escalated"] == 1
    reclassify(path, "spike")  # what the receiver has: nothing is pending
    assert send_flag_alerts(cfg) == dict(active=1, opened=0, resolved=0, sent=0, failed=0,
                                         escalated=0, history=0, deferred=0)
    assert len(receiver.requests) == 1
