"""docs/kubernetes.md's Kubernetes paths, run as written against the local cluster
(context users-local).

`make cluster-deploy` has made the development install (release `users`, namespace `users`,
chart/values-dev.yaml + k8s-dev/values-local.yaml); these tests take it from there, in order:
`helm test`, the API on the NodePort, `kubectl scale`, the HPA under CPU load and back,
`helm upgrade` to a new image (a new migration Job; the web pods wait for the schema), `helm
rollback`, and `helm uninstall`. Load from the host runs through the scale and the upgrade and
must lose no request. Only the context and the image import differ from the doc.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.cluster_helpers import CONTEXT, KUBECONFIG, helm, kubectl, tool
from tests.cluster.cluster_load import host_load
from tests.support.http import Response, request_json
from tests.support.paths import CLUSTER, REPO
from tests.support.scripts import import_script
from tests.support.wait import wait_until

deploy = import_script(CLUSTER / "deploy.py")

pytestmark = pytest.mark.usefixtures("kubeconfig")
NS, RELEASE, DEPLOYMENT = "users", "users", "users-users-service"
API = deploy.API


def get(path: str, timeout: float = 5) -> tuple[int, object]:
    """(status, parsed JSON); an error status comes with its raw body."""
    return answer(request_json("GET", API + path, timeout=timeout))


def post(path: str, body: dict) -> tuple[int, object]:
    return answer(request_json("POST", API + path, body, timeout=5))


def answer(response: Response) -> tuple[int, object]:
    if response.status >= 400:
        return response.status, response.body
    return response.status, response.json


def ready_replicas() -> int:
    out = kubectl(
        "-n", NS, "get", "deployment", DEPLOYMENT, "-o", "jsonpath={.status.readyReplicas}"
    )
    return int(out or 0)


def all_web_pods() -> list[dict]:
    """Every web pod, terminating ones included."""
    return json.loads(
        kubectl("-n", NS, "get", "pods", "-l", "app.kubernetes.io/component=web", "-o", "json")
    )["items"]


def web_pods() -> list[dict]:
    return [p for p in all_web_pods() if not p["metadata"].get("deletionTimestamp")]


def pods_running(tag: str) -> list[str]:
    """Names of web pods, terminating ones included, whose container runs image tag `tag`."""
    return [
        p["metadata"]["name"]
        for p in all_web_pods()
        if any(c["image"].endswith(f":{tag}") for c in p["spec"]["containers"])
    ]


def rolled_out(replicas: int) -> None:
    kubectl("-n", NS, "rollout", "status", f"deployment/{DEPLOYMENT}", "--timeout=300s",
            timeout=330)  # fmt: skip
    wait_until(f"exactly {replicas} web pods", lambda: len(web_pods()) == replicas, 180)


def assert_no_failures(stats, at_least: int = 50) -> None:
    assert stats.failed == 0, f"{stats.failed} of {stats.ok + stats.failed} failed: {stats.errors}"
    assert stats.ok >= at_least, f"only {stats.ok} requests ran"


def test_helm_test_passes_on_the_development_install():
    out = helm("test", RELEASE, "-n", NS, "--timeout", "3m")
    assert "Phase:          Succeeded" in out.stdout, out.stdout


def test_the_k8s_dev_scripts_find_the_web_deployment_by_asking_the_cluster():
    """k8s-dev/lib.sh's web_deployment_name (what `make deploy` prints for `kubectl scale`) asks
    the cluster for the release's web Deployment by its labels, here against the real release."""
    kubectl_bin = tool("kubectl")
    out = subprocess.run(
        ["bash", "-c", "source k8s-dev/lib.sh && web_deployment_name"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": f"{Path(kubectl_bin).parent}:/usr/bin:/bin",
            "KUBECONFIG": str(KUBECONFIG),
            "KUBE_CONTEXT": CONTEXT,
            "NAMESPACE": NS,
            "RELEASE": RELEASE,
        },
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == DEPLOYMENT


def test_the_api_answers_on_the_nodeport_from_the_host():
    email = f"readme-{secrets.token_hex(4)}@example.test"
    status, created = post("/users", {"name": "Ada", "email": email})
    assert status == 201, created
    status, fetched = get(f"/users/{created['id']}")
    assert (status, fetched["email"]) == (200, email)


def test_kubectl_scale_to_three_and_back_loses_no_request_from_the_host():
    with host_load(deploy.node.NODEPORT) as stats:
        kubectl("-n", NS, "scale", f"deployment/{DEPLOYMENT}", "--replicas=3")
        rolled_out(3)
        time.sleep(3)
        kubectl("-n", NS, "scale", f"deployment/{DEPLOYMENT}", "--replicas=1")
        rolled_out(1)
        time.sleep(2)
    assert_no_failures(stats)


def test_the_hpa_scales_out_under_cpu_load_and_back_in():
    # the doc's HPA command, on the running release
    helm("upgrade", RELEASE, "chart", "-n", NS, "--reuse-values", "--set",
         "autoscaling.enabled=true,autoscaling.minReplicas=2,autoscaling.maxReplicas=6",
         "--wait", "--timeout", "5m")  # fmt: skip
    try:
        rolled_out(2)

        def desired() -> int:
            out = kubectl("-n", NS, "get", "hpa", DEPLOYMENT, "-o",
                          "jsonpath={.status.desiredReplicas}")  # fmt: skip
            return int(out or 0)

        with host_load(deploy.node.NODEPORT, threads=6, max_seconds=240) as stats:
            wait_until("the HPA to scale out beyond 2", lambda: desired() > 2, 200, interval=5)
        assert stats.failed == 0, stats.errors
        wait_until("the HPA to scale back to 2", lambda: desired() == 2, 240, interval=5)
        rolled_out(2)
    finally:
        helm("upgrade", RELEASE, "chart", "-n", NS, "--reuse-values", "--set",
             "autoscaling.enabled=false", "--wait", "--timeout", "5m")  # fmt: skip
    rolled_out(1)


@pytest.fixture(scope="module")
def new_image() -> str:
    """A second image of this code with its own tag (and so its own /version)."""
    env = deploy.docker_env()
    tag = f"upgrade-{secrets.token_hex(3)}"
    ref = deploy.build_app_image(tag, env)
    deploy.import_into_node([ref], env)
    return tag


def migration_jobs() -> dict[str, dict]:
    jobs = json.loads(
        kubectl("-n", NS, "get", "jobs", "-l", "app.kubernetes.io/component=migrate", "-o", "json")
    )["items"]
    return {j["metadata"]["name"]: j for j in jobs}


def test_helm_upgrade_to_a_new_image_runs_a_new_migration_job_and_loses_no_request(new_image):
    before_jobs = set(migration_jobs())
    revision = json.loads(helm("history", RELEASE, "-n", NS, "-o", "json").stdout)[-1]["revision"]
    mysql_uid = kubectl("-n", NS, "get", "pod", "users-users-service-mysql-0", "-o",
                        "jsonpath={.metadata.uid}")  # fmt: skip
    with host_load(deploy.node.NODEPORT) as stats:
        helm("upgrade", RELEASE, "chart", "-n", NS, "--reuse-values",
             "--set", f"image.tag={new_image}", "--wait", "--timeout", "6m")  # fmt: skip
        rolled_out(1)
        time.sleep(2)
    assert_no_failures(stats)
    jobs = migration_jobs()
    new = set(jobs) - before_jobs
    assert new, f"no new migration Job: {sorted(jobs)}"
    assert all(jobs[n]["status"].get("succeeded") == 1 for n in new), jobs
    pod = web_pods()[0]
    init = [c["name"] for c in pod["spec"].get("initContainers", [])]
    assert any("schema" in name for name in init), f"no schema wait in {init}"
    assert get("/version")[1]["version"] == new_image
    # a new app image leaves the database pod alone (its template used to carry the app version)
    assert mysql_uid == kubectl("-n", NS, "get", "pod", "users-users-service-mysql-0", "-o",
                                "jsonpath={.metadata.uid}")  # fmt: skip
    history = json.loads(helm("history", RELEASE, "-n", NS, "-o", "json").stdout)
    assert history[-1]["revision"] == revision + 1


def test_helm_rollback_returns_to_the_previous_image(new_image):
    history = json.loads(helm("history", RELEASE, "-n", NS, "-o", "json").stdout)
    previous = history[-2]
    helm("rollback", RELEASE, str(previous["revision"]), "-n", NS, "--wait", "--timeout", "5m")
    rolled_out(1)
    # the rolled-back pod is terminating now and, inside its preStop drain, still answers
    # whoever kube-proxy sends to it until the rules drop it: wait until it has gone
    wait_until("the upgraded image's pods to go", lambda: not pods_running(new_image), 180)
    versions = {get("/version")[1]["version"] for _ in range(10)}
    assert new_image not in versions, versions
    assert get("/readyz")[0] == 200  # the schema stays ahead, which `check` accepts


@pytest.fixture(scope="module")
def broken_image(tmp_path_factory) -> str:
    """The running image plus a migration that runs for a while and then fails."""
    env = deploy.docker_env()
    running = kubectl("-n", NS, "get", "deployment", DEPLOYMENT, "-o",
                      "jsonpath={.spec.template.spec.containers[0].image}")  # fmt: skip
    context = tmp_path_factory.mktemp("broken")
    (context / "0002_broken.sql").write_text("SELECT SLEEP(15);\nTHIS IS NOT SQL;\n")
    (context / "Dockerfile").write_text(
        f"FROM {running}\nCOPY 0002_broken.sql /app/service/migrations/0002_broken.sql\n"
    )
    tag = f"broken-migration-{secrets.token_hex(3)}"
    deploy.sh(env["DOCKER"], "build", "-t", f"{deploy.IMAGE_REPO}:{tag}", str(context), env=env)
    deploy.import_into_node([f"{deploy.IMAGE_REPO}:{tag}"], env)
    return tag


def test_a_failing_migration_keeps_the_running_version_serving_and_rollback_works(broken_image):
    history = json.loads(helm("history", RELEASE, "-n", NS, "-o", "json").stdout)
    good = history[-1]["revision"]
    version = get("/version")[1]["version"]
    with host_load(deploy.node.NODEPORT, max_seconds=400) as stats:
        out = helm("upgrade", RELEASE, "chart", "-n", NS, "--reuse-values",
                   "--set", f"image.tag={broken_image}", "--wait", "--timeout", "90s",
                   check=False)  # fmt: skip
        assert out.returncode != 0, "an upgrade whose migration fails must not report success"
        failed = [j for j in migration_jobs().values() if j["status"].get("failed")]
        assert failed, f"the broken migration's Job did not fail: {migration_jobs()}"
        assert get("/readyz")[0] == 200 and get("/version")[1]["version"] == version
        helm("rollback", RELEASE, str(good), "-n", NS, "--wait", "--timeout", "5m")
        rolled_out(1)
        time.sleep(2)
    assert_no_failures(stats)
    assert get("/version")[1]["version"] == version
    assert get("/readyz")[0] == 200
    history = json.loads(helm("history", RELEASE, "-n", NS, "-o", "json").stdout)
    assert history[-1]["status"] == "deployed", history[-1]


def test_helm_uninstall_removes_the_release():
    helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "5m")
    wait_until(
        "the release's workloads to go",
        lambda: (
            not json.loads(kubectl("-n", NS, "get", "deploy,statefulset", "-o", "json"))["items"]
        ),
        180,
    )
