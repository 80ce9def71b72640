"""polarwatch: a streaming social-media polarization monitor.

The spine package holds only the shared contracts: the record contract (:mod:`polarwatch.records`;
:mod:`polarwatch.schemas` generates its schemas, :mod:`polarwatch.validation` checks incoming
records, :mod:`polarwatch.formats` names input file formats),
configuration (:mod:`polarwatch.config`), the DuckDB warehouse schema (:mod:`polarwatch.warehouse`)
and the command line (:mod:`polarwatch.cli`).
"""

__version__ = "0.1.0"
