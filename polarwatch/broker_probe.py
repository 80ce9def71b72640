"""Whether a Kafka broker answers at ``[broker] bootstrap_servers``: one TCP connect per
``host:port``, before a stage hands the list to kafka-python.

Both stages that talk to the broker call :func:`require_broker` first: ``polarwatch stream``
(``stream/preflight.py``; without it a stream with no broker took minutes of Spark start-up and
supervised restarts to fail) and ``ingest/broker.py``'s ``ensure_topics`` (kafka-python's admin
client waits its whole bootstrap timeout before giving up). A refused or silent address fails
in seconds, in one line that says what each address did and how to fix it.

A TCP connect says only that something listens: whether it speaks Kafka is the client's to find
out, so :func:`require_broker` returns the address that answered for that client's error to name.

Also :func:`reader_consumer`, the Kafka consumer of every stage that only reads.

Stdlib and the spine only (kafka-python imported where a consumer is made).
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

from polarwatch.errors import BrokerError

LOG = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0  # one address; a live broker on a LAN accepts in milliseconds


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]] | None:
    """The ``(host, port)`` of each entry of a bootstrap list (``host:port``, ``[v6]:port``,
    comma-separated); None when an entry has another form, which kafka-python may still
    understand (then nothing is checked here and the client finds out)."""
    found = []
    for entry in (e.strip() for e in bootstrap.split(",")):
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            return None
        found.append((host, int(port)))
    return found or None


def tcp_refusal(host: str, port: int, timeout: float) -> str | None:
    """None when `host`:`port` accepts a TCP connection within `timeout`, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"{host} does not resolve"
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except OSError as exc:
        if exc.errno == errno.ECONNREFUSED:
            return "connection refused"
        return exc.strerror or type(exc).__name__


def how_to_fix(embedded: bool) -> str:
    """What to do when no broker answers: start the embedded one (`embedded`, ``[broker]
    embedded``) or that Kafka, or point ``[broker] bootstrap_servers`` elsewhere."""
    if embedded:
        return ("start the embedded broker with `polarwatch broker start`, or point [broker] "
                "bootstrap_servers (POLARWATCH_BROKER_BOOTSTRAP_SERVERS) at your Kafka")
    return ("start that Kafka, or fix [broker] bootstrap_servers "
            "(POLARWATCH_BROKER_BOOTSTRAP_SERVERS)")


def require_broker(bootstrap: str, *, embedded: bool,
                   timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """The first bootstrap address (``host:port``) that accepts a TCP connection, trying them
    in order; None when `bootstrap` is not a ``host:port`` list (not checked). When none
    accepts, BrokerError in one line: the addresses, what each said, and how to fix it
    (`polarwatch` exits 2). `embedded`: the fix names `polarwatch broker start` (else: start
    that Kafka)."""
    addresses = bootstrap_addresses(bootstrap)
    if addresses is None:
        LOG.debug(f"bootstrap_servers {bootstrap!r} is not a host:port list: not checked")
        return None
    reasons = []
    for host, port in addresses:
        why = tcp_refusal(host, port, timeout)
        if why is None:
            LOG.debug(f"the broker at {host}:{port} answers")
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reasons.append(why if len(addresses) == 1 else f"{host}:{port}: {why}")
    tried = f"{len(addresses)} address{'es' if len(addresses) > 1 else ''} tried"
    raise BrokerError(f"no Kafka broker answers at {bootstrap} ({tried}: "
                      f"{'; '.join(reasons)}); {how_to_fix(embedded)}")


def reader_consumer(**config: Any) -> Any:
    """A kafka-python ``KafkaConsumer`` that never makes a topic. A reader that asks a broker
    for a topic it lost (a memory broker restarted) must not make it again with the broker's
    default partitions (4 on the embedded one): ingest makes it with [topics] partitions.
    kafka-python 3.0.12 takes ``allow_auto_create_topics`` but does not hand it to the metadata
    requests it sends (its ``ClusterMetadata`` keeps the default, True), so it is set there too.
    Measured on the embedded broker: an assigned consumer made the lost topic again within
    3 s of the restart, with 4 partitions instead of 1."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(allow_auto_create_topics=False, **config)
    cluster_config = getattr(getattr(consumer, "_cluster", None), "config", None)
    if isinstance(cluster_config, dict):
        cluster_config["allow_auto_create_topics"] = False
    return consumer
