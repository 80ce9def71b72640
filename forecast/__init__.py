"""Forecast stage: per-topic series from DuckDB, one state-space model per topic, flags.

- :mod:`forecast.series`: ``topic_windows`` -> long table ``series_id, ts, y`` (regular, NaN gaps)
- :mod:`forecast.models`: arrays in, dict out (one-step-ahead intervals, flags, horizon forecast)
- :mod:`forecast.run`: :func:`run_forecast` reads, fits and writes ``forecasts``
"""

from forecast.run import run_forecast

__all__ = ["run_forecast"]
