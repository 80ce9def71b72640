"""`polarwatch detect`: the classes of its flags, its option ranges and the bounds on its input
(gaps, long fields, off-grid rows, its own input as output), through the real CLI."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.csv_grid import MAX_FILLED_POINTS, MAX_QUOTED_CHARS
from forecast.detect import DetectError, DetectorConfig, StreamingDetector
from polarwatch.cli import main
from tests.forecast.test_detect import hourly, write_csv


def run(tmp_path: Path, values: np.ndarray, *args: str) -> pd.DataFrame:
    ts = pd.date_range("2026-01-01", periods=len(values), freq="h")
    src = write_csv(tmp_path / "in.csv", ts, [f"{v:g}" for v in values])
    assert main(["detect", str(src), "-o", str(tmp_path / "out.csv"), *args]) == 0
    return pd.read_csv(tmp_path / "out.csv", keep_default_na=False)


def test_a_fall_is_a_dip_and_a_rise_without_a_calendar_is_no_anticipation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`detect` wrote the detector's raw kind: a fall 60 below the band came out as `spike`
    and a build-up as `anticipatory`, with no calendar to anticipate anything."""
    t = np.arange(240)
    y = 100 + 10 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(1).normal(0, 1, 240)
    y[200] -= 60
    out = run(tmp_path, y)
    assert out.loc[200, "flag"] == "dip", out[out["flag"] != "none"]
    assert "flags: spike 0, dip 1, reactive 0" in capsys.readouterr().err

    z = hourly(seed=6)
    z[180:240] *= np.linspace(1.0, 4.0, 60)  # the build-up test_detect's ramp flags
    z[240:] *= 4.0
    flags = run(tmp_path, z)["flag"]
    assert set(flags) <= {"none", "spike", "dip", "reactive"}, set(flags)
    first = flags[(flags != "none") & (flags.index >= 180)].index[0]
    assert flags[first] == "spike" and first < 240  # the same alarm, classed as forecast does


