"""End-to-end: the chart and the image on a real cluster (kind or minikube).

Runs only when E2E_KUBE_CONTEXT names a kube context and E2E_IMAGE an image that cluster can start
(for kind: `docker build -t users-service:e2e . && kind load docker-image users-service:e2e
--name users-dev`). Without them every test is collected and reported as skipped, with the reason.

One release in a fresh namespace (users-e2e-<random>) for the whole module, installed with
`helm install --wait`, removed with `helm uninstall` and a namespace delete at the end.

How traffic reaches the Service
  * CRUD and data checks: `kubectl port-forward svc/...` on 127.0.0.1. port-forward resolves the
    Service to ONE pod when it starts, so it cannot measure what a rollout does to the Service.
  * Load during scale / rollout restart: a bounded thread loop (N threads, max requests, max
    seconds, stop file) in a pod inside the cluster, hitting the Service's DNS name, one new
    connection per request. Every request goes through kube-proxy and the Service's endpoints,
    which is what "no failed request while pods come and go" is about.

Optional: E2E_VALUES (values file, default chart/values-dev.yaml), E2E_GIT_SHA (expected in
GET /version), E2E_DIAGNOSTICS_DIR (pod logs, events and descriptions are written there when a
test failed), E2E_KEEP_NAMESPACE=1 (leave the namespace for debugging).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.stream import stream

from tests.support.chart import render
from tests.support.http import request_json
from tests.support.paths import REPO
from tests.support.tools import require_tool
from tests.support.wait import wait_until

RELEASE = "e2e"
SKIP_REASON = (
    "end-to-end suite needs a cluster: set E2E_KUBE_CONTEXT (e.g. kind-users-dev) and E2E_IMAGE "
    "(an image the cluster can run, e.g. users-service:e2e after `kind load docker-image`)"
)


def wait_for(what: str, check: Callable[[], object], timeout: float, interval: float = 2.0):
    """Poll check() until it returns something truthy; fail naming `what` after timeout seconds."""
    errors = (ApiException, OSError, ValueError, KeyError)
    return wait_until(what, check, timeout, interval, errors=errors)


def http(method: str, url: str, body: dict | None = None, timeout: float = 10.0):
    """(status, headers, parsed JSON or raw bytes); HTTP errors are returned, not raised."""
    response = request_json(method, url, body, timeout=timeout)
    return response.status, response.headers, response.data


# --- the in-cluster load generator ---------------------------------------------------------------

# argv: base URL, threads, max seconds, max requests. Stops early when /load/stop exists.
# Prints LOAD-STARTED once the Service answered, then one LOAD-SUMMARY {json} line at the end.
LOAD_SCRIPT = r"""
import json, os, sys, threading, time, urllib.error, urllib.request
base, threads, max_requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[4])
max_seconds = float(sys.argv[3])
run_id = os.urandom(4).hex()  # unique emails across load pods and reruns
STOP = os.environ.get("LOAD_STOP_FILE", "/load/stop")
deadline = time.monotonic() + 90
while True:
    try:
        urllib.request.urlopen(base + "/readyz", timeout=5).read()
        break
    except Exception as exc:
        if time.monotonic() > deadline:
            print("LOAD-NEVER-READY", repr(exc), flush=True)
            sys.exit(3)
        time.sleep(1)
print("LOAD-STARTED", flush=True)
lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "errors": []}
end = time.monotonic() + max_seconds

