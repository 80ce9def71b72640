"""Forecast stage: per-topic series from DuckDB, one state-space model per topic, flags.

- :mod:`forecast.series`: ``topic_windows`` -> long table ``series_id, ts, y`` (regular, NaN gaps)
- :mod:`forecast.models`: arrays in, a ``ForecastFit`` out (one-step-ahead band, horizon forecast)
- :mod:`forecast.detect`: the causal detector (:mod:`forecast.holt_winters` learns,
  :mod:`forecast.scorers` score, :mod:`forecast.alarms` decides); bands and scores are calibrated
  in :mod:`forecast.calibration`, seasons come from :mod:`forecast.seasons`
- :mod:`forecast.run`: :func:`run_forecast` reads, fits and writes ``forecasts``
- :mod:`forecast.alerts`: delivery of the flags (webhooks, ``alert_state``), apart from modelling
- :mod:`forecast.reports`: the HTML report (reads ``forecasts``; imports no modelling code)
"""

from forecast.run import run_forecast

__all__ = ["run_forecast"]
