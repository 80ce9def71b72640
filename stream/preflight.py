"""What ``polarwatch stream`` checks before Spark starts: that a Kafka broker answers at
``[broker] bootstrap_servers`` (:func:`polarwatch.broker_probe.require_broker`).

Without it a stream with no broker took minutes to fail (Spark's start, then every supervised
restart of stream/supervise.py timing out on the broker); a TCP connect says the same in
seconds. It checks only the start: a broker that goes away later is the supervisor's, which
restarts the query from its checkpoint as before.
"""

from __future__ import annotations

from polarwatch.broker_probe import CONNECT_TIMEOUT_S, require_broker
from polarwatch.config import Config


def check_broker(cfg: Config, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """:func:`require_broker` for ``[broker]``."""
    require_broker(cfg.broker.bootstrap_servers, embedded=cfg.broker.embedded, timeout=timeout)
