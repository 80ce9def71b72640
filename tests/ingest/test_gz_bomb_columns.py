"""A .gz bomb whose rows lack columns the posts need is refused before a row is dead-lettered
(audit A finding 6: the column check swallowed the bomb error, so `ingest file` read the whole
bomb and sent ~263k dead letters before refusing it)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ingest.broker import ensure_topics
from ingest.runs import ingest_files
from ingest.sources.base import SourceError
from ingest.sources.files import BOMB_MIN_BYTES
from ingest.sources.mapping import parse_mapping
from polarwatch.config import Config
from tests.kafka_helpers import consume

LINE_TEXT = 200_000  # characters per row: few rows (~1,400) reach the bomb threshold


def test_a_gz_bomb_without_the_needed_columns_sends_no_dead_letter(
        stream_config: Config, tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    row = b'{"id": "x", "text": "' + b"a" * LINE_TEXT + b'"}\n'  # no created_at, no author_id
    with gzip.open(path, "wb", compresslevel=9) as f:
        for _ in range(BOMB_MIN_BYTES // len(row) + 64):
            f.write(row)
    bootstrap, dead = stream_config.broker.bootstrap_servers, stream_config.topics.dead_letter
    ensure_topics(bootstrap, [stream_config.topics.posts, dead], 1)
    with pytest.raises(SourceError) as err:
        ingest_files(stream_config, [path], parse_mapping(None), topic="gun_control", state_dir=tmp_path / "st")
    message = str(err.value)
    assert "refused as a decompression bomb" in message, message
    assert message.endswith("; nothing was sent"), message
    assert "dead-lettered" not in message, message
    assert consume(bootstrap, dead, 0) == []
    assert consume(bootstrap, stream_config.topics.posts, 0) == []
