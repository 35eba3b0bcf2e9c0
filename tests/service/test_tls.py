"""service/db.py with DATABASE_SSL_CA: TLS to the database verifies the certificate and the
host name, against a real TLS-enabled server (a throwaway one, with a CA made by the test)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.db import Database, DatabaseUnavailable
from service.settings import load_settings
from tests.support.localdb import localdb, require_server_binary

pytestmark = pytest.mark.slow


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def make_ca(directory: Path, name: str) -> tuple[x509.Certificate, object, Path]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key, _write_cert(cert, directory / f"{name}.pem")


def make_server_cert(directory: Path, ca_cert, ca_key, dns_name: str) -> tuple[Path, Path]:
    """A server certificate valid for `dns_name` only (not for 127.0.0.1)."""
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return _write_cert(cert, directory / "server.pem"), _write_key(key, directory / "server.key")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[dict]:
    require_server_binary("to start a TLS-enabled server")
    certs = tmp_path_factory.mktemp("certs")
    ca_cert, ca_key, ca_file = make_ca(certs, "test-ca")
    _, _, other_ca = make_ca(certs, "other-ca")
    cert, key = make_server_cert(certs, ca_cert, ca_key, "localhost")
    server = localdb.start_server(
        tmp_path_factory.mktemp("tls-db"),
        extra_args=[f"--ssl-ca={ca_file}", f"--ssl-cert={cert}", f"--ssl-key={key}"],
    )
    try:
        localdb.create_database(server, "tlsdb", "tls_web", "tls-web-pw", "tls_mig", "tls-mig-pw")
        yield {"port": server.port, "ca": ca_file, "other_ca": other_ca}
    finally:
        server.stop()


def database(tls_server: dict, host: str, ca: Path | None) -> Database:
    env = {
        "DATABASE_HOST": host,
        "DATABASE_PORT": str(tls_server["port"]),
        "DATABASE_USER": "tls_web",
        "DATABASE_PASSWORD": "tls-web-pw",
        "DATABASE_NAME": "tlsdb",
        "DATABASE_CONNECT_TIMEOUT": "3",
    }
    if ca is not None:
        env["DATABASE_SSL_CA"] = str(ca)
    return Database(load_settings(env).database, idle_check_seconds=60)


def test_with_a_ca_the_connection_is_encrypted_and_verified(tls_server):
    db = database(tls_server, "localhost", tls_server["ca"])
    ((_, cipher),) = db.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert cipher, "the session must be encrypted"


def test_a_certificate_from_another_ca_is_refused(tls_server):
    db = database(tls_server, "localhost", tls_server["other_ca"])
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")


def test_a_certificate_for_another_host_name_is_refused(tls_server):
    # The certificate names "localhost"; 127.0.0.1 is the same server under a name it lacks.
    db = database(tls_server, "127.0.0.1", tls_server["ca"])
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")


def test_without_a_ca_tls_is_only_opportunistic_and_unverified(tls_server):
    # PyMySQL's PREFERRED mode, like the mysql client's: encrypted when the server offers it,
    # but nothing is verified (here the host name does not match), so set a CA in production.
    db = database(tls_server, "127.0.0.1", None)
    ((_, cipher),) = db.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert cipher
