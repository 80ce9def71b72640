"""Whether a Kafka broker answers at ``[broker] bootstrap_servers``: one TCP connect per
``host:port``, before a stage hands the list to kafka-python.

Both stages that talk to the broker call :func:`require_broker` first: ``polarwatch stream``
(``stream/preflight.py``; without it a stream with no broker took minutes of Spark start-up and
supervised restarts to fail) and ``ingest/broker.py``'s ``ensure_topics`` (kafka-python's admin
client waits its whole bootstrap timeout before giving up). A refused or silent address fails
in seconds, in one line that says what each address did and how to fix it.

A TCP connect says only that something listens: whether it speaks Kafka is the client's to find
out, so :func:`require_broker` returns the address that answered for that client's error to name.

Stdlib and the spine only.
"""

from __future__ import annotations

import errno
import logging
import socket

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


def _why_not(host: str, port: int, timeout: float) -> str | None:
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
        why = _why_not(host, port, timeout)
        if why is None:
            LOG.debug(f"the broker at {host}:{port} answers")
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reasons.append(why if len(addresses) == 1 else f"{host}:{port}: {why}")
    tried = f"{len(addresses)} address{'es' if len(addresses) > 1 else ''} tried"
    raise BrokerError(f"no Kafka broker answers at {bootstrap} ({tried}: "
                      f"{'; '.join(reasons)}); {how_to_fix(embedded)}")
