"""The bus over TLS with a username and password, against a Mosquitto that allows nothing else."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from obsy.bus import Bus
from tests.support.mosquitto import MosquittoBroker

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None, reason="needs openssl"
    ),
]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1."""
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=obsy-test-ca",
            "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "1", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return ca_crt, crt, key


@pytest.fixture
def secure_broker(tmp_path):
    ca, cert, key = make_certificates(tmp_path)
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "weather", "correct horse"], check=True)
    broker = MosquittoBroker(tmp_path, persistence=False)
    config = broker.config_path.read_text().replace("allow_anonymous true", "allow_anonymous false")
    config += f"password_file {passwd}\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
    broker.config_path.write_text(config)
    broker.start()
    broker.ca = ca
    yield broker
    broker.stop()


def test_tls_and_password_connect(secure_broker):
    config = secure_broker.broker_config(
        username="weather", password="correct horse", tls={"enabled": True, "ca_certs": str(secure_broker.ca)}
    )
    bus = Bus(config, "weather")
    try:
        assert bus.start(wait=10), "the bus must connect over TLS with the right password"
        received = []
        bus.subscribe("obsy/weather/echo", lambda topic, value: received.append(value), decode="text")
        bus.publish("obsy/weather/echo", "hello").wait_for_publish(5)
        bus.wait_idle()
        for _ in range(50):
            if received:
                break
            bus.wait_idle(0.1)
        assert received == ["hello"]
    finally:
        bus.stop()


def test_wrong_password_is_refused(secure_broker, caplog):
    config = secure_broker.broker_config(
        username="weather", password="wrong", tls={"enabled": True, "ca_certs": str(secure_broker.ca)}
    )
    bus = Bus(config, "weather")
    try:
        assert not bus.start(wait=3)
        assert any("refused the connection" in record.getMessage() for record in caplog.records)
    finally:
        bus.stop()


def test_untrusted_certificate_is_refused(secure_broker, tmp_path):
    other_ca = tmp_path / "other"
    other_ca.mkdir()
    untrusted, _, _ = make_certificates(other_ca)
    config = secure_broker.broker_config(
        username="weather", password="correct horse", tls={"enabled": True, "ca_certs": str(untrusted)}
    )
    bus = Bus(config, "weather")
    try:
        assert not bus.start(wait=3)
    finally:
        bus.stop()
