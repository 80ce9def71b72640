"""Fixtures shared by the forecast tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.forecast.test_webhooks import Receiver


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    """A real local webhook receiver that answers 200 (test_webhooks has its own, flaky one)."""
    r = Receiver()
    yield r
    r.close()
