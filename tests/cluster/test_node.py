"""The node of `make cluster-up` is a real Kubernetes node with what the chart relies on: a Ready
node at the pinned version, DNS for cluster.local and nothing else, a default StorageClass that
binds, the metrics API (for the HPA), NetworkPolicy enforcement, and guard rules that keep every
pod and Service address on this machine."""

from __future__ import annotations

import json
import secrets
import subprocess

import pytest

from tests.cluster.cluster_helpers import kubectl
from tests.support.paths import CLUSTER
from tests.support.scripts import import_script
from tests.support.wait import wait_until

node = import_script(CLUSTER / "node.py")

pytestmark = pytest.mark.usefixtures("kubeconfig")


def busybox_pod(name: str, script: str, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"test": name}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": node.image_ref(node.built("busybox")),
                    "imagePullPolicy": "Never",
                    "command": ["sh", "-c", script],
                    "securityContext": {"runAsUser": 65534, "allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def run_pod(namespace: str, pod: dict, timeout: float = 90) -> tuple[str, str]:
    """Create the pod, wait for it to end; (phase, logs)."""
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(pod))
    name = pod["metadata"]["name"]

    def ended() -> str | None:
        phase = kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_until(f"pod {name} to finish", ended, timeout)
    return phase, kubectl("-n", namespace, "logs", name, check=False)


@pytest.fixture
def namespace():
    ns = f"node-test-{secrets.token_hex(3)}"
    kubectl("create", "namespace", ns)
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_node_is_ready_at_the_pinned_kubernetes_version():
    nodes = json.loads(kubectl("get", "nodes", "-o", "json"))["items"]
    assert [n["metadata"]["name"] for n in nodes] == [node.NODE_NAME]
    ready = {c["type"]: c["status"] for c in nodes[0]["status"]["conditions"]}["Ready"]
    assert ready == "True"
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == node.KUBERNETES_VERSION
    version = json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"]
    assert version == node.KUBERNETES_VERSION


def test_cluster_dns_resolves_services_and_forwards_nothing_outside(namespace):
    script = (
        "nslookup kubernetes.default.svc.cluster.local && echo RESOLVED-IN; "
        "nslookup pypi.org >/dev/null 2>&1 && echo RESOLVED-OUT || echo NOT-RESOLVED-OUT"
    )
    _, logs = run_pod(namespace, busybox_pod("dns", script))
    assert "RESOLVED-IN" in logs, logs
    assert "10.43.0.1" in logs, logs
    assert "NOT-RESOLVED-OUT" in logs, logs


def test_the_default_storage_class_binds_a_claim_and_the_pod_writes_to_it(namespace):
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}},
    }
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(pvc))
    pod = busybox_pod("writer", "echo hello > /data/file && cat /data/file")
    pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    pod["spec"]["securityContext"] = {"fsGroup": 65534}
    phase, logs = run_pod(namespace, pod, timeout=150)
    assert (phase, logs.strip()) == ("Succeeded", "hello")
    assert kubectl("-n", namespace, "get", "pvc", "data", "-o", "jsonpath={.status.phase}") == (
        "Bound"
    )


def test_the_metrics_api_reports_the_node_and_pods():
    nodes = wait_until(
        "node metrics",
        lambda: json.loads(kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes"))["items"],
        90,
        interval=3,
    )
    assert nodes[0]["metadata"]["name"] == node.NODE_NAME
    assert nodes[0]["usage"]["cpu"]


def test_a_network_policy_is_enforced_between_pods(namespace):
    server = busybox_pod("server", "nc -ll -p 8080 -e true", labels={"role": "server"})
    server["spec"]["restartPolicy"] = "Always"
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(server))
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/server", "--timeout=90s")
    ip = kubectl("-n", namespace, "get", "pod", "server", "-o", "jsonpath={.status.podIP}")
    probe = f"echo | nc -w 3 {ip} 8080 >/dev/null && echo CONNECTED || echo BLOCKED"
    _, before = run_pod(namespace, busybox_pod("before", probe, labels={"role": "client"}))
    assert "CONNECTED" in before, before
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "deny-to-server"},
        "spec": {"podSelector": {"matchLabels": {"role": "server"}}, "policyTypes": ["Ingress"]},
    }
    kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(policy))

    def blocked() -> bool:
        name = f"after-{secrets.token_hex(2)}"
        return "BLOCKED" in run_pod(namespace, busybox_pod(name, probe, {"role": "client"}))[1]

    wait_until("the deny policy to be enforced", blocked, 60, interval=2)


def test_guard_rules_drop_pod_and_service_addresses_on_every_outward_interface():
    rules = subprocess.run(
        ["iptables", "-t", "mangle", "-S", "POSTROUTING"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    interfaces = node.outward_interfaces()
    assert interfaces
    for dev in interfaces:
        for cidr in (node.POD_CIDR, node.SERVICE_CIDR):
            for flag in ("-s", "-d"):
                assert any(
                    f"-o {dev}" in r and f"{flag} {cidr}" in r and "-j DROP" in r
                    for r in rules.splitlines()
                ), f"no guard rule for {flag} {cidr} on {dev}:\n{rules}"