def one(n):
    if n % 10 == 0:
        email = f"load-{run_id}-{n}@example.test"
        body = json.dumps({"name": "load", "email": email}).encode()
        req = urllib.request.Request(base + "/users", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        want = 201
    else:
        req, want = urllib.request.Request(base + "/users?limit=1"), 200
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
            return resp.status == want, f"{req.get_method()} {req.full_url} -> {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{req.get_method()} {req.full_url} -> {exc.code} {exc.read()[:200]!r}"
    except Exception as exc:
        return False, f"{req.get_method()} {req.full_url} -> {exc!r}"

def worker(k):
    n = k
    while time.monotonic() < end and not os.path.exists(STOP):
        with lock:
            if stats["ok"] + stats["failed"] >= max_requests:
                return
        good, what = one(n)
        n += threads
        with lock:
            if good:
                stats["ok"] += 1
            else:
                stats["failed"] += 1
                if len(stats["errors"]) < 20:
                    stats["errors"].append(time.strftime("%H:%M:%S ") + what)
        time.sleep(0.05)

pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
for t in pool:
    t.start()
for t in pool:
    t.join()
print("LOAD-SUMMARY " + json.dumps(stats), flush=True)
"""


@dataclass
class LoadResult:
    ok: int
    failed: int
    errors: list[str]


# --- cluster access -----------------------------------------------------------------------------


@dataclass
class Kube:
    context: str
    image: str
    helm: str
    kubectl: str
    api: client.ApiClient

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        binary = self.helm if tool == "helm" else self.kubectl
        flag = "--kube-context" if tool == "helm" else "--context"
        return subprocess.run(
            [binary, flag, self.context, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=REPO,
        )


@pytest.fixture(scope="module")
def kube() -> Kube:
    context = os.environ.get("E2E_KUBE_CONTEXT", "")
    image = os.environ.get("E2E_IMAGE", "")
    if not context or not image:
        pytest.skip(SKIP_REASON)
    # E2E_KUBE_CONTEXT is set: a missing tool fails, even outside CI.
    helm, kubectl = require_tool("helm", required=True), require_tool("kubectl", required=True)
    try:
        api = config.new_client_from_config(context=context)
        client.VersionApi(api).get_code()
    except (ApiException, ConfigException, OSError) as exc:
        pytest.fail(f"kube context {context!r} does not answer: {exc}")
    return Kube(context=context, image=image, helm=helm, kubectl=kubectl, api=api)


def image_values(image: str) -> list[str]:
    """--set flags for image.repository plus image.tag or image.digest."""
    if "@" in image:
        repository, digest = image.split("@", 1)
        return [f"--set=image.repository={repository}", f"--set=image.digest={digest}"]
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag at all (a registry port is not a tag)
        return [f"--set=image.repository={image}", "--set=image.tag=latest"]
    return [f"--set=image.repository={name}", f"--set=image.tag={tag}"]


def install_values(image: str) -> list[str]:
    """Values of the e2e release: the dev values file plus what the tests rely on."""
    return [
        "-f",
        os.environ.get("E2E_VALUES", "chart/values-dev.yaml"),
        *image_values(image),
        "--set=image.pullPolicy=IfNotPresent",
        "--set=replicaCount=1",
        "--set=autoscaling.enabled=false",
        "--set=web.concurrency=2",
        # values-dev.yaml shortens the drain to 2 s for a fast inner loop; "zero failed requests
        # while pods go away" is a claim about the production timing, so use the chart defaults.
        "--set=shutdown.drainSeconds=10",
        "--set=shutdown.gracefulTimeoutSeconds=20",
    ]


@dataclass
class Release:
    kube: Kube
    namespace: str
    deployment: str = ""
    service: str = ""
    statefulset: str = ""

    # -- discovery and waiting --

    def discover(self) -> None:
        """Names come from the chart's fullname helper; the namespace holds only this release."""
        (deployment,) = self.kube.apps.list_namespaced_deployment(self.namespace).items
        self.deployment = deployment.metadata.name
        services = self.kube.core.list_namespaced_service(self.namespace).items
        (service,) = [s for s in services if any(p.name == "http" for p in s.spec.ports)]
        self.service = service.metadata.name
        (statefulset,) = self.kube.apps.list_namespaced_stateful_set(self.namespace).items
        self.statefulset = statefulset.metadata.name

    def web_pods(self) -> list[client.V1Pod]:
        deployment = self.kube.apps.read_namespaced_deployment(self.deployment, self.namespace)
        labels = deployment.spec.selector.match_labels
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        return self.kube.core.list_namespaced_pod(self.namespace, label_selector=selector).items

    def wait_rollout(self, replicas: int, timeout: float = 300) -> None:
        """All `replicas` pods updated, ready and available, and no other pod left (terminating ones
        included): the disruption is completely over."""

        def done() -> bool:
            d = self.kube.apps.read_namespaced_deployment(self.deployment, self.namespace)
            s = d.status
            settled = (
                (s.observed_generation or 0) >= d.metadata.generation
                and d.spec.replicas == replicas
                and (s.replicas or 0) == replicas
                and (s.updated_replicas or 0) == replicas
                and (s.ready_replicas or 0) == replicas
                and (s.available_replicas or 0) == replicas
            )
            return settled and len(self.web_pods()) == replicas

        wait_for(f"deployment/{self.deployment} to settle at {replicas} pods", done, timeout)

    def scale(self, replicas: int) -> None:
        self.kube.apps.patch_namespaced_deployment_scale(
            self.deployment, self.namespace, {"spec": {"replicas": replicas}}
        )

    # -- traffic --

    @contextlib.contextmanager
    def port_forward(self) -> Iterator[str]:
        """`kubectl port-forward svc/<service> :80` on 127.0.0.1; yields the base URL."""
        process = subprocess.Popen(
            [
                self.kube.kubectl,
                "--context",
                self.kube.context,
                "-n",
                self.namespace,
                "port-forward",
                "--address",
                "127.0.0.1",
                f"svc/{self.service}",
                ":80",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(
            target=lambda: [lines.put(x) for x in process.stdout], daemon=True
        )
        reader.start()
        try:
            deadline = time.monotonic() + 30
            port = None
            while port is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    pytest.fail("kubectl port-forward printed no 'Forwarding from' line in 30s")
                match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
                port = match and int(match.group(1))
                if process.poll() is not None and port is None:
                    pytest.fail(f"kubectl port-forward exited: {line}")
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def wait_ready_via(self, base: str, timeout: float = 180) -> None:
        wait_for(
            f"{base}/readyz to answer 200", lambda: http("GET", f"{base}/readyz")[0] == 200, timeout
        )

    @contextlib.contextmanager
    def load(
        self, name: str, threads: int = 3, max_seconds: int = 420
    ) -> Iterator[list[LoadResult]]:
        """Run the in-cluster load loop against the Service for the duration of the block; the
        yielded list receives the LoadResult once the block is left."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "e2e-load"}},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": max_seconds + 180,
                "automountServiceAccountToken": False,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "load",
                        "image": self.kube.image,
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", LOAD_SCRIPT],
                        "args": [f"http://{self.service}", str(threads), str(max_seconds), "30000"],
                        "volumeMounts": [{"name": "load", "mountPath": "/load"}],
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                    }
                ],
                "volumes": [{"name": "load", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
            },
        }
        core = self.kube.core
        core.create_namespaced_pod(self.namespace, pod)
        result: list[LoadResult] = []
        try:
            wait_for(f"load pod {name} to start sending", lambda: self._started(name), 150)
            yield result
        except BaseException:
            # The block failed already: clean up, keep its error (not a second one from here).
            with contextlib.suppress(Exception):
                core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
            raise
        stop_error = self._stop_load(name)
        wait_for(
            f"load pod {name} to finish (stop file exec error: {stop_error})",
            lambda: (
                core.read_namespaced_pod(name, self.namespace).status.phase
                in ("Succeeded", "Failed")
            ),
            60,
        )
        log = self.logs(name)
        core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)
        summary = [line for line in log.splitlines() if line.startswith("LOAD-SUMMARY ")]
        assert summary, f"load pod {name} printed no summary:\n{log[-2000:]}"
        stats = json.loads(summary[-1].removeprefix("LOAD-SUMMARY "))
        result.append(LoadResult(stats["ok"], stats["failed"], stats["errors"]))

    def _started(self, name: str) -> bool:
        return "LOAD-STARTED" in self.logs(name)

    def _stop_load(self, name: str) -> Exception | None:
        """Create the stop file in the load pod (exec); the loop ends within one request."""
        # A client of its own: stream() swaps the REST transport of the client it is given.
        exec_api = client.CoreV1Api(config.new_client_from_config(context=self.kube.context))
        try:
            stream(
                exec_api.connect_get_namespaced_pod_exec,
                name,
                self.namespace,
                command=["python", "-c", "open('/load/stop', 'w').close()"],
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
            )
        except Exception as exc:  # reported by the wait that follows
            return exc
        return None

    def logs(self, pod: str) -> str:
        # the client gives None, not "", for a pod that has printed nothing yet
        return self.kube.core.read_namespaced_pod_log(pod, self.namespace) or ""

    def diagnostics(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for args, filename in [
            (("get", "all,pvc,events", "-o", "wide"), "get.txt"),
            (("describe", "pods"), "describe-pods.txt"),
            (
                ("logs", "--all-containers", "--prefix", "-l", "app.kubernetes.io/instance"),
                "logs.txt",
            ),
        ]:
            out = self.kube.run("kubectl", "-n", self.namespace, *args, timeout=60)
            (directory / filename).write_text(out.stdout + out.stderr)


@pytest.fixture(scope="module")
def release(kube: Kube, request: pytest.FixtureRequest) -> Iterator[Release]:
    namespace = f"users-e2e-{secrets.token_hex(3)}"
    failed_before = request.session.testsfailed
    installed = kube.run(
        "helm",
        "install",
        RELEASE,
        str(REPO / "chart"),
        "--namespace",
        namespace,
        "--create-namespace",
        *install_values(kube.image),
        "--wait",
        "--timeout=6m",
        timeout=420,
    )
    rel = Release(kube=kube, namespace=namespace)
    try:
        assert installed.returncode == 0, f"helm install failed:\n{installed.stderr}"
        rel.discover()
        yield rel
    finally:
        if request.session.testsfailed > failed_before or installed.returncode != 0:
            target = os.environ.get("E2E_DIAGNOSTICS_DIR")
            if target:
                rel.diagnostics(Path(target) / namespace)
        if os.environ.get("E2E_KEEP_NAMESPACE") != "1":
            kube.run("helm", "uninstall", RELEASE, "-n", namespace, "--wait", timeout=300)
            with contextlib.suppress(ApiException):
                kube.core.delete_namespace(namespace)


# --- the tests, in the order they run -------------------------------------------------------------


def test_install_runs_the_migration_job_to_completion_and_the_web_pod_becomes_ready(release):
    jobs = release.kube.batch.list_namespaced_job(release.namespace).items
    assert jobs, "the chart rendered no migration Job"

    def all_jobs_succeeded() -> bool:
        current = release.kube.batch.list_namespaced_job(release.namespace).items
        for job in current:
            if (job.status.failed or 0) > (job.spec.backoff_limit or 0):
                pytest.fail(f"job {job.metadata.name} failed")
        return all((job.status.succeeded or 0) >= 1 for job in current)

    wait_for("the migration Job to succeed", all_jobs_succeeded, 300)
    release.wait_rollout(replicas=1)
    with release.port_forward() as base:
        release.wait_ready_via(base)
        status, _, body = http("GET", f"{base}/healthz")
        assert (status, body) == (200, {"status": "ok"})
        status, _, version = http("GET", f"{base}/version")
        assert status == 200
        assert set(version) >= {"version", "git_sha", "build_date"}
        expected_sha = os.environ.get("E2E_GIT_SHA")
        if expected_sha:
            assert version["git_sha"] == expected_sha


def test_users_crud_through_the_service(release):
    email = f"e2e-{secrets.token_hex(4)}@example.test"
    with release.port_forward() as base:
        release.wait_ready_via(base)
        status, headers, created = http("POST", f"{base}/users", {"name": "Ada", "email": email})
        assert status == 201, created
        path = urlparse(headers["Location"]).path
        assert path == f"/users/{created['id']}"
        assert (created["name"], created["email"]) == ("Ada", email)

        status, _, fetched = http("GET", base + path)
        assert (status, fetched["email"]) == (200, email)

        status, _, patched = http("PATCH", base + path, {"name": "Ada Lovelace"})
        assert (status, patched["name"], patched["email"]) == (200, "Ada Lovelace", email)

        status, _, duplicate = http("POST", f"{base}/users", {"name": "Copy", "email": email})
        assert status == 409, duplicate

        status, _, listing = http("GET", f"{base}/users?limit=100")
        assert status == 200
        assert {"items", "next"} <= set(listing)

        status, _, _ = http("DELETE", base + path)
        assert status == 204
        status, headers, problem = http("GET", base + path)
        assert status == 404
        assert headers["Content-Type"].startswith("application/problem+json"), problem


def test_scaling_to_three_and_back_to_one_under_load_fails_no_request(release):
    release.wait_rollout(replicas=1)
    with release.load("load-scale") as result:
        release.scale(3)
        release.wait_rollout(replicas=3)
        time.sleep(5)  # new connections spread over the three pods
        release.scale(1)
        release.wait_rollout(replicas=1)  # the two removed pods are gone, drain included
        time.sleep(3)
    (load,) = result
    assert load.failed == 0, f"{load.failed} of {load.ok + load.failed} failed: {load.errors}"
    assert load.ok >= 100, f"only {load.ok} requests ran: the load did not cover the scaling"


def test_rollout_restart_under_load_fails_no_request(release):
    release.scale(2)
    release.wait_rollout(replicas=2)
    before = {p.metadata.name for p in release.web_pods()}
    with release.load("load-restart") as result:
        restarted = release.kube.run(
            "kubectl",
            "-n",
            release.namespace,
            "rollout",
            "restart",
            f"deployment/{release.deployment}",
        )
        assert restarted.returncode == 0, restarted.stderr
        status = release.kube.run(
            "kubectl",
            "-n",
            release.namespace,
            "rollout",
            "status",
            f"deployment/{release.deployment}",
            "--timeout=300s",
            timeout=330,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        release.wait_rollout(replicas=2)  # old pods fully terminated
        time.sleep(3)
    after = {p.metadata.name for p in release.web_pods()}
    assert not before & after, "rollout restart left an old pod running"
    (load,) = result
    assert load.failed == 0, f"{load.failed} of {load.ok + load.failed} failed: {load.errors}"
    assert load.ok >= 100, f"only {load.ok} requests ran: the load did not cover the rollout"
    release.scale(1)
    release.wait_rollout(replicas=1)


def test_data_survives_deleting_the_mysql_pod(release):
    email = f"durable-{secrets.token_hex(4)}@example.test"
    with release.port_forward() as base:
        release.wait_ready_via(base)
        status, _, created = http("POST", f"{base}/users", {"name": "Durable", "email": email})
        assert status == 201, created

    pod_name = f"{release.statefulset}-0"
    old_uid = release.kube.core.read_namespaced_pod(pod_name, release.namespace).metadata.uid
    release.kube.core.delete_namespaced_pod(pod_name, release.namespace)

    def replaced_and_ready() -> bool:
        pod = release.kube.core.read_namespaced_pod(pod_name, release.namespace)
        ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        return pod.metadata.uid != old_uid and ready

    wait_for(f"{pod_name} to come back ready", replaced_and_ready, 300)
    with release.port_forward() as base:
        release.wait_ready_via(base)
        status, _, fetched = http("GET", f"{base}/users/{created['id']}")
        assert status == 200, fetched
        assert (fetched["name"], fetched["email"]) == ("Durable", email)


def kexec(release, pod: str, *argv: str, stdin: str | None = None, container: str = "") -> str:
    """`kubectl exec` in a pod of the release; stdin carries anything secret (never argv)."""
    args = ["-n", release.namespace, "exec", "-i" if stdin is not None else "", pod]
    args = [a for a in args if a] + (["-c", container] if container else []) + ["--", *argv]
    out = subprocess.run(
        [release.kube.kubectl, "--context", release.kube.context, *args],
        input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, f"exec {argv[0]} in {pod} failed: {out.stderr[-1500:]}"
    return out.stdout


def mysql_root_sql(release, sql: str) -> str:
    """Run SQL as root over the MySQL pod's socket; the root password never leaves the pod."""
    login = 'MYSQL_PWD="$(cat /etc/mysql-credentials/root-password)" exec mysql -uroot -N -B'
    return kexec(release, f"{release.statefulset}-0", "sh", "-c", login, stdin=sql)


def tcp_probe_script(host: str) -> str:
    return (
        "import socket, sys\n"
        f"addr = socket.getaddrinfo({host!r}, 3306, type=socket.SOCK_STREAM)[0][4]\n"
        "print('RESOLVED', addr[0])\n"
        "try:\n"
        "    socket.create_connection(addr, timeout=4).close()\n"
        "    print('CONNECTED')\n"
        "except OSError as exc:\n"
        "    print('BLOCKED', exc)\n"
    )


def test_network_policy_lets_only_web_and_migrate_pods_reach_mysql(release):
    mysql = release.statefulset  # the headless Service has the StatefulSet's name
    web = release.web_pods()[0].metadata.name
    from_web = kexec(release, web, "python", "-c", tcp_probe_script(mysql))
    assert "RESOLVED" in from_web and "CONNECTED" in from_web, from_web
    name = f"np-probe-{secrets.token_hex(2)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "np-probe"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "probe",
                    "image": release.kube.image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-c", tcp_probe_script(mysql)],
                }
            ],
        },
    }
    release.kube.core.create_namespaced_pod(release.namespace, pod)
    try:
        wait_for(
            f"{name} to finish",
            lambda: (
                release.kube.core.read_namespaced_pod(name, release.namespace).status.phase
                in ("Succeeded", "Failed")
            ),
            120,
        )
        out = release.logs(name)
    finally:
        release.kube.core.delete_namespaced_pod(name, release.namespace, grace_period_seconds=0)
    assert "RESOLVED" in out, out  # DNS works for an unlabelled pod too
    assert "BLOCKED" in out and "CONNECTED" not in out, out


