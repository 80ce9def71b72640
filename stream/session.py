"""The Spark session the stream runs in: Java checked first, the master (spark-submit's
--master stands), local-only driver ports, the driver JVM's options (UTC, thread stack, a UTF-8
locale) and Spark's loggers kept quiet; the Kafka data source registered."""

from __future__ import annotations

import codecs
import contextlib
import locale
import logging
import os
import re
import shutil
import subprocess
import sys
from typing import Any

from polarwatch.broker_probe import CONNECT_TIMEOUT_S, bootstrap_addresses, tcp_refusal
from polarwatch.console import STOP, quiet_children_after_stop
from polarwatch.errors import ConfigError, PrerequisiteError

LOG = logging.getLogger(__name__)


def check_java() -> str:
    """Return `java -version`'s first line, or raise naming what to install."""
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")
                        if os.environ.get("JAVA_HOME") else None) or shutil.which("java")
    hint = ("Spark needs a Java 17 runtime: install it (Debian/Ubuntu: `apt-get install -y "
            "openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) or set JAVA_HOME")
    if java is None:
        raise PrerequisiteError(f"`java` was not found on PATH. {hint}")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    first = (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else ""
    if '"17' not in first and '"21' not in first:
        raise PrerequisiteError(f"found {first!r} at {java}; {hint}")
    return first


# Set for the Python driver that spark-submit launches, with the JVM already running (pyspark's
# java_gateway.launch_gateway connects to it instead of starting one): what tells a driver
# under spark-submit, whose --master must stand, from one that starts its own Spark.
SUBMIT_GATEWAY_ENV = "PYSPARK_GATEWAY_PORT"
LOCAL_ONLY = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}


def submitted_conf() -> Any | None:
    """The SparkConf spark-submit gave this driver (--master, --conf, spark-defaults.conf) when
    spark-submit launched it; None otherwise."""
    if SUBMIT_GATEWAY_ENV not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()  # connects to spark-submit's JVM: no process starts
    return SparkConf()


def master_in_effect(configured: str) -> tuple[str, Any | None]:
    """The master Spark runs on, and spark-submit's SparkConf when spark-submit launched this
    driver with a master (which then stands over `configured`), else None."""
    conf = submitted_conf()
    submitted = conf.get("spark.master", None) if conf is not None else None
    return (submitted, conf) if submitted else (configured, None)


# The masters Spark accepts (its SparkMasterRegex, and what SparkSubmit allows): anything else
# failed inside the JVM with a Java and a Python trace (~50 lines, exit 1), and a standalone
# master that does not answer only after a minute of retries (~200 lines)
LOCAL_MASTER = re.compile(r"local(\[([0-9]+|\*)(\s*,\s*[0-9]+)?\]"
                          r"|-cluster\[\s*[0-9]+\s*,\s*[0-9]+\s*,\s*[0-9]+\s*\])?")
MASTER_FORMS = ("local[N] (N cores in this process; local[*]: all of them), "
                "spark://HOST:PORT (a standalone cluster, docs/cluster.md), yarn or k8s://URL")


