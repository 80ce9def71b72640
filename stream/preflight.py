"""What ``polarwatch stream`` checks before Spark starts: that a Kafka broker answers at
``[broker] bootstrap_servers``.

Without it a stream with no broker took minutes to fail (Spark's start, then every supervised
restart of stream/supervise.py timing out on the broker); a TCP connect says the same in
seconds. It checks only the start: a broker that goes away later is the supervisor's, which
restarts the query from its checkpoint as before.

Stdlib and the spine only, so it can move to ``polarwatch/`` when another stage wants it.
"""

from __future__ import annotations

import errno
import logging
import socket

from polarwatch.config import Config
from polarwatch.errors import BrokerError

LOG = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0  # one address; a live broker on a LAN accepts in milliseconds


def bootstrap_addresses(bootstrap: str) -> list[tuple[str, int]] | None:
    """The ``(host, port)`` of each entry of a bootstrap list (``host:port``, ``[v6]:port``,
    comma-separated); None when an entry has another form, which kafka-python may still
    understand (then nothing is checked here and the stream finds out)."""
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


def check_broker(cfg: Config, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:func:`require_broker` for ``[broker]``."""
    require_broker(cfg.broker.bootstrap_servers, embedded=cfg.broker.embedded, timeout=timeout)


def require_broker(bootstrap: str, *, embedded: bool,
                   timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Return when one bootstrap address accepts a connection; else raise BrokerError in one
    line: the addresses, what each said, and how to fix it (`polarwatch` exits 2).
    `embedded`: the fix names `polarwatch broker start` (else: start that Kafka)."""
    addresses = bootstrap_addresses(bootstrap)
    if addresses is None:
        LOG.debug(f"bootstrap_servers {bootstrap!r} is not a host:port list: not checked")
        return
    reasons = []
    for host, port in addresses:
        why = _why_not(host, port, timeout)
        if why is None:
            LOG.debug(f"the broker at {host}:{port} answers")
            return
        reasons.append(why if len(addresses) == 1 else f"{host}:{port}: {why}")
    fix = ("start the embedded broker with `polarwatch broker start`, or point [broker] "
           "bootstrap_servers (POLARWATCH_BROKER_BOOTSTRAP_SERVERS) at your Kafka"
           if embedded else
           "start that Kafka, or fix [broker] bootstrap_servers "
           "(POLARWATCH_BROKER_BOOTSTRAP_SERVERS)")
    tried = f"{len(addresses)} address{'es' if len(addresses) > 1 else ''} tried"
    raise BrokerError(f"no Kafka broker answers at {bootstrap} ({tried}: "
                      f"{'; '.join(reasons)}); {fix}")
