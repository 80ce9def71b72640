"""Speed of `polarwatch detect` on a 16,000-point 5-minute series (issue 14).

    .venv/bin/python benchmarks/nab_speed.py [--data ../shared/data/nab] [--points 16000]

Takes the first ``--points`` rows of NAB's longest real 5-minute series
(realKnownCause/cpu_utilization_asg_misconfiguration.csv, 18,050 rows), writes them to a temporary
CSV and runs the real command line on it (a subprocess: CSV parsing, the detector with its
Holt-Winters refits, the CSV output). Prints wall time, the CPU time of the subprocess (what the
machine's load does not inflate) and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT.parent / "shared" / "data" / "nab"
SERIES = "realKnownCause/cpu_utilization_asg_misconfiguration.csv"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    ap.add_argument("--points", type=int, default=16000)
    args = ap.parse_args(argv)
    frame = pd.read_csv(args.data / SERIES).head(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "series.csv", Path(tmp) / "out.csv"
        frame.to_csv(src, index=False)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "polarwatch"), "detect", str(src),
                               "-o", str(out)], capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        result = pd.read_csv(out)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    alarms = int((result["flag"] != "none").sum())
    print(f"polarwatch detect, {len(result):,} rows of {SERIES} (5-minute): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU (start-up and imports included), {alarms} alarm(s) in "
          f"{result['episode'].nunique()} episode(s); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print(proc.stderr.strip().splitlines()[-2] if proc.stderr.strip() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