def test_an_app_upgrade_does_not_restart_the_database(release):
    pod = f"{release.statefulset}-0"
    before = release.kube.core.read_namespaced_pod(pod, release.namespace)
    web_before = {p.metadata.uid for p in release.web_pods()}
    out = release.kube.run(
        "helm", "upgrade", RELEASE, str(REPO / "chart"), "-n", release.namespace,
        "--reuse-values", "--set=logLevel=INFO", "--wait", "--timeout=5m", timeout=330,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    release.wait_rollout(replicas=1)
    after = release.kube.core.read_namespaced_pod(pod, release.namespace)
    assert after.metadata.uid == before.metadata.uid, "the upgrade replaced the MySQL pod"
    restarts = [c.restart_count for c in after.status.container_statuses]
    assert restarts == [c.restart_count for c in before.status.container_statuses]
    assert not web_before & {p.metadata.uid for p in release.web_pods()}, "web pods did not roll"


def test_the_pdb_refuses_a_second_eviction_while_one_pod_is_down(release):
    out = release.kube.run(
        "helm", "upgrade", RELEASE, str(REPO / "chart"), "-n", release.namespace,
        "--reuse-values", "--set=replicaCount=2", "--wait", "--timeout=5m", timeout=330,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    release.wait_rollout(replicas=2)
    policy = client.PolicyV1Api(release.kube.api)
    wait_for(
        "the PDB to allow one disruption",
        lambda: (
            policy.read_namespaced_pod_disruption_budget(
                release.deployment, release.namespace
            ).status.disruptions_allowed
            == 1
        ),
        60,
    )
    first, second = (p.metadata.name for p in release.web_pods())

    def evict(name: str) -> None:
        body = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=release.namespace)
        )
        release.kube.core.create_namespaced_pod_eviction(name, release.namespace, body)

    evict(first)
    with pytest.raises(ApiException) as refused:
        evict(second)
    assert refused.value.status == 429, refused.value
    assert "disruption budget" in refused.value.body
    release.wait_rollout(replicas=2)  # the evicted pod was replaced; the second one never went
    assert second in {p.metadata.name for p in release.web_pods()}
    release.kube.run(
        "helm", "upgrade", RELEASE, str(REPO / "chart"), "-n", release.namespace,
        "--reuse-values", "--set=replicaCount=1", "--wait", "--timeout=5m", timeout=330,
    )  # fmt: skip
    release.wait_rollout(replicas=1)


