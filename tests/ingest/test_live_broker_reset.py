"""A live source resumes at its saved cursor; after a memory broker's restart the broker held
none of what it had sent, and the posts the stream had not read were lost without a word (the
cursor went on past them). Now a run that finds the broker lost them goes back to where the
source began sending to that broker and sends everything since again (real private memory
broker, restarted; a real websocket server replaying Jetstream messages; the `polarwatch` CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.broker import EmbeddedBroker
from ingest.sources.mastodon import MastodonSource
from polarwatch.cli import main as cli_main
from tests.ingest.test_live_sources import T0, JetstreamServer, js_post
from tests.ingest.test_progress_broker_reset import POSTS, memory_broker  # noqa: F401
from tests.kafka_helpers import consume

REPO = Path(__file__).resolve().parents[2]
N = 10


def _ingest(server: JetstreamServer, state: Path, capsys: pytest.CaptureFixture[str],
            *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli_main(["--config", str(REPO / "polarwatch.toml"), "ingest", "jetstream", "--url",
                   server.url, "--topic", "gun_control", "--state-dir", str(state), *extra])
    return rc, capsys.readouterr().err


def test_a_live_source_goes_back_to_where_it_began_sending_to_a_restarted_broker(
        memory_broker: EmbeddedBroker, tmp_path: Path,  # noqa: F811 (the fixture)
        capsys: pytest.CaptureFixture[str]) -> None:
    server = JetstreamServer([js_post(i, f"post {i} on guns") for i in range(1, N + 1)])
    state = tmp_path / "state"
    try:
        rc, err = _ingest(server, state, capsys, "--max-posts", str(N), "--duration", "30s")
        assert rc == 0 and f"{N} posts sent" in err, err
        saved = json.loads(next(state.glob("jetstream-*.json")).read_text())
        assert saved["position"] == T0 + N and saved["life_start"] == T0 + 1
        rc, err = _ingest(server, state, capsys, "--duration", "2s")  # the same broker: resumed
        assert rc == 0 and "0 posts sent" in err and "no longer holds" not in err, err

        memory_broker.stop()  # memory storage: every post it held is gone
        memory_broker.start()
        rc, err = _ingest(server, state, capsys, "--duration", "3s")
        assert rc == 0 and f"{N} posts sent" in err, err
        assert "the broker no longer holds what this source sent it" in err
        assert f"Going back from {T0 + N} to {T0 + 1}" in err
    finally:
        server.close()
    got = [json.loads(r.value)["id"] for r in consume(memory_broker.bootstrap, POSTS, N)]
    assert len(got) == len(set(got)) == N  # every post of the lost life, once
    saved = json.loads(next(state.glob("jetstream-*.json")).read_text())
    assert saved["life_start"] == T0 + 1  # the new life began with the first post sent again


def test_a_mastodon_cursor_including_a_status_is_the_id_before_it() -> None:
    source = MastodonSource("https://example.org", tag="x")
    assert source.cursor_including("110") == "109"  # a run resumes *after* its cursor
    assert source.cursor_including("0") is None and source.cursor_including("a1") is None
    assert source.cursor_including("²") is None  # isdigit(), but no int(): a review's crash


def test_without_a_cursor_before_its_first_post_a_run_goes_back_to_where_it_started() -> None:
    """Flake ids (Pleroma, Akkoma) have no id before them: the run's own start is used."""
    from ingest.sources.base import SourceRecord
    from ingest.sources.live_progress import LiveStart

    def records() -> list[SourceRecord | None]:
        return [None, SourceRecord("AbC02", {"id": "x"}, b"{}"), SourceRecord("AbC03", None, b"")]

    resumed = LiveStart("AbC01", True, None)
    list(resumed.tap(records(), lambda _: None))
    assert resumed.life_start == "AbC01"
    fresh = LiveStart(None, True, None)
    list(fresh.tap(records(), lambda _: None))
    assert fresh.life_start == "AbC02"  # nothing before it is known
    numeric = LiveStart(None, True, None)
    list(numeric.tap(records(), lambda p: f"before {p}"))
    assert numeric.life_start == "before AbC02"
