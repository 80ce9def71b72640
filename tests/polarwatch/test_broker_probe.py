"""The one broker reachability probe both stages call (`polarwatch/broker_probe.py`), against
real sockets on 127.0.0.1: refused, listening, silent (a full backlog), unresolvable."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polarwatch.broker_probe import bootstrap_addresses, reader_consumer, require_broker
from polarwatch.errors import BrokerError

PORTS = range(19800, 19850)  # this file's share of the machine's ports


def _bound(avoid: int = 0) -> socket.socket:
    """A socket bound to a free port of PORTS on 127.0.0.1 (not listening yet)."""
    for port in (p for p in PORTS if p != avoid):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", port))
            return sock
        except OSError:
            sock.close()
    raise AssertionError(f"no free port in {PORTS.start}-{PORTS.stop - 1}")


@pytest.fixture
def closed_port() -> int:
    """A port of PORTS where nothing listens: connections to it are refused."""
    with _bound() as sock:
        return int(sock.getsockname()[1])


@pytest.fixture
def listening(closed_port: int) -> Iterator[int]:
    """Another port of PORTS, with a real TCP listener (what the probe connects to: no Kafka
    needed)."""
    with _bound(avoid=closed_port) as sock:
        sock.listen()
        yield int(sock.getsockname()[1])


def test_an_external_kafka_is_not_told_to_start_the_embedded_broker(closed_port: int) -> None:
    address = f"127.0.0.1:{closed_port}"
    with pytest.raises(BrokerError) as caught:
        require_broker(address, embedded=False)
    assert str(caught.value) == (
        f"no Kafka broker answers at {address} (1 address tried: connection refused); start "
        "that Kafka, or fix [broker] bootstrap_servers (POLARWATCH_BROKER_BOOTSTRAP_SERVERS)")
    with pytest.raises(BrokerError, match=r"; start the embedded broker with "
                       r"`polarwatch broker start`, or point \[broker\] bootstrap_servers"):
        require_broker(address, embedded=True)


def test_one_answering_address_of_several_is_enough(closed_port: int, listening: int) -> None:
    both = f"127.0.0.1:{closed_port},127.0.0.1:{listening}"
    assert require_broker(both, embedded=True) == f"127.0.0.1:{listening}"
    assert require_broker(f"localhost:{listening}", embedded=True) == f"localhost:{listening}"
    with pytest.raises(BrokerError, match=r"\(2 addresses tried: "
                       rf"127\.0\.0\.1:{closed_port}: connection refused; "
                       r"no-such-host\.invalid:9092: no-such-host\.invalid does not resolve\)"):
        require_broker(f"127.0.0.1:{closed_port},no-such-host.invalid:9092", embedded=True)


def test_an_ipv6_address_that_answers_is_named_with_brackets() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        sock.listen()
        port = int(sock.getsockname()[1])
        assert require_broker(f"[::1]:{port}", embedded=False) == f"[::1]:{port}"


def test_an_address_that_never_answers_costs_the_timeout_once() -> None:
    with _bound() as sock:  # a listener whose backlog is full drops new connections' SYNs
        sock.listen(0)
        port = int(sock.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # fills the backlog
            t0 = time.monotonic()
            with pytest.raises(BrokerError, match=r"\(1 address tried: no answer in 0\.5 s\)"):
                require_broker(f"127.0.0.1:{port}", embedded=True, timeout=0.5)
            assert time.monotonic() - t0 < 2.0


def test_a_list_it_cannot_parse_is_left_to_the_client(closed_port: int) -> None:
    # nothing listens at closed_port, but "kafka" is no host:port: not probed, not refused
    assert require_broker(f"kafka,127.0.0.1:{closed_port}", embedded=True) is None


def test_bootstrap_lists() -> None:
    assert bootstrap_addresses("a:1, [::1]:9092,") == [("a", 1), ("::1", 9092)]
    # forms this does not parse are left to kafka-python (not checked, not refused)
    assert bootstrap_addresses("kafka") is None
    assert bootstrap_addresses("a:1,b:port") is None
    assert bootstrap_addresses("a:0") is None
    assert bootstrap_addresses("") is None


@pytest.mark.slow
def test_a_reader_does_not_make_again_a_topic_its_restarted_broker_lost(tmp_path: Path) -> None:
    """A consumer that had read a topic asks for it again after a memory broker's restart.
    kafka-python 3.0.12 sent those metadata requests allowing the broker to make the topic,
    whatever the consumer was told: the embedded broker made it with 4 partitions, and ingest
    then found it there and kept it (real broker)."""
    from kafka import KafkaProducer, TopicPartition
    from kafka.admin import KafkaAdminClient

    from ingest.broker import EmbeddedBroker, ensure_topics, free_port

    broker = EmbeddedBroker(free_port(), tmp_path / "broker")
    broker.start()
    try:
        ensure_topics(broker.bootstrap, ["t"], 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send("t", b"x").get(30)
        producer.close()
        consumer = reader_consumer(bootstrap_servers=broker.bootstrap, group_id=None)
        tp = TopicPartition("t", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        assert consumer.poll(timeout_ms=5000)
        broker.stop()
        broker.start()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            time.sleep(4)  # the consumer's metadata refresh, which made it within 3 s
            assert "t" not in admin.list_topics()
        finally:
            admin.close()
            consumer.close()
    finally:
        broker.stop()
