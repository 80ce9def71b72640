"""Where a live source (``ingest jetstream|mastodon``) resumes, and what the broker must still
hold for resuming there to be right.

A live source resumes at its saved cursor: the position of the last record the broker
confirmed. That is only right while the broker holds what was confirmed. A memory broker that
restarted holds none of it, and the posts the stream had not read yet were gone without a word:
the cursor went on past them. So each save also keeps, as ``ingest file`` does
(:mod:`ingest.sources.progress`), the highest offset the broker confirmed per partition with a
digest of the record there (``delivered``), and the cursor of the first record this source sent
to the broker's current life (``life_start``: the records since then are what the broker holds
of this source).

Before a run, :func:`open_live` asks the broker for the ``delivered`` records
(:func:`ingest.sources.progress.broker_lost`). When it lost them, the run goes back to
``life_start`` and sends everything since again, with a warning naming both positions: the
stream stores each post once (a post sent again is counted as a duplicate). Unlike a file, a
live server cannot be read again from its first record, and it keeps only a window of its past
(Jetstream about a day): what lies before that window cannot be had again, and the server
replays from its oldest. A ``--cursor`` given by the user wins; a progress file written before
these fields existed holds no offsets to compare, and resumes at its cursor as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ingest.sources.base import Position, SourceRecord
from ingest.sources.progress import Delivered, merged, valid_delivered

LOG = logging.getLogger(__name__)


@dataclass
class LiveStart:
    """Where a live run starts, and what its saves carry on."""

    position: Position | None
    was_sent: bool  # the record at `position` was sent (a saved cursor), or is wanted
    life_start: Position | None  # None: the first record this run sends sets it
    delivered: Delivered = field(default_factory=list)

    def fields(self, producer: Any) -> dict[str, Any]:
        """What a save of the progress file adds to the cursor (after the producer's flush)."""
        self.delivered = merged(self.delivered, producer)
        return {"delivered": self.delivered, "life_start": self.life_start}

    def tap(self, records: Iterable[SourceRecord | None],
            including: Callable[[Position], Position | None]) -> Iterator[SourceRecord | None]:
        """`records`, setting :attr:`life_start` from the first one sent when it is unset
        (`including`: the source's cursor that starts with a given record; when it has none,
        where this run started, else that record's own position, which then is not sent
        again)."""
        for rec in records:
            if (self.life_start is None and rec is not None and not rec.replayed
                    and rec.position is not None):
                cursor = including(rec.position)
                self.life_start = (cursor if cursor is not None
                                   else self.position if self.position is not None
                                   else rec.position)
            yield rec


def open_live(saved: dict[str, Any], cursor: Position | None, where: str,
              lost: Callable[[Delivered], str | None]) -> LiveStart:
    """Where the live run of `saved` (its progress file's content, {} when none) starts; a
    `cursor` the user gave wins. `lost` (``broker_lost``) says why the broker no longer holds
    the saved ``delivered`` records, or None. `where` names the source in the warning."""
    position = saved.get("position")
    delivered = valid_delivered(saved.get("delivered"))
    life_start = saved.get("life_start")
    why = lost(delivered) if position is not None and delivered else None
    if why is None:
        if cursor is not None:
            return LiveStart(cursor, False, life_start, delivered)
        return LiveStart(position, True, life_start, delivered)
    head = (f"{where}: the broker no longer holds what this source sent it ({why}): a memory "
            f"broker restarted, or another broker answers at this address?")
    if cursor is not None:
        LOG.warning(f"{head} Starting at --cursor {cursor} as asked")
        return LiveStart(cursor, False, None)
    if life_start is None:
        LOG.warning(f"{head} The progress file does not say where this source began sending "
                    f"to that broker (it was written by an older polarwatch): resuming at "
                    f"{position}. Posts the stream had not read before are lost; pass --cursor "
                    f"with an earlier position to send them again")
        return LiveStart(position, True, None)
    LOG.warning(f"{head} Going back from {position} to {life_start}, where this source began "
                f"sending to that broker, and sending every post since again (the stream "
                f"stores each once); the server replays from its oldest event if it no longer "
                f"holds that far back")
    return LiveStart(life_start, False, None)
