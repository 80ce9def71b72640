"""A Kafka that wants TLS (`[broker] security_protocol = "SSL"`, `ssl_cafile`): every client
polarwatch opens — topic creation, the producer, the Spark source, the dead-letter drain and the
offset commits — speaks TLS to it. The broker is Tansu behind a TLS-terminating proxy (Tansu's
own TLS flags did not take here) that advertises the proxy, so no byte goes around it."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kafka import KafkaAdminClient

from ingest.broker import ensure_topics, free_port, port_open, tansu_binary
from ingest.producer import PostProducer
from polarwatch.config import load_config
from polarwatch.warehouse import connect
from stream.group_offsets import STREAM_GROUP
from stream.job import run_stream
from tests.kafka_helpers import stream_env

REPO = Path(__file__).resolve().parents[2]


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signed for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = dt.datetime.now(dt.UTC)

    def build(subject: str, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey,
              signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
        builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("polarwatch test CA", None, ca_key, ca_key, True)
    cert = build("127.0.0.1", ca.subject, key, ca_key, False)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TlsProxy:
    """TLS on `port`, plaintext to the broker at `upstream`; counts completed handshakes."""

    def __init__(self, port: int, upstream: int, cert: Path, key: Path) -> None:
        self.upstream, self.handshakes, self.refused = upstream, 0, 0
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.5)
        self.running = True
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.running:
            try:
                raw, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            client = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLEOFError, ConnectionResetError):  # a port probe: connect, close
            raw.close()
            return
        except (ssl.SSLError, OSError):
            self.refused += 1  # spoke, but not TLS: nothing forwarded
            raw.close()
            return
        self.handshakes += 1
        upstream = socket.create_connection(("127.0.0.1", self.upstream))

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                with contextlib.suppress(OSError):
                    while data := src.recv(65536):
                        dst.sendall(data)
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
        pump(upstream, client)

    def close(self) -> None:
        self.running = False
        self.listener.close()


@pytest.fixture
def tls_kafka(tmp_path: Path) -> Iterator[tuple[str, Path, TlsProxy]]:
    """(bootstrap, CA file, proxy): Tansu on a private port, reachable only through TLS."""
    ca, cert, key = _certificates(tmp_path)
    inner, outer = free_port(), free_port()
    log = (tmp_path / "tansu.log").open("wb")
    broker = subprocess.Popen([str(tansu_binary()), "broker", "--listener-url",
                               f"tcp://127.0.0.1:{inner}", "--advertised-listener-url",
                               f"tcp://127.0.0.1:{outer}", "--storage-engine", "memory://tansu/"],
                              stdout=log, stderr=subprocess.STDOUT)
    proxy = TlsProxy(outer, inner, cert, key)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", inner):
            assert time.monotonic() < deadline and broker.poll() is None, "tansu did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{outer}", ca, proxy
    finally:
        proxy.close()
        broker.terminate()
        broker.wait(10)
        log.close()


def _post(i: int) -> dict[str, object]:
    created = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2, minutes=-i)
    return {"id": f"tls-{i}", "platform": "test", "author_id": "u", "topic": "gun_control",
            "text": "We need gun control now." if i % 2 == 0 else "Exactly, background checks.",
            "created_at": created.isoformat(), "conversation_id": f"c{i // 2}",
            "parent_id": None if i % 2 == 0 else f"tls-{i - 1}"}


@pytest.mark.slow
def test_every_client_speaks_tls_to_a_kafka_that_wants_it(
        tls_kafka: tuple[str, Path, TlsProxy], spark: object, tmp_path: Path) -> None:
    bootstrap, ca, proxy = tls_kafka
    cfg = load_config(REPO / "polarwatch.toml", env=stream_env(
        bootstrap, tmp_path, POLARWATCH_BROKER_EMBEDDED="false",
        POLARWATCH_BROKER_SECURITY_PROTOCOL="SSL", POLARWATCH_BROKER_SSL_CAFILE=str(ca)))
    assert cfg.kafka_options() == {"security_protocol": "SSL", "ssl_check_hostname": True,
                                   "ssl_cafile": str(ca)}
    ensure_topics(bootstrap, [cfg.topics.posts, cfg.topics.dead_letter], 2,
                  **cfg.kafka_options())
    with PostProducer(bootstrap, cfg.topics.posts, cfg.topics.dead_letter,
                      **cfg.kafka_options()) as producer:
        for i in range(20):
            producer.send_obj(_post(i))
        producer.send_raw(b'{"not": "a post"}')  # -> the dead-letter topic, over TLS too
    run_stream(cfg, spark=spark)  # the Spark source's workers and the drain connect over TLS
    with connect(cfg.warehouse_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchall() == [(20,)]
        assert con.execute("SELECT count(*) FROM interactions").fetchall() == [(10,)]
        assert con.execute("SELECT source FROM dead_letters").fetchall() == [("ingest",)]
    assert proxy.handshakes >= 3 and proxy.refused == 0
    # the drain committed the dead-letter topic's consumed offset to the group, over TLS (the
    # posts topic's last batch is reported by the next run: see test_broker_restart)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **cfg.kafka_options())
    try:
        got = admin.list_group_offsets(STREAM_GROUP)[STREAM_GROUP]
    finally:
        admin.close()
    assert {tp.topic: m.offset for tp, m in got.items()} == {cfg.topics.dead_letter: 1}, got


@pytest.mark.slow
def test_a_plaintext_client_gets_nothing_through(tls_kafka: tuple[str, Path, TlsProxy]) -> None:
    bootstrap, _, proxy = tls_kafka
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    with pytest.raises(KafkaError):
        KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                      max_block_ms=3000).send("t", b"x").get(timeout=5)
    assert proxy.refused >= 1 and proxy.handshakes == 0  # refused, nothing forwarded
