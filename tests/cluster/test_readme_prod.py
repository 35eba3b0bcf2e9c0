"""docs/kubernetes.md's production-style install on the local cluster: a database outside the
release (the mysql:8.4 stand-in in its own namespace, TLS with a CA made here,
like a managed instance),
the Secret and the CA ConfigMap created beforehand with the doc's kubectl commands, then
`helm upgrade --install users ./chart -n users -f chart/values-prod.yaml --wait` and `helm test`.

Substituted, as a cluster of one's own needs: the context, the image tag (imported, not pulled),
and `externalDatabase.host`, which values-prod.yaml points at a managed instance that does not
exist here. The ServiceMonitor needs the Prometheus Operator's CRD: without it the render fails
with a message (tested first), so the install turns it off, as the doc says.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cluster.cluster_helpers import helm, kubectl
from tests.support.paths import REPO
from tests.support.wait import wait_until

pytestmark = pytest.mark.usefixtures("kubeconfig")
NS, DB_NS, RELEASE = "users", "users-db", "users"
DB_HOST = f"users-db.{DB_NS}.svc.cluster.local"


def make_tls(host: str) -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) in PEM; the server's SAN is `host`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "users-db test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ca.public_bytes(pem), cert.public_bytes(pem), key_pem


def apply(doc: dict) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps(doc))


@pytest.fixture(scope="module")
def external_database(tmp_path_factory):
    """The 'managed' database: the stand-in in namespace users-db, TLS only, two app users."""
    web_pw, migrate_pw, root_pw = (secrets.token_urlsafe(16) for _ in range(3))
    ca, cert, key = make_tls(DB_HOST)
    kubectl("create", "namespace", DB_NS)
    init_sql = (
        f"CREATE USER 'users'@'%' IDENTIFIED BY '{web_pw}' REQUIRE SSL;\n"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON users.* TO 'users'@'%';\n"
        f"CREATE USER 'users_migrate'@'%' IDENTIFIED BY '{migrate_pw}' REQUIRE SSL;\n"
        "GRANT CREATE, ALTER, INDEX, DROP, REFERENCES, SELECT, INSERT, UPDATE, DELETE "
        "ON users.* TO 'users_migrate'@'%';\n"
    )
    apply({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": DB_NS},
        "stringData": {"root-password": root_pw, "10-users.sql": init_sql,
                       "ca.crt": ca.decode(), "tls.crt": cert.decode(), "tls.key": key.decode()},
    })  # fmt: skip
    apply({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "users-db", "namespace": DB_NS},
        "spec": {"selector": {"app": "users-db"}, "ports": [{"port": 3306, "name": "mysql"}]},
    })  # fmt: skip
    secret_files = [{"key": k, "path": k} for k in ("ca.crt", "tls.crt", "tls.key")]
    apply({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "users-db", "namespace": DB_NS},
        "spec": {
            "replicas": 1, "selector": {"matchLabels": {"app": "users-db"}},
            "template": {
                "metadata": {"labels": {"app": "users-db"}},
                "spec": {
                    "securityContext": {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
                    "containers": [{
                        "name": "mysql", "image": "mysql:8.4", "imagePullPolicy": "IfNotPresent",
                        "args": ["--ssl-ca=/tls/ca.crt", "--ssl-cert=/tls/tls.crt",
                                 "--ssl-key=/tls/tls.key", "--require-secure-transport=ON"],
                        "env": [
                            {"name": "MYSQL_ROOT_PASSWORD_FILE", "value": "/secret/root-password"},
                            {"name": "MYSQL_ROOT_HOST", "value": "localhost"},
                            {"name": "MYSQL_DATABASE", "value": "users"},
                        ],
                        "ports": [{"containerPort": 3306, "name": "mysql"}],
                        "readinessProbe": {"exec": {"command": [
                            "mysqladmin", "ping", "--protocol=TCP", "-h", "127.0.0.1", "--silent"]},
                            "periodSeconds": 3},
                        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                        "volumeMounts": [
                            {"name": "secret", "mountPath": "/secret", "readOnly": True},
                            {"name": "tls", "mountPath": "/tls", "readOnly": True},
                            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d",
                             "readOnly": True},
                            {"name": "data", "mountPath": "/var/lib/mysql"},
                        ],
                    }],
                    "volumes": [
                        {"name": "secret", "secret": {"secretName": "db", "items": [
                            {"key": "root-password", "path": "root-password"}]}},
                        {"name": "tls", "secret": {"secretName": "db", "items": secret_files,
                                                   "defaultMode": 0o440}},
                        {"name": "init", "secret": {"secretName": "db", "items": [
                            {"key": "10-users.sql", "path": "10-users.sql"}]}},
                        {"name": "data", "emptyDir": {}},
                    ],
                },
            },
        },
    })  # fmt: skip
    kubectl("-n", DB_NS, "rollout", "status", "deployment/users-db", "--timeout=240s", timeout=260)
    ca_file = tmp_path_factory.mktemp("ca") / "db-ca.pem"
    ca_file.write_bytes(ca)
    yield {"web": web_pw, "migrate": migrate_pw, "ca_file": ca_file}
    if os.environ.get("CLUSTER_KEEP") != "1":
        kubectl("delete", "namespace", DB_NS, "--wait=false", check=False)


@pytest.fixture(scope="module")
def image_tag() -> str:
    return (REPO / ".local/cluster/image").read_text().strip().rsplit(":", 1)[1]


def prod_install(image_tag: str, *extra: str, check: bool = True):
    # the doc's command; --set image.tag is the image import, externalDatabase.host the
    # address of this cluster's stand-in for the managed database
    return helm(
        "upgrade", "--install", RELEASE, "./chart", "-n", NS, "-f", "chart/values-prod.yaml",
        "--set", f"image.tag={image_tag}", "--set", f"externalDatabase.host={DB_HOST}",
        *extra, "--wait", "--timeout", "8m", timeout=560, check=check,
    )  # fmt: skip


def ready_pods() -> int:
    ready = kubectl("-n", NS, "get", "deployment", "users-users-service", "-o",
                    "jsonpath={.status.readyReplicas}")  # fmt: skip
    return int(ready or 0)


def test_values_prod_without_the_servicemonitor_crd_fails_with_a_clear_message(image_tag):
    out = prod_install(image_tag, "--dry-run=server", check=False)
    assert out.returncode != 0
    assert "metrics.serviceMonitor.enabled=false" in out.stderr, out.stderr


def test_the_production_install_with_a_precreated_secret_and_ca(external_database, image_tag):
    kubectl("create", "namespace", NS, check=False)
    kubectl("-n", NS, "delete", "secret", "users-db-credentials", "--ignore-not-found")
    kubectl("-n", NS, "delete", "configmap", "users-db-ca", "--ignore-not-found")
    # the doc's two commands (the passwords from a file here: never on a command line)
    creds = external_database["ca_file"].parent / "creds"
    creds.mkdir()
    (creds / "web-password").write_text(external_database["web"])
    (creds / "migrate-password").write_text(external_database["migrate"])
    kubectl("-n", NS, "create", "secret", "generic", "users-db-credentials",
            f"--from-file=web-password={creds / 'web-password'}",
            f"--from-file=migrate-password={creds / 'migrate-password'}")  # fmt: skip
    kubectl("-n", NS, "create", "configmap", "users-db-ca",
            f"--from-file=ca.crt={external_database['ca_file']}")  # fmt: skip
    try:
        prod_install(image_tag, "--set", "metrics.serviceMonitor.enabled=false")
        # values-prod: HPA with minReplicas 3. The Deployment leaves `replicas` to the HPA, so a
        # first install starts one pod, and --wait may return on it before the HPA's first sync
        # raises the Deployment to three (as the doc says); then all three must get ready.
        started = time.monotonic()
        try:
            wait_until("the HPA to bring the Deployment to three ready pods",
                       lambda: ready_pods() >= 3, 180, interval=2)  # fmt: skip
        except pytest.fail.Exception:
            print(kubectl("-n", NS, "get", "pods,hpa,events", "-o", "wide", check=False))
            raise
        print(f"\nthree ready pods {time.monotonic() - started:.1f} s after helm --wait returned")
        out = helm("test", RELEASE, "-n", NS, "--timeout", "3m")
        assert "Succeeded" in out.stdout, out.stdout
        hpa = json.loads(kubectl("-n", NS, "get", "hpa", "users-users-service", "-o", "json"))
        assert hpa["spec"]["minReplicas"] == 3
        wait_until(
            "the PDB to count the three pods",
            lambda: (
                json.loads(kubectl("-n", NS, "get", "pdb", "users-users-service", "-o", "json"))[
                    "status"
                ].get("currentHealthy")
                == 3
            ),
            60,
        )
    finally:
        if os.environ.get("CLUSTER_KEEP") != "1":  # CLUSTER_KEEP=1 leaves it for a look
            helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m", check=False)
            kubectl("-n", NS, "delete", "secret", "users-db-credentials", "--ignore-not-found")
            kubectl("-n", NS, "delete", "configmap", "users-db-ca", "--ignore-not-found")