def check_master(master: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse, in one line and before any JVM starts, a `[spark] master` Spark would refuse
    (``garbage``, ``""``, ``local[0]``) and a standalone master (``spark://HOST:PORT``, or a
    comma-separated list of them) none of whose addresses accepts a connection."""
    key = "[spark] master (env POLARWATCH_SPARK_MASTER)"
    local = LOCAL_MASTER.fullmatch(master)
    if local is not None:
        if local[2] is not None and local[2] != "*" and int(local[2]) < 1:
            raise ConfigError(f"{key} is {master!r}: a local master needs at least 1 core; give "
                              f"local[1] or more, or local[*]")
        return
    if master == "yarn" or master.startswith("k8s://"):
        return
    if not master.startswith("spark://"):
        raise ConfigError(f"{key} is {master!r}, which is not a Spark master; give {MASTER_FORMS}")
    addresses = bootstrap_addresses(master.removeprefix("spark://"))
    if addresses is None:
        raise ConfigError(f"{key} is {master!r}: give spark://HOST:PORT (several masters: "
                          f"spark://HOST1:PORT1,HOST2:PORT2)")
    reasons = []
    for host, port in addresses:
        why = tcp_refusal(host, port, timeout)
        if why is None:
            return
        reasons.append(why if len(addresses) == 1 else f"{host}:{port}: {why}")
    raise PrerequisiteError(f"no Spark master answers at {master} ({'; '.join(reasons)}); start "
                            f"it (docs/cluster.md), or fix {key}")


# The driver's thread stacks. When a micro-batch's foreachBatch (the sink, in Python) fails,
# Spark matches the Py4J error's text against a regular expression,
# `StreamExecution.PROXY_ERROR`, that recurses once per character (`(.|\r\n|\r|\n)*`). The text
# carries a Java stack trace, ~10,000 characters; at the JVM's default stack size of 1 MiB,
# 2,000 characters already overflow it, and the StackOverflowError kills the stream execution
# thread with over a thousand lines of trace (seen when a stop cancelled a batch inside the
# sink). 64 MiB matches 100,000 characters (tests/stream/test_spark_stack.py); a thread's stack
# takes memory only as deep as it is used.
THREAD_STACK = "64m"


def _utf8_jvm_locale() -> None:
    """The JVM takes its file-name encoding from the locale: under LC_ALL=C (ASCII) it cannot
    encode a working directory or checkpoint path with non-ASCII characters and fails to start
    (ExceptionInInitializerError) or to write offsets ("Malformed input"). Under a locale that
    is not UTF-8 the JVM and the Python workers are started with LC_ALL=C.UTF-8."""
    codeset = locale.nl_langinfo(locale.CODESET)  # the C library's: what the JVM reads
    try:  # (not Python's preferred encoding: UTF-8 mode makes that utf-8 under LC_ALL=C)
        utf8 = codecs.lookup(codeset).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        LOG.debug(f"locale codeset {codeset}: Spark runs with LC_ALL=C.UTF-8")
        os.environ["LC_ALL"] = "C.UTF-8"


def build_spark(master: str, app_name: str = "polarwatch", *,
                quiet_after_sigterm: bool = False, explicit_master: bool = True) -> Any:
    """A SparkSession tuned for small local clusters (UTC, Arrow, quiet console).
    `master`: where a driver polarwatch starts runs; under spark-submit its --master stands
    instead, with a warning when `explicit_master` (the user set `master`, not a default) and
    they differ. A local master binds the driver's ports to 127.0.0.1.
    `quiet_after_sigterm`: from a SIGTERM on, what Spark's JVM and its workers print is dropped
    (polarwatch.console.quiet_children_after_stop; -v keeps it)."""
    check_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from stream.kafka_source import KafkaDataSource

    builder = SparkSession.builder.appName(app_name)
    effective, given = master_in_effect(master)
    if given is None:  # (spark-submit checked its own --master)
        check_master(master)
        builder = builder.master(master)
    elif explicit_master and effective != master:
        LOG.warning(f"spark-submit's --master {effective} wins over the config's [spark] "
                    f"master {master!r}; drop one of the two to silence this")
    if effective.startswith("local"):
        # the driver's RPC and block-manager ports otherwise bind to the host's address, where
        # anyone on the network can reach an unauthenticated Spark; a cluster's driver must be
        # reachable by its executors, so there the user's spark.driver.* settings stand (and
        # under spark-submit, its --conf of them)
        for key, value in LOCAL_ONLY.items():
            if given is None or not given.contains(key):
                builder = builder.config(key, value)
        if given is None:  # the JVM's own address too: without it Spark warns that the host
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # name is loopback and
            # picks the first interface's address ("using 192.0.2.2 instead (on eth0)")
    builder = (builder
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.driver.extraJavaOptions", f"-Duser.timezone=UTC -Xss{THREAD_STACK}"))
    _utf8_jvm_locale()
    with (quiet_children_after_stop(keep=LOG.isEnabledFor(logging.DEBUG))
          if quiet_after_sigterm else contextlib.nullcontext()):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    _quiet_failures(spark)
    spark.dataSource.register(KafkaDataSource)
    return spark


def _quiet_failures(spark: Any) -> None:
    """pyspark's accumulator server prints a traceback when the JVM goes away: after a SIGTERM
    to the whole process group, which ends the JVM with the driver, that is no error."""
    server = getattr(spark.sparkContext, "_accumulatorServer", None)
    if server is not None:
        loud = server.handle_error

        def handle_error(request: Any, address: Any) -> None:
            if not STOP.is_set():
                loud(request, address)
        server.handle_error = handle_error