def test_a_rotated_database_password_is_taken_without_a_pod_restart(release):
    web = release.web_pods()[0]
    secret_name = release.statefulset  # the in-chart MySQL's generated Secret
    user = kexec(release, web.metadata.name, "python", "-c",
                 "import os; print(os.environ['DATABASE_USER'])").strip()  # fmt: skip
    new_password = secrets.token_urlsafe(18)
    release.kube.core.patch_namespaced_secret(
        secret_name,
        release.namespace,
        {"data": {"web-password": base64.b64encode(new_password.encode()).decode()}},
    )
    digest = hashlib.sha256(new_password.encode()).hexdigest()
    read_digest = (
        "import hashlib, os; "
        "print(hashlib.sha256(open(os.environ['DATABASE_PASSWORD_FILE'], 'rb').read()).hexdigest())"
    )
    wait_for(
        "the kubelet to project the new password into the running pod",
        lambda: kexec(release, web.metadata.name, "python", "-c", read_digest).strip() == digest,
        180,
        interval=5,
    )
    # token_urlsafe and the chart's user names need no quoting inside '...'
    assert re.fullmatch(r"[A-Za-z0-9_-]+", new_password + user)
    mysql_root_sql(release, f"ALTER USER '{user}'@'%' IDENTIFIED BY '{new_password}';")
    processlist = f"SELECT id FROM information_schema.processlist WHERE user = '{user}';"  # noqa: S608
    ids = mysql_root_sql(release, processlist).split()
    if ids:  # the workers' open connections: the next query must log in afresh
        mysql_root_sql(release, "".join(f"KILL {i};" for i in ids))
    with release.port_forward() as base:
        release.wait_ready_via(base, timeout=60)
        email = f"rotated-{secrets.token_hex(3)}@example.test"
        wait_for(
            "a write with the rotated password",
            lambda: http("POST", f"{base}/users", {"name": "Rot", "email": email})[0] in (201, 409),
            60,
        )
        status, _, fetched = http("GET", f"{base}/users?limit=1")
        assert status == 200, fetched
    now = release.kube.core.read_namespaced_pod(web.metadata.name, release.namespace)
    assert now.metadata.uid == web.metadata.uid
    assert [c.restart_count for c in now.status.container_statuses] == [
        c.restart_count for c in web.status.container_statuses
    ]


