"""`ingest mastodon --token-env VAR` reads its token as `alerts test --secret-env` does: an
unset variable or a token pasted in place of a name is refused before anything connects, and a
401 names the variable the token came from (audit A finding 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.runs import ingest_live, mastodon_source
from ingest.sources.base import SourceError
from polarwatch.config import Config
from polarwatch.errors import ConfigError
from tests.http_fakes import QuietHandler, serve


class Refuses(QuietHandler):
    """A Mastodon instance that answers every request 401, remembering its Authorization."""

    seen: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Refuses.seen.append(self.headers.get("Authorization"))
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def instance() -> Iterator[str]:
    Refuses.seen = []
    server = serve(Refuses)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run(cfg: Config, url: str, token_env: str, state: Path) -> bool:
    source = mastodon_source(cfg, url, tag="guncontrol", token_env=token_env)
    return ingest_live(cfg, source, "mastodon", topic="gun_control", state_dir=state,
                       duration=3.0)


@pytest.mark.parametrize("name, message", [
    ("F4_NOPE_UNSET", "--token-env F4_NOPE_UNSET: that variable is not set or is empty; "
                      "export MASTODON_TOKEN='…' and pass --token-env MASTODON_TOKEN"),
    ("tok_pasted-secret.value", "--token-env takes the name of an environment variable "
                                "(letters, digits, _), not a token (the value is not shown)"),
    ("pastedTokenAbc123", "--token-env (a name of 17 characters, not shown: it has lower-case "
                          "letters and may be the token itself): that variable is not set"),
])
def test_an_unset_variable_or_a_pasted_token_is_refused_before_connecting(
        stream_config: Config, instance: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        name: str, message: str) -> None:
    """Both ran without a token, and the 401 then named $POLARWATCH_INGEST_MASTODON_TOKEN."""
    monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as err:
        _run(stream_config, instance, name, tmp_path / "state")
    assert message in str(err.value)
    if name != "F4_NOPE_UNSET":  # a name that may be the token is never repeated
        assert name not in str(err.value)
    assert Refuses.seen == []  # nothing connected


def test_a_401_names_the_variable_the_token_came_from(
        stream_config: Config, instance: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("F4_MASTODON_TOKEN", "wrong-token")
    with pytest.raises(SourceError) as err:
        _run(stream_config, instance, "F4_MASTODON_TOKEN", tmp_path / "state")
    assert Refuses.seen == ["Bearer wrong-token"]
    assert "answered HTTP 401" in str(err.value), err.value
    assert "check the instance, the tag and $F4_MASTODON_TOKEN (--token-env)" in str(err.value)
    assert "POLARWATCH_INGEST_MASTODON_TOKEN" not in str(err.value)


class Unavailable(QuietHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_live_run_that_confirmed_nothing_says_so_in_words(
        stream_config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The summary ended "confirmed position None"."""
    server = serve(Unavailable)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with caplog.at_level("INFO", logger="ingest.runs"):
            reached = ingest_live(stream_config, mastodon_source(stream_config, url, tag="x"),
                                  "mastodon", topic="gun_control", state_dir=tmp_path / "st",
                                  duration=2.0)
    finally:
        server.shutdown()
        server.server_close()
    assert reached is False
    summary = next(r.getMessage() for r in caplog.records if "records read" in r.getMessage())
    assert summary.endswith("0 ignored; no position confirmed yet (nothing to resume from)")
    assert "None" not in summary, summary
