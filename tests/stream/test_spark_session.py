"""The local Spark session the stream runs in listens on loopback only: its driver RPC and
block-manager ports are unauthenticated, so a port on the host's address would let anyone on the
network talk to the driver."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import psutil
import pytest

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.mark.slow
def test_a_local_spark_listens_on_loopback_only(spark: SparkSession) -> None:
    spark.range(10).count()  # a job: every port is up
    listening = [(child.name(), conn.laddr.ip, conn.laddr.port)
                 for child in psutil.Process().children(recursive=True)
                 if child.name() == "java"
                 for conn in child.net_connections(kind="inet")
                 if conn.status == psutil.CONN_LISTEN]
    assert len(listening) >= 2, listening  # the driver's RPC and block manager, at least
    outside = [(name, ip, port) for name, ip, port in listening
               if not ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback]
    assert outside == [], f"Spark listens beyond loopback: {outside}"