def test_helm_uninstall_removes_the_workloads(release):
    out = release.kube.run(
        "helm", "uninstall", RELEASE, "-n", release.namespace, "--wait", timeout=300
    )
    assert out.returncode == 0, out.stderr

    def nothing_left() -> bool:
        ns = release.namespace
        return not (
            release.kube.apps.list_namespaced_deployment(ns).items
            or release.kube.apps.list_namespaced_stateful_set(ns).items
            or release.kube.core.list_namespaced_service(ns).items
        )

    wait_for("the release's workloads to disappear", nothing_left, 180)


def test_image_values_split_repository_tag_and_digest():
    # Pure helper check: runs without a cluster, keeps the --set wiring honest.
    assert image_values("users-service:e2e-1") == [
        "--set=image.repository=users-service",
        "--set=image.tag=e2e-1",
    ]
    assert image_values("localhost:5001/users-service:v1") == [
        "--set=image.repository=localhost:5001/users-service",
        "--set=image.tag=v1",
    ]
    assert image_values("localhost:5001/users-service") == [
        "--set=image.repository=localhost:5001/users-service",
        "--set=image.tag=latest",
    ]
    digest = "sha256:" + "a" * 64
    assert image_values(f"r/users-service@{digest}") == [
        "--set=image.repository=r/users-service",
        f"--set=image.digest={digest}",
    ]


def test_e2e_install_values_render_with_the_chart():
    # Runs without a cluster: the flags the fixture installs with are accepted by the chart's
    # values schema and give one web Deployment, the MySQL StatefulSet and the migration Job.
    helm = require_tool("helm", required=bool(os.environ.get("E2E_KUBE_CONTEXT")))
    rendered = render(
        *install_values("users-service:e2e"),
        release=RELEASE, namespace=None, kube_version=None, helm=helm,
    )  # fmt: skip
    kinds = [doc["kind"] for doc in rendered.docs]
    assert kinds.count("Deployment") == 1
    assert kinds.count("StatefulSet") == 1
    assert kinds.count("Job") == 1
    assert "image: users-service:e2e" in rendered.text
