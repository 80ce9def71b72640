"""The driver's threads have stack enough for Spark's own check of a failed foreachBatch.

Spark matches the Py4J error text of a failed foreachBatch (the sink) against
`StreamExecution.PROXY_ERROR`, a regular expression that recurses once per character. Seen in
CI: a micro-batch cancelled mid-sink by a stop gave a ~10,000-character error text, the check
overflowed the 1 MiB default stack, and the stream execution thread died with a
StackOverflowError (over a thousand lines of trace) instead of ending its query cleanly.
"""

from __future__ import annotations

from typing import Any

from stream.session import THREAD_STACK

# a Py4J error text as a cancelled sink raises it: the Python call, then a long Java stack trace
PY4J_ERROR = ("py4j.protocol.Py4JJavaError: An error occurred while calling o778.getResult.\n"
              + "\tat org.apache.spark.util.SparkThreadUtils$.awaitResult(SparkThreadUtils.scala:70)\n"
              * 1250 + ": java.lang.InterruptedException")


def test_the_stream_check_of_a_long_py4j_error_does_not_overflow_the_stack(spark: Any) -> None:
    assert len(PY4J_ERROR) > 100_000
    runtime = spark._jvm.org.apache.spark.sql.execution.streaming.runtime
    check = getattr(getattr(runtime, "StreamExecution$"), "MODULE$").PROXY_ERROR()
    # runs on a Py4J server thread, which gets the driver's default stack size, as the stream
    # execution thread does; 1 MiB overflows here (Py4JJavaError: java.lang.StackOverflowError)
    assert check.findFirstIn(PY4J_ERROR).isDefined(), THREAD_STACK


def test_the_stack_size_is_set_on_the_driver(spark: Any) -> None:
    options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    assert f"-Xss{THREAD_STACK}" in options.split()
