"""`polarwatch report`: the HTML report, apart from modelling (it only reads ``forecasts``)."""

from forecast.reports.report import parse_duration, parse_since, report_loop, write_report

__all__ = ["parse_duration", "parse_since", "report_loop", "write_report"]
