"""`polarwatch report`: the HTML report, apart from modelling (it only reads ``forecasts``)."""

from forecast.reports.gather import parse_duration, parse_since
from forecast.reports.report import report_loop, write_report

__all__ = ["parse_duration", "parse_since", "report_loop", "write_report"]
