"""polarwatch: a streaming social-media polarization monitor.

The spine package holds only the shared contracts: the record schema (:mod:`polarwatch.records`),
configuration (:mod:`polarwatch.config`), the DuckDB warehouse schema (:mod:`polarwatch.warehouse`)
and the command line (:mod:`polarwatch.cli`).
"""

__version__ = "0.1.0"
