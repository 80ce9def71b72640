"""`polarwatch label` on valid JSON Python cannot use: a lone surrogate escape (``\\ud800``) in a
column stopped the run with a UnicodeEncodeError traceback when the row was written (part of
the output written), and a number of more than 4,300 digits with a ValueError traceback before
anything was labelled. Each such row is now skipped with its line and reason, as other bad rows
are, and the output is complete."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from polarwatch.cli import main
from scoring.io import write_jsonl

REPO = Path(__file__).resolve().parents[2]
CONFIG = ["--config", str(REPO / "polarwatch.toml")]
SURROGATE = ("a lone UTF-16 surrogate ({escape} at character {at}), which UTF-8 cannot encode; "
             "escape a character beyond U+FFFF as a pair (\\ud83d\\ude00) or drop it")
DIGITS = 5000  # more than Python's default limit of 4,300 digits for int(str)


def _good(i: int) -> str:
    return json.dumps({"id": f"ok{i}", "text": "Ban assault weapons", "topic": "gun_control"})


@pytest.mark.parametrize(("row", "reason"), [
    ('{"id":"s1","topic":"gun_control","text":"lone \\ud800 surrogate"}',  # the audit's row
     "text: " + SURROGATE.format(escape="\\ud800", at=6)),
    ('{"id":"s\\udc00","topic":"gun_control","text":"x"}',
     "id: " + SURROGATE.format(escape="\\udc00", at=2)),
    ('{"id":"s1","topic":"gun_control","text":"x","parent_text":"\\udfff"}',
     "parent_text: " + SURROGATE.format(escape="\\udfff", at=1)),
    ('{"id":"g","topic":"gun_control","text":"x","n":' + "9" * DIGITS + "}",  # the audit's row
     f"a JSON number of {DIGITS:,} digits at column 48, more than the 4,300 Python reads; "
     f'write it as a string ("...") if it is an id'),
    ('{"id":"g","topic":"gun_control","text":"x","n": [-' + "1" * DIGITS + "]}",
     f"a JSON number of {DIGITS:,} digits at column 50, more than the 4,300 Python reads; "
     f'write it as a string ("...") if it is an id'),
], ids=["surrogate-in-text", "surrogate-in-id", "surrogate-in-parent-text", "huge-number",
        "huge-negative-number-in-array"])
def test_a_row_python_cannot_use_is_skipped_and_the_output_is_complete(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], row: str, reason: str) -> None:
    assert sys.get_int_max_str_digits() == 4300
    src = tmp_path / "posts.jsonl"
    lines = [_good(i) for i in range(6)]
    lines.insert(3, row)  # line 4 of 7
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "labels.jsonl"
    rc = main([*CONFIG, "label", str(src), "-o", str(out), "--backend", "lexicon",
               "--fallback", ""])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert f"{src}:4: skipped: {reason}\n" in err, err
    assert "labeled 6 of 6 rows" in err and "1 rows skipped" in err
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in written] == [f"ok{i}" for i in range(6)]


def test_a_pair_of_surrogate_escapes_is_one_character_and_labelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "posts.jsonl"
    src.write_text('{"id":"e","topic":"gun_control","text":"ban them \\ud83d\\ude00"}\n')
    assert main([*CONFIG, "label", str(src), "--backend", "lexicon"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "ban them \U0001F600"


def test_csv_cells_are_text_so_a_long_number_is_labelled(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CSV holds no numbers to convert, and a surrogate cannot be in UTF-8 text: its bytes
    are the file-level "not UTF-8" error naming the line (docs/cli.md)."""
    src = tmp_path / "posts.csv"
    src.write_text(f"id,text,topic,n\r\nc1,Ban assault weapons,gun_control,{'9' * DIGITS}\r\n")
    rc = main([*CONFIG, "label", str(src), "--backend", "lexicon"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["c1"]
    encoded = tmp_path / "surrogate.csv"
    encoded.write_bytes(b"id,text,topic\r\nc1,lone \xed\xa0\x80 x,gun_control\r\n")
    rc = main([*CONFIG, "label", str(encoded), "--backend", "lexicon"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert "1 line(s) hold bytes that are not UTF-8 (line(s) 2)" in err


def test_write_jsonl_escapes_a_lone_surrogate_a_backend_returned(tmp_path: Path) -> None:
    """Input rows with one are skipped, but a backend's explanation is text from elsewhere:
    the record is written with the surrogate escaped, and the rows after it too."""
    path = tmp_path / "labels.jsonl"
    records = [{"id": "a", "explanation": "fine ’"}, {"id": "b", "explanation": "bad \ud800"},
               {"id": "c", "explanation": "fine"}]
    with path.open("w", encoding="utf-8") as fh:
        assert write_jsonl(iter(records), fh) == 3
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == '{"id": "a", "explanation": "fine ’"}'
    assert text.splitlines()[1] == '{"id": "b", "explanation": "bad \\ud800"}'
    assert [json.loads(line) for line in text.splitlines()] == records
