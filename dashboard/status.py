"""The sidebar's stream status line: what the stream is doing (its heartbeat, the last batch
the warehouse committed) and the dead letters, as text. Pure: :mod:`dashboard.common` reads the
warehouse and draws it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dashboard.analysis import age_seconds, fmt_age, fmt_duration, is_missing
from dashboard.safety import md_text
from polarwatch.heartbeat import Heartbeat, judge, this_host

# The stream commits a batch every trigger (2 s by default) while posts arrive, and nothing while
# none do: two minutes without a batch means it stopped, or has had nothing to read for that
# long. The warehouse cannot tell the two apart (an idle stream writes nothing); the stream's
# heartbeat file can (polarwatch/heartbeat.py). Without one (a stream from before it, or on a
# machine that does not share the directory) the sidebar says both.
STALE_AFTER_SECONDS = 120
EMPTY_HINT = "run `make demo` or `polarwatch stream`"


def dead_letter_note(dead: dict[str, int] | None, batch_dead: int) -> str:
    """', 7 dead letters (6 rejected at ingest, 1 by the stream)' from the ``dead_letters``
    rows per source (:func:`dashboard.rejects.dead_letter_counts`); without them (a file the
    page cannot count in), the stream's own count from ``stream_batches``."""
    if dead is None:
        return f", {batch_dead:,} dead-lettered by the stream" if batch_dead else ""
    total = sum(dead.values())
    if not total:
        return ""
    parts = [f"{dead.get('ingest', 0):,} rejected at ingest",
             f"{dead.get('stream', 0):,} by the stream"]
    parts += [f"{n:,} from {md_text(source)}" for source, n in sorted(dead.items())
              if source not in ("ingest", "stream")]  # a foreign writer's rows count too
    return f", {total:,} dead letter{'' if total == 1 else 's'} ({', '.join(parts)})"


def heartbeat_note(hb: Heartbeat, last_batch_at: Any = None, now: datetime | None = None,
                   host: str | None = None) -> tuple[str, str | None]:
    """(what the stream is doing, warning or None) from its heartbeat, read on machine `host`
    (default: this one; another machine's pid is not judged, only the time), and the last batch
    the warehouse committed (None: none yet)."""
    now = now or datetime.now(UTC)
    host = host or this_host()
    verdict = judge(hb, now, host)
    at = f"{hb.beat_at:%Y-%m-%d %H:%M:%S} UTC"
    where = "" if hb.hostname == host else f" on {md_text(hb.hostname)}"
    why = md_text(hb.cause or "no cause given")
    if verdict == "stopped":
        return (f"stopped at {at}",
                f"The stream stopped cleanly at {at}{where} ({why}). The pages show what it "
                f"stored until then; `polarwatch stream --continuous` keeps them current.")
    if verdict == "failed":
        return (f"stopped after an error at {at}",
                f"The stream stopped at {at}{where} after an error a restart cannot fix: {why}. "
                f"Fix it and restart it with `polarwatch stream` (it resumes from its "
                f"checkpoint).")
    if verdict == "skewed":
        ahead = fmt_duration(int((hb.beat_at - now).total_seconds()))
        return ("state unknown (the clocks disagree)",
                f"The stream's heartbeat{where} is dated {at}, {ahead} ahead of this machine's "
                f"clock: the two clocks disagree, so its age says nothing and the dashboard "
                f"cannot tell a running stream from a stopped one. Set both clocks right (NTP).")
    if verdict in ("stale", "pid_gone"):
        lead = (f"No heartbeat for {fmt_duration(age_seconds(hb.beat_at, now))}"
                if verdict == "stale" else f"The stream's process (pid {hb.pid}) has exited")
        return ("not running",
                f"{lead}{where} (the last beat, at {at}, said {hb.state}): the stream process "
                f"is gone (crashed or killed) — restart it with `polarwatch stream`.")
    if verdict == "restarting":
        return (f"restarting after {why}",
                f"The stream is restarting after a transient failure: {why}. It restarts by "
                f"itself, with back-off, from its checkpoint.")
    if verdict == "starting":
        return "starting", None
    stored = None
    if not is_missing(last_batch_at):  # committed_at is TIMESTAMPTZ; a foreign file's may not be
        moment = pd.Timestamp(last_batch_at)
        stored = (moment if moment.tzinfo else moment.tz_localize(UTC)).to_pydatetime()
    last = max((t for t in (stored, hb.last_batch_at) if t is not None), default=None)
    idle = age_seconds(max(last, hb.started_at) if last else hb.started_at, now)
    if idle <= STALE_AFTER_SECONDS:
        return "running", None
    if last is None or last < hb.started_at:
        return f"running, idle: no new posts since it started {fmt_duration(idle)} ago", None
    return f"running, idle: no new posts for {fmt_duration(idle)}", None


def status_line(status: pd.DataFrame, now: datetime | None = None,
                dead: dict[str, int] | None = None, heartbeat: Heartbeat | None = None,
                host: str | None = None) -> tuple[str, str | None]:
    """(summary, warning or None) for the stream status row of :func:`queries.stream_status`,
    the dead letters per source (`dead`) and the stream's heartbeat (None: no heartbeat file,
    so idle and stopped look alike)."""
    row = status.iloc[0]
    counts = f"{int(row['n_posts']):,} posts, {int(row['n_interactions']):,} interactions"
    beat: tuple[str, str | None] | None = None
    if heartbeat is not None:
        beat = heartbeat_note(heartbeat, row["last_batch_at"], now, host)
    if is_missing(row["last_batch_at"]):
        summary = (f"Stream: {beat[0] + ' · ' if beat else ''}no batch committed yet · {counts} "
                   f"stored{dead_letter_note(dead, 0)}")
        return summary, (beat[1] if beat else
                         f"The stream has not committed a batch yet — {EMPTY_HINT}.")
    dead_note = dead_letter_note(dead, int(row["batch_dead"]))
    n_batches = int(row["n_batches"])
    summary = (f"Stream: {beat[0] + ' · ' if beat else ''}last batch "
               f"{fmt_age(row['last_batch_at'], now)} · {counts}{dead_note} "
               f"({n_batches:,} batch{'' if n_batches == 1 else 'es'})")
    if beat is not None:
        return summary, beat[1]
    age = age_seconds(row["last_batch_at"], now)
    warning = None
    if age > STALE_AFTER_SECONDS:
        warning = (f"No batch for {fmt_duration(age)} (the last one was committed at "
                   f"{pd.Timestamp(row['last_batch_at']):%Y-%m-%d %H:%M} UTC): the stream is "
                   f"either idle — running, with no new post to read (it commits a batch only "
                   f"when posts arrive) — or stopped. The pages show what was stored until "
                   f"then. If posts are still being ingested, it has stopped: restart it with "
                   f"`polarwatch stream`.")
    return summary, warning
