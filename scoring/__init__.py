"""Pure scoring: extractors (text → labels), the paper's rule table and polarization indices.

Nothing in this package imports Kafka, Spark or DuckDB; test it with plain lists.
"""
