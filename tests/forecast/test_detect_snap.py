"""`polarwatch detect --snap` and `--resample FREQ`: rows off one regular grid are put on it
(nearest point, or the start of their interval), rows sharing a point are combined by `--agg`,
what moved and merged is said on stderr, and hostile grids are refused in one line; through
the real CLI."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.csv_grid import MAX_FILLED_POINTS
from forecast.detect_csv import read_series_csv
from polarwatch.cli import main


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def detect(tmp_path: Path, src: Path, *args: str) -> pd.DataFrame:
    out = tmp_path / "out.csv"
    assert main(["detect", str(src), "-o", str(out), "--season", "none", *args]) == 0
    return pd.read_csv(out, keep_default_na=False, dtype=str)


def hourly_rows(n: int, start: str = "2026-01-01") -> list[tuple[str, str]]:
    ts = pd.date_range(start, periods=n, freq="h")
    return [(f"{t:%Y-%m-%d %H:%M:%S}", f"{10 + i % 5}") for i, t in enumerate(ts)]


def test_one_off_grid_row_goes_to_its_nearest_point(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """NAB's ec2_disk_write_bytes_1ef3de.csv was refused for one row a minute off its grid:
    the message now names --snap, and --snap moves that row and nothing else."""
    ts = pd.date_range("2014-03-01 17:34", periods=80, freq="5min")
    rows = [(f"{t:%Y-%m-%d %H:%M:%S}", f"{100 + i}") for i, t in enumerate(ts)]
    rows[60] = ("2014-03-01 22:33:00", "555")  # on the grid: 22:34
    src = write_rows(tmp_path / "nab.csv", rows)
    assert main(["detect", str(src), "--season", "none"]) == 2
    assert ("all: line(s) 62. Fix those rows, or pass --snap to move each row to the nearest "
            "point of that grid (--resample FREQ: onto another interval)") in \
        capsys.readouterr().err

    out = detect(tmp_path, src, "--snap")
    assert list(out["timestamp"]) == [f"{t:%Y-%m-%d %H:%M:%S}" for t in ts]
    assert out.loc[60, "value"] == "555" and out.loc[59, "value"] == "159"
    err = capsys.readouterr().err
    assert ("--snap: 1 of 80 row(s) moved to the nearest point of the 0 days 00:05:00 grid of "
            "the most common step (a tie to the later point), the largest shift 0 days "
            "00:01:00 (line 62); 0 row(s) merged into 0 grid point(s)") in err, err
    assert "80 rows at 0 days 00:05:00 interval" in err


def test_rows_on_one_point_are_combined_by_agg(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Two rows nearest one grid point give one output row: the mean by default, or the sum or
    the last (in time) of the observed values; a tie goes to the later point; a point whose
    rows are all missing stays missing, also as a sum (not 0)."""
    rows = hourly_rows(60)  # 10:00 holds 10, 12:00 holds 12, 20:00 is made empty
    rows[20] = (rows[20][0], "")
    src = write_rows(tmp_path / "merge.csv", [*rows, ("2026-01-01 10:20:00", "7.5"),
                                              ("2026-01-01 11:30:00", "20"),
                                              ("2026-01-01 20:10:00", "")])
    expected = {"mean": ("8.75", "16"), "sum": ("17.5", "32"), "last": ("7.5", "12")}
    for agg, (at_10, at_12) in expected.items():
        out = detect(tmp_path, src, "--snap", "--agg", agg)
        assert len(out) == 60
        assert (out.loc[10, "value"], out.loc[12, "value"], out.loc[20, "value"]) == \
            (at_10, at_12, ""), (agg, out.loc[[10, 11, 12, 20], ["timestamp", "value"]])
        assert out.loc[11, "value"] == "11"  # the tie at 11:30 went to 12:00, not here
        err = capsys.readouterr().err
        assert ("--snap: 3 of 63 row(s) moved to the nearest point of the 0 days 01:00:00 grid"
                in err and f"; 6 row(s) merged into 3 grid point(s) ({agg} of their values)"
                in err), err


