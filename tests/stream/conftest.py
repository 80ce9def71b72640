"""Fixtures of the stream tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker, free_port


@pytest.fixture
def memory_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, with memory storage: a restart loses its topics."""
    b = EmbeddedBroker(free_port(), tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def s3_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, with s3 storage (a local S3 server): it survives restarts."""
    b = EmbeddedBroker(free_port(), tmp_path / "s3-broker", storage="s3")
    b.start()
    yield b
    b.stop()  # the broker and the S3 server
    assert b.s3_pid() is None
