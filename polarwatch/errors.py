"""Exception tree.

    PolarwatchError
    ├── ConfigError          bad or missing configuration (names the key and the file)
    ├── SchemaError          a record does not match the contract (names the field)
    ├── BrokerError          the embedded broker cannot start / is unreachable
    ├── PrerequisiteError    a system prerequisite (Java, a binary) is missing
    ├── BackendError         an extractor backend failed or is not installed
    ├── WarehouseMissing     the DuckDB file does not exist yet (also a FileNotFoundError)
    ├── WarehouseUnreadable  the warehouse path is not a DuckDB file (a directory, another file)
    └── WarehouseLocked      another process kept the DuckDB file's lock through the retries
"""

from __future__ import annotations


class PolarwatchError(Exception):
    """Root of every error polarwatch raises on purpose."""


class ConfigError(PolarwatchError):
    pass


class SchemaError(PolarwatchError):
    pass


class BrokerError(PolarwatchError):
    pass


class PrerequisiteError(PolarwatchError):
    pass


class BackendError(PolarwatchError):
    pass


class WarehouseMissing(PolarwatchError, FileNotFoundError):
    """A reader found no DuckDB file: nothing has been stored yet."""


class WarehouseUnreadable(PolarwatchError):
    """The warehouse path exists but DuckDB cannot open it (not a lock: those are retried)."""


class WarehouseLocked(PolarwatchError):
    """Another process held the DuckDB file's lock through :func:`polarwatch.warehouse.connect`'s
    retries (:func:`polarwatch.warehouse.lock_explained` raises it; connect re-raises DuckDB's
    own error, which callers that wait on the writer handle)."""