def test_snap_on_a_regular_series_is_a_no_op(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """The grid keeps the phase the rows have (here 34 minutes past each hour), so --snap on a
    regular series writes the very bytes the run without it writes, and says 0 moved."""
    src = write_rows(tmp_path / "regular.csv", hourly_rows(100, start="2026-01-01 00:34:00"))
    plain = tmp_path / "plain.csv"
    assert main(["detect", str(src), "-o", str(plain), "--season", "none"]) == 0
    capsys.readouterr()
    detect(tmp_path, src, "--snap")
    assert (tmp_path / "out.csv").read_bytes() == plain.read_bytes()
    assert ("--snap: 0 of 100 row(s) moved to the nearest point of the 0 days 01:00:00 grid of "
            "the most common step (a tie to the later point); 0 row(s) merged into 0 grid "
            "point(s)") in capsys.readouterr().err


def test_resample_puts_each_row_at_the_start_of_its_interval(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--resample 1h on 10-minute rows from 00:30: the grid is aligned to the hour (UTC), each
    hour holds the rows of [t, t+1h), its value their mean (or sum)."""
    ts = pd.date_range("2026-01-01 00:30", periods=432, freq="10min")
    values = np.arange(432, dtype=float)
    src = write_rows(tmp_path / "ten.csv", [(f"{t:%Y-%m-%d %H:%M:%S}", f"{v:g}")
                                            for t, v in zip(ts, values, strict=True)])
    out = detect(tmp_path, src, "--resample", "1h")
    assert list(out["timestamp"][:3]) == ["2026-01-01 00:00:00", "2026-01-01 01:00:00",
                                          "2026-01-01 02:00:00"]
    assert list(out["value"][:3]) == ["1", "5.5", "11.5"]  # mean(0..2), mean(3..8), mean(9..14)
    assert len(out) == 73
    err = capsys.readouterr().err
    assert ("--resample 1h: 360 of 432 row(s) moved to the start of their 0 days 01:00:00 "
            "interval on a grid aligned to 1970-01-01 UTC, the largest shift 0 days 00:50:00 "
            "(line 4); 432 row(s) merged into 73 grid point(s) (mean of their values)") in err
    assert list(detect(tmp_path, src, "--resample", "1h", "--agg", "sum")["value"][:2]) == \
        ["3", "33"]


def test_a_freq_too_long_or_too_fine_is_refused_at_once(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A FREQ as long as the series left one or two points for a detector; a FREQ of 1 ms on
    59 hours asked for 212 million points: both are one line, fast, and no output; the finest
    FREQ the message offers fits the bound."""
    src = write_rows(tmp_path / "h.csv", hourly_rows(60))
    out = tmp_path / "out.csv"
    assert main(["detect", str(src), "-o", str(out), "--resample", "3d"]) == 2
    assert ("--resample 3d is not shorter than the whole series (2 days 11:00:00 from 2026-01-01 "
            "00:00:00+00:00 to 2026-01-03 11:00:00+00:00)") in capsys.readouterr().err
    started = time.monotonic()
    assert main(["detect", str(src), "-o", str(out), "--resample", "0.001s"]) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert (f"--resample 0.001s puts the series (2 days 11:00:00 long) on 212,400,001 grid "
            f"points, 212,399,941 of them missing: more than the {MAX_FILLED_POINTS:,} the detector fills; choose a FREQ of "
            f"at least 0.2124s") in err, err
    assert not out.exists()
    frame, freq, _ = read_series_csv(src, resample=timedelta(seconds=0.2124), note=lambda m: None)
    assert freq == pd.Timedelta("212.4ms") and len(frame) == MAX_FILLED_POINTS + 1


def test_mixed_offsets_are_one_clock_and_naive_mixed_with_zoned_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Rows across a daylight-saving change (+01:00, then +02:00) are one regular UTC series:
    nothing moves. Rows with and without an offset are refused, with --snap or without: the
    naive ones would be read as UTC and merged with rows two hours away."""
    utc = pd.date_range("2026-03-28 12:00", periods=60, freq="h", tz="UTC")
    local = utc.tz_convert("Europe/Berlin")
    rows = [(t.isoformat(), f"{10 + i % 5}") for i, t in enumerate(local)]
    assert {r[0][-6:] for r in rows} == {"+01:00", "+02:00"}
    out = detect(tmp_path, write_rows(tmp_path / "dst.csv", rows), "--snap")
    assert list(out["timestamp"]) == [f"{t:%Y-%m-%dT%H:%M:%S%z}" for t in utc]
    assert "--snap: 0 of 60 row(s) moved" in capsys.readouterr().err

    rows[5] = (f"{local[5]:%Y-%m-%d %H:%M:%S}", "11")
    rows[9] = (f"{local[9]:%Y-%m-%d %H:%M:%S}", "11")
    mixed = write_rows(tmp_path / "mixed.csv", rows)
    for grid in (["--snap"], []):  # without a grid: a naive row read as UTC took another's time
        assert main(["detect", str(mixed), *grid, "--season", "none"]) == 2
        err = capsys.readouterr().err
        assert ("58 timestamp(s) have a time zone (line(s) 2, 3, 4, 5, 6 and 53 more) and 2 "
                "have none (line(s) 7, 11), which would be read as UTC") in err, err
        assert len(err.strip().splitlines()) == 1


def test_a_sub_second_grid_keeps_its_fractions(tmp_path: Path) -> None:
    """At 0.5 s every second output timestamp ends in .500000; written to the second they were
    pairs of equal timestamps."""
    ts = pd.date_range("2026-01-01", periods=200, freq="s")
    src = write_rows(tmp_path / "s.csv", [(f"{t:%Y-%m-%d %H:%M:%S}", f"{i % 7}")
                                          for i, t in enumerate(ts)])
    out = detect(tmp_path, src, "--resample", "0.5s")
    assert len(out) == 399 and out["timestamp"].is_unique
    assert list(out["timestamp"][:2]) == ["2026-01-01 00:00:00.000000",
                                          "2026-01-01 00:00:00.500000"]
    assert list(out["value"][:3]) == ["0", "", "1"]
