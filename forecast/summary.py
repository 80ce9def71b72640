"""What one ``polarwatch forecast`` run did (:class:`ForecastSummary`): the counts its log line
and ``forecast done: ...`` give, kept apart from :mod:`forecast.run`, which fills them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from forecast.alarms import FLAG_ANTICIPATORY, FLAG_REACTIVE
from forecast.models import FLAG_DIP, FLAG_FORECAST, FLAG_SPIKE

FLAG_ORDER = (FLAG_SPIKE, FLAG_DIP, FLAG_REACTIVE, FLAG_ANTICIPATORY)


@dataclass
class ForecastSummary:
    """What :func:`run_forecast` did: ``topics`` fitted, ``skipped`` ({topic: reason}),
    ``trimmed`` ({topic: the older windows left out, forecast.series.MAX_SERIES_WINDOWS}),
    ``points`` (observed windows written), raised flags per class, ``forecast_points`` (future
    rows written), ``alerts`` (the alerting counts, None without webhooks) and ``seconds``."""

    metric: str
    topics: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    trimmed: dict[str, str] = field(default_factory=dict)
    points: int = 0
    spikes: int = 0
    dips: int = 0
    reactive: int = 0
    anticipatory: int = 0
    forecast_points: int = 0
    alerts: dict[str, int] | None = None
    seconds: float = 0.0

    @property
    def flags(self) -> int:
        """All raised flags."""
        return self.spikes + self.dips + self.reactive + self.anticipatory

    def add(self, rows: pd.DataFrame) -> dict[str, int]:
        """Count one series' ``forecasts`` rows in; returns its flag counts."""
        flags = rows["flag"]
        counts = {f: int((flags == f).sum()) for f in FLAG_ORDER}
        self.topics += 1
        self.points += int((flags != FLAG_FORECAST).sum())
        self.forecast_points += int((flags == FLAG_FORECAST).sum())
        for f, key in zip(FLAG_ORDER, ("spikes", "dips", "reactive", "anticipatory"),
                          strict=True):
            setattr(self, key, getattr(self, key) + counts[f])
        return counts

    def __str__(self) -> str:
        return (f"{self.metric}: {self.topics} topic(s), {len(self.skipped)} skipped, "
                f"{self.points} point(s), {self.flags} flag(s) (spikes {self.spikes}, dips "
                f"{self.dips}, reactive {self.reactive}, anticipatory {self.anticipatory}), "
                f"{self.forecast_points} forecast point(s), {self._alerts_text()}, "
                f"{self.seconds} s")

    def _alerts_text(self) -> str:
        if (a := self.alerts) is None:  # no [alerts] webhooks, or nothing was forecast
            return "no alerts sent (no [alerts] webhooks)" if self.topics else "no alerts sent"
        return (f"alerts: {a['active']} active, {a['opened']} new, {a['resolved']} resolved, "
                f"{a['sent']} sent, {a['failed'] + a['deferred']} pending")