def test_help_lists_dip_and_the_threshold_range(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "flag (none|spike|dip|reactive" in text and "anticipatory" in text
    assert "[a number in (0, 1), both ends excluded]" in text
    assert f"at most {MAX_FILLED_POINTS:,} missing points" in text  # the help says the bound


def test_threshold_one_is_refused_with_the_range(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`--threshold 1` passed the argument's (0, 1] and raised StatisticsError in the detector."""
    src = write_csv(tmp_path / "in.csv", pd.date_range("2026-01-01", periods=60, freq="h"),
                    ["1"] * 60)
    for value in ("1", "0", "1.5"):
        with pytest.raises(SystemExit) as exit_:
            main(["detect", str(src), "--threshold", value])
        assert exit_.value.code == 2
        assert f"--threshold: {value} is outside (0, 1), both ends excluded" in \
            capsys.readouterr().err
    with pytest.raises(DetectError, match=r"threshold must be in \(0, 1\), got 1.0"):
        StreamingDetector(3600.0, DetectorConfig(threshold=1.0))


def test_a_gap_that_would_add_too_many_points_is_refused_before_the_grid(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """100 rows a second apart in 2001 and 100 in 2025 asked for a 5.6 GiB grid; here 12
    days at 1 s (1,036,800 points) is past the bound, and refused at once."""
    first = pd.date_range("2024-01-01", periods=40, freq="s")
    second = pd.date_range("2024-01-13", periods=40, freq="s")
    src = write_csv(tmp_path / "gap.csv", first.append(second), ["1"] * 80)
    started = time.monotonic()
    assert main(["detect", str(src), "-o", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - started < 10
    gap = 12 * 86400 - 40
    assert (f"the gaps would add {gap:,} missing points at the 0 days 00:00:01 interval, more "
            f"than the {MAX_FILLED_POINTS:,} the detector fills; the largest gap, "
            f"11 days 23:59:20 before line 42, alone adds {gap:,}") in err, err
    assert not (tmp_path / "out.csv").exists()


def test_a_huge_field_is_not_parsed_and_is_quoted_short(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 1 MB timestamp took 15 s to fail (quadratic parsing), then echoed all of it; a 50 MB
    value filled stderr with 50 MB."""
    ts = [f"{t:%Y-%m-%d %H:%M:%S}" for t in pd.date_range("2026-01-01", periods=60, freq="h")]
    rows = [f"{t},{i % 7}" for i, t in enumerate(ts)]
    big = tmp_path / "bigts.csv"
    big.write_text("timestamp,value\n" + "\n".join([*rows[:30], "x" * 1_000_000 + ",1",
                                                     *rows[30:]]) + "\n")
    started = time.monotonic()
    assert main(["detect", str(big), "--season", "none"]) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - started < 5
    assert f"1 unparseable timestamp(s) on line(s) 32 (e.g. '{'x' * MAX_QUOTED_CHARS}'… (1,000,000 " \
           f"characters)); 1 of them longer than 64 characters" in err
    assert len(err) < 500

    value = tmp_path / "bigvalue.csv"
    rows[31] = f"{ts[31]},{'1' * 1_000_000}x"
    value.write_text("timestamp,value\n" + "\n".join(rows) + "\n")
    assert main(["detect", str(value), "--season", "none", "-o", str(tmp_path / "o.csv")]) == 0
    err = capsys.readouterr().err
    assert "1 non-numeric value(s) on line(s) 33 (" in err and "(1,000,001 characters)" in err
    assert len(err) < 1000


def test_an_off_grid_row_is_named_by_line_and_time(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """NAB's ec2_disk_write_bytes_1ef3de.csv has one off-grid row at line 2131; the message
    read as if the problem started at the first row."""
    ts = pd.date_range("2014-03-01 17:34", periods=80, freq="5min")
    ts = ts.delete(60).insert(60, pd.Timestamp("2014-03-01 22:33"))
    src = write_csv(tmp_path / "nab.csv", ts, ["1"] * 80)
    assert main(["detect", str(src)]) == 2
    err = capsys.readouterr().err
    assert "but 1 timestamp(s) are off that grid (counted from the first row, 2014-03-01 " \
           "17:34:00+00:00); the first off-grid row is line 62, 2014-03-01 22:33:00+00:00 " \
           "(0 days 00:04:00 after the row before it)" in err, err


def test_rows_further_apart_than_a_series_can_hold_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows in 1700 and 2200 were an OverflowError traceback (pandas' steps are int64 ns)."""
    src = tmp_path / "far.csv"
    src.write_text("timestamp,value\n1700-01-01,1\n1700-01-02,2\n2200-01-01,3\n")
    for grid in ([], ["--snap"], ["--resample", "1d"]):
        assert main(["detect", str(src), *grid]) == 2
        assert "the rows span 182,621 days, more than the 106,751 (292 years) a series can; " \
               "split the file" in capsys.readouterr().err


def test_the_output_may_not_be_the_input(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ts = pd.date_range("2026-01-01", periods=60, freq="h")
    src = write_csv(tmp_path / "self.csv", ts, ["1"] * 60)
    before = src.read_bytes()
    (tmp_path / "alias.csv").symlink_to(src)
    for output in (src, tmp_path / "." / "self.csv", tmp_path / "alias.csv"):
        assert main(["detect", str(src), "--season", "none", "-o", str(output)]) == 2
        assert "is the input file" in capsys.readouterr().err
    assert src.read_bytes() == before
    assert main(["detect", str(src), "-o", str(tmp_path / "no" / "out.csv")]) == 2
    assert f"directory {tmp_path / 'no'} does not exist" in capsys.readouterr().err


def test_rows_closer_than_a_microsecond_are_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows 500 ns apart were a ValueError traceback ("interval must be positive, got 0.0 s":
    the detector counts in seconds at microsecond resolution), with or without --snap."""
    src = tmp_path / "ns.csv"
    src.write_text("timestamp,value\n" + "".join(
        f"2026-01-01T00:00:00.{500 * i:09d},{i % 7}\n" for i in range(200)))
    for grid in ([], ["--snap"]):
        assert main(["detect", str(src), *grid]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Warning" not in err, err
        assert err.strip().splitlines()[-1] == (
            f"polarwatch: error: {src}: the rows are 0 days 00:00:00.000000500 apart, closer "
            f"than 1 microsecond, the finest interval the detector takes; pass --resample "
            f"with a coarser interval (at least 0.000001s)")
    assert main(["detect", str(src), "--resample", "0.000001s", "--season", "none"]) == 0


def test_a_header_of_many_repeated_names_is_read_in_linear_time(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """pandas renames repeated header names one by one (`c`, `c.1`, ... in quadratic time): a
    240 KB header of 60,000 unread columns named `c` took over a minute before the first
    message (100,000 of them in a 9.8 MB file: over 2 minutes). Only the header's names and
    the two columns read are parsed now."""
    src = tmp_path / "wide.csv"
    extra = ",c" * 60_000
    ts = pd.date_range("2026-01-01", periods=200, freq="h")
    src.write_text(f"timestamp,value{extra}\n" + "".join(
        f"{t:%Y-%m-%d %H:%M:%S},{i % 5}{',1' * 60_000}\n" for i, t in enumerate(ts[:3])))
    started = time.monotonic()
    assert main(["detect", str(src)]) == 2
    assert time.monotonic() - started < 20
    assert "too few rows: 3 observed value(s)" in capsys.readouterr().err


def test_rows_ending_in_a_comma_are_read_as_their_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Data rows with one field more than the header (a trailing comma, as spreadsheets write)
    made pandas take the timestamps for an index: "200 unparseable timestamp(s) ... (e.g.
    '0')", the values quoted as times."""
    ts = pd.date_range("2026-01-01", periods=200, freq="h")
    src = tmp_path / "trailing.csv"
    src.write_text("timestamp,value\n" + "".join(
        f"{t:%Y-%m-%d %H:%M:%S},{i % 5},\n" for i, t in enumerate(ts)))
    assert main(["detect", str(src), "--season", "none", "-o", str(tmp_path / "o.csv")]) == 0
    out = pd.read_csv(tmp_path / "o.csv")
    assert len(out) == 200 and list(out["value"][:6]) == [0, 1, 2, 3, 4, 0]


@pytest.mark.parametrize("header", ["timestamp,value,Value", "timestamp,value,timestamp"])
def test_a_column_named_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         header: str) -> None:
    """`timestamp,value,Value` (two exports pasted side by side) read the first `value` column
    and said nothing of the second; now the header is refused in one line."""
    ts = pd.date_range("2026-01-01", periods=200, freq="h")
    src = tmp_path / "twice.csv"
    src.write_text(f"{header}\n" + "".join(
        f"{t:%Y-%m-%d %H:%M:%S},{i % 5},{t:%Y-%m-%d %H:%M:%S}\n" for i, t in enumerate(ts)))
    assert main(["detect", str(src), "--season", "none"]) == 2
    twice = "value" if header.endswith("Value") else "timestamp"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"polarwatch: error: {src}: the header names {twice} (2 times); which to read is "
        f"unclear: rename or remove the other(s)")
