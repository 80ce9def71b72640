"""`polarwatch report`: one self-contained HTML file (charts embedded as base64 PNG).

Per topic: the accuracy of its labels measured on the analysts' random labels (with the
"not validated" / "unreliable" status of the Topic page), the current state (newest window), a
chart of the forecast metric with its band, the horizon forecast, flags and events, the forecast
table for the next ``[forecast] horizon`` windows, the active flags with their class and
explanation, the conversations driving them (most interaction-score mass in the flagged window)
and the recent flags; then the before / during / after table of every event
(:mod:`forecast.event_conversations`).

Reading is plain SQL over short read-only connections (:mod:`forecast.reports.gather`);
rendering is pure, frames in and HTML out (:mod:`forecast.reports.render`, an autoescaped
jinja2 template, and :mod:`forecast.reports.charts`). Here: writing, and the loop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forecast.reports.gather import gather, parse_duration
from forecast.reports.render import render
from polarwatch.config import Config
from polarwatch.errors import WarehouseLocked
from polarwatch.safe_write import output_ready, output_target, write_text
from polarwatch.warehouse import lock_explained

LOG = logging.getLogger(__name__)
# The bytes of a file name that is not UTF-8 (from a Latin-1 machine), which Python keeps as
# lone surrogates: strftime cannot encode them, so it never sees them.
_UNDECODED = re.compile("([\udc80-\udcff]+)")


def output_name(output: str | Path, now: datetime) -> str:
    """``output`` with its strftime codes filled in from ``now`` (a string: Path("") would read
    as "."); the undecodable bytes of a non-UTF-8 name pass through as they are."""
    parts = _UNDECODED.split(str(output))
    return "".join(part if i % 2 else now.strftime(part) for i, part in enumerate(parts))


def write_report(cfg: Config, output: str | Path, topics: Sequence[str] | None = None,
                 since: str | None = None, now: datetime | None = None) -> Path:
    """Render and write atomically; ``output`` may hold strftime codes (UTC ``now``).

    An output that cannot be a regular file (empty, a directory, a device, a FIFO) is refused
    before anything is read (:func:`polarwatch.safe_write.output_target`); a symlink is
    written through, the file it points to replaced. Returns ``output`` as named."""
    now = now or datetime.now(UTC)
    name = output_name(output, now)
    output_target(name)
    data, studies, facts = gather(cfg, topics, since)
    write_text(name, render(data, studies, facts, now))
    return Path(name)


def report_loop(cfg: Config, *, output: str | Path, topics: Sequence[str] | None = None,
                since: str | None = None, every: str | None = None, count: int | None = None,
                before: Callable[[], Any] | None = None,
                sleep: Callable[[float], Any] = time.sleep) -> list[Path]:
    """One report, or one every ``every`` (``count`` runs, or until interrupted); each path
    is logged as it is written. ``before`` runs first each time (``report --forecast``: the
    forecast run, so the report never imports the modelling code). A warehouse another process
    keeps locked (:class:`WarehouseLocked`) stops a single report; in a loop that run is
    logged and the next one comes on time (raised when no run of the loop wrote a report)."""
    period = parse_duration(every).total_seconds() if every else None
    output_ready(output_name(output, datetime.now(UTC)))  # before `before` runs the forecast
    paths: list[Path] = []
    run = 0
    while True:
        run += 1
        started = time.monotonic()
        try:
            with lock_explained(cfg.warehouse_path, "polarwatch report"):
                if before is not None:
                    before()
                paths.append(write_report(cfg, output, topics, since))
            LOG.info(f"report written: {paths[-1]}")
        except WarehouseLocked as exc:
            last = count is not None and run >= count
            if period is None or (last and not paths):
                raise
            LOG.warning(f"report run {run}" + (f" of {count}" if count else "") + f" not "
                        f"written: {exc}" + ("" if last else f"; the next run is in {every}"))
        if period is None or (count is not None and run >= count):
            return paths
        sleep(max(0.0, period - (time.monotonic() - started)))
