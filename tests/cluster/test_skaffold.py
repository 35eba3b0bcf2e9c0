"""k8s-dev/README.md's skaffold paths, run as written against the local cluster
(context users-local).

In order, in namespaces of this module (never `users`):
1. `skaffold build -p dev --file-output=build.json` builds and pushes to the node's registry;
2. `skaffold run -p dev` installs release `users`; the API answers through its Service;
3. `skaffold verify -p dev -a build.json` runs the smoke Job against it; then `skaffold delete`;
4. `skaffold dev -p dev --port-forward=user` in a copy of the repository: a Python edit is synced
   into the SAME pod (no image build, same pod UID) and served; Ctrl-C uninstalls the release.
Only the kube context (`--kube-context users-local`; `skaffold verify` has no such flag and uses
the kubeconfig's current context, which is users-local) and the image import
(`--default-repo=127.0.0.1:5001`, the registry the node's containerd pulls from) are added to the
the doc's commands; `-n` picks the namespace and build.json is written to a temporary folder.

Nothing leaves the machine. skaffold gets a HOME of its own whose global config turns the update
check, the survey prompt and metrics off (`update-check`, `survey.disable-prompt`,
`collect-metrics`; read in skaffold v2.16.1's source: with collect-metrics false it neither exports
metrics nor probes clients3.google.com, and with update-check false it never fetches the latest
VERSION from storage.googleapis.com; left unset, the first run would switch collect-metrics ON).
On top of that HTTP(S)_PROXY point at a closed loopback port for skaffold, helm and kubectl (the
cluster's addresses and loopback are exempt), and the docker CLI's `proxies` config does the same
for the build's RUN steps (proxy build args are not part of BuildKit's cache key). So the pip layer
must come from the layer cache of `make cluster-deploy`'s build of the same Dockerfile and
requirements; a cache miss fails the build, and the failure says so.

The offline tests at the end pin the defects these runs found (each one runs in `make test` too).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.cluster.cluster_helpers import CONTEXT, KUBECONFIG, helm, kubectl, stop_process, tool
from tests.support import chart
from tests.support.http import request_json
from tests.support.localdb import free_port
from tests.support.paths import CLUSTER, REPO, SCRIPTS
from tests.support.scripts import import_script
from tests.support.tools import missing, require_root, require_tool
from tests.support.wait import wait_until

dockerd = import_script(SCRIPTS / "dockerd.py")
node = import_script(CLUSTER / "node.py")

RELEASE, SERVICE = "users", "users-users-service"
ARTIFACT = "users-service"
REGISTRY = f"127.0.0.1:{node.REGISTRY_PORT}"
SKAFFOLD_GLOBAL_CONFIG = """\
global:
  update-check: false
  collect-metrics: false
  survey:
    disable-prompt: true
kubeContexts: []
"""
CLOSED_PORT_PROXY = "http://127.0.0.1:9"  # discard port, nothing listens: a proxied request fails
DEV_TEST_SECONDS = 600  # hard bound of the whole `skaffold dev` test
HEALTHZ_LINE = 'return jsonify(status="ok")'
NO_PROXY_MISS_HINT = (
    "\nThe build wanted the network (the pip layer was not in the daemon's BuildKit cache, which "
    "`make cluster-deploy` fills with the same Dockerfile and requirements); these tests send "
    "nothing off the machine, so it could not."
)
# Offline test data: a digest that looks real.
DIGEST = "sha256:" + "ab" * 32


# --------------------------------------------------------------------------- helpers


def docker_env() -> dict[str, str]:
    """DOCKER_HOST & co. of the daemon `make cluster-deploy` uses (never starts one)."""
    if os.environ.get("DOCKER_HOST"):
        return {
            "DOCKER_HOST": os.environ["DOCKER_HOST"],
            "DOCKER": os.environ.get("DOCKER") or shutil.which("docker") or "docker",
        }
    sock = node.DOCKER_STATE / "docker.sock"
    if not (sock.exists() and dockerd.ping(sock)):
        pytest.fail(f"no docker daemon at {sock}: `make cluster-deploy` starts it")
    return dockerd.exports(json.loads((node.DOCKER_STATE / dockerd.STATE_FILE).read_text()))


def skaffold_binary() -> str:
    out = subprocess.run(
        [sys.executable, str(REPO / "k8s-dev/cluster/build.py"), "path", "skaffold"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not os.access(path, os.X_OK):
        pytest.fail(f"skaffold is not built: {(out.stderr or out.stdout).strip()[-500:]}")
    return path


def apiserver_host() -> str:
    config = yaml.safe_load(KUBECONFIG.read_text())  # JSON is YAML too
    server = next(c["cluster"]["server"] for c in config["clusters"])
    return urllib.parse.urlsplit(server).hostname or ""


@dataclass
class Skaffold:
    binary: str
    env: dict[str, str]

    def run(self, *args: str, cwd: Path = REPO, timeout: float = 900) -> str:
        started = time.monotonic()
        try:
            out = subprocess.run(
                [self.binary, *args], cwd=cwd, env=self.env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            tail = (exc.stdout or b"")[-4000:]
            pytest.fail(f"skaffold {' '.join(args)} still running after {timeout:.0f}s:\n{tail}")
        if out.returncode != 0:
            hint = NO_PROXY_MISS_HINT if CLOSED_PORT_PROXY.split("//")[1] in out.stdout else ""
            pytest.fail(
                f"skaffold {' '.join(args)} exited {out.returncode} after "
                f"{time.monotonic() - started:.0f}s:\n{out.stdout[-4000:]}{hint}"
            )
        return out.stdout


@pytest.fixture(scope="module")
def skaffold(kubeconfig, tmp_path_factory) -> Skaffold:
    home = tmp_path_factory.mktemp("skaffold-home")
    (home / ".skaffold").mkdir()
    (home / ".skaffold/config").write_text(SKAFFOLD_GLOBAL_CONFIG)
    docker = docker_env()
    # The docker CLI matching the daemon (dockerd.py's $DOCKER) as the `docker` skaffold runs, and
    # a client config whose proxies send any RUN step's HTTP to a closed port.
    bin_dir = home / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").symlink_to(docker["DOCKER"])
    docker_config = home / "docker-config"
    docker_config.mkdir()
    proxies = {"httpProxy": CLOSED_PORT_PROXY, "httpsProxy": CLOSED_PORT_PROXY,
               "ftpProxy": CLOSED_PORT_PROXY, "allProxy": CLOSED_PORT_PROXY}  # fmt: skip
    (docker_config / "config.json").write_text(json.dumps({"proxies": {"default": proxies}}))
    path = [str(bin_dir), str(Path(tool("kubectl")).parent), str(Path(tool("helm")).parent)]
    no_proxy = ",".join(
        ["127.0.0.1", "localhost", "::1", node.POD_CIDR, node.SERVICE_CIDR, apiserver_host()]
    )
    env = {
        **os.environ,
        **docker,
        "DOCKER_CONFIG": str(docker_config),
        "HOME": str(home),
        "KUBECONFIG": str(KUBECONFIG),
        "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")]),
        "SKAFFOLD_UPDATE_CHECK": "false",
        "SKAFFOLD_INTERACTIVE": "false",
        "HTTP_PROXY": CLOSED_PORT_PROXY, "HTTPS_PROXY": CLOSED_PORT_PROXY,
        "http_proxy": CLOSED_PORT_PROXY, "https_proxy": CLOSED_PORT_PROXY,
        "NO_PROXY": no_proxy, "no_proxy": no_proxy,
    }  # fmt: skip
    for leftover in ("ALL_PROXY", "all_proxy", "SKAFFOLD_DEFAULT_REPO", "SKAFFOLD_NAMESPACE"):
        env.pop(leftover, None)
    # Preconditions, so no step falls back to a registry on the internet.
    base = subprocess.run([docker["DOCKER"], "image", "inspect", "python:3.12-slim"], env=env,
                          capture_output=True, timeout=60, check=False)  # fmt: skip
    assert base.returncode == 0, "python:3.12-slim (the stand-in) missing: run make cluster-deploy"
    registry = request_json("GET", f"http://{REGISTRY}/v2/", timeout=5)
    assert registry.status == 200, f"registry {REGISTRY}: {registry.status}"
    return Skaffold(skaffold_binary(), env)


@pytest.fixture(scope="module")
def state() -> dict:
    """What test 1 and 2 hand on to test 3 (they run in file order)."""
    return {}


def new_namespace(suffix: str = "") -> str:
    name = f"skaffold-test-{secrets.token_hex(3)}{suffix}"
    kubectl("create", "namespace", name)
    return name


def delete_namespace(name: str) -> None:
    kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=240s",
            timeout=270, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def namespace(skaffold) -> Iterator[str]:
    name = new_namespace()
    yield name
    delete_namespace(name)


def lines_of(stream, sink: queue.Queue) -> None:
    for line in iter(stream.readline, ""):
        sink.put(line)


@contextlib.contextmanager
def port_forward(namespace: str, target: str, remote: int) -> Iterator[int]:
    """kubectl port-forward on 127.0.0.1 and a free port; yields that port."""
    proc = subprocess.Popen(
        [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT, "-n", namespace,
         "port-forward", "--address", "127.0.0.1", target, f":{remote}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    out: queue.Queue = queue.Queue()
    threading.Thread(target=lines_of, args=(proc.stdout, out), daemon=True).start()
    try:
        deadline, seen = time.monotonic() + 30, []
        while True:
            try:
                line = out.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"kubectl port-forward printed no port in 30 s: {seen}")
            seen.append(line)
            if match := re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line):
                break
        yield int(match.group(1))
    finally:
        stop_process(proc)


def web_pods(namespace: str) -> list[dict]:
    out = kubectl(
        "-n", namespace, "get", "pods", "-l", "app.kubernetes.io/component=web", "-o", "json"
    )
    pods = json.loads(out)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def web_container(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "web")


def restarts(pod: dict) -> int:
    return sum(s.get("restartCount", 0) for s in pod["status"].get("containerStatuses", []))


def release_names(namespace: str) -> list[str]:
    return json.loads(helm("list", "-n", namespace, "-a", "-o", "json").stdout or "[]")


def deployed_tag(output: str) -> str:
    """The image skaffold names under 'Tags used in deployment'."""
    match = re.search(rf"Tags used in deployment:\s*\n\s*- {ARTIFACT} -> (\S+)", output)
    assert match, f"no 'Tags used in deployment' in skaffold's output:\n{output[-3000:]}"
    return match.group(1)


# --------------------------------------------------------------------------- 1-3: build/run/verify


def test_skaffold_build_pushes_the_image_to_the_local_registry(skaffold, state, tmp_path_factory):
    build_json = tmp_path_factory.mktemp("skaffold-build") / "build.json"
    out = skaffold.run("build", "-p", "dev", f"--file-output={build_json}",
                       f"--kube-context={CONTEXT}", f"--default-repo={REGISTRY}")  # fmt: skip
    (built,) = json.loads(build_json.read_text())["builds"]
    assert built["imageName"] == ARTIFACT
    tag = built["tag"]
    match = re.fullmatch(
        rf"{re.escape(REGISTRY)}/{ARTIFACT}:([\w.-]+)@(sha256:[0-9a-f]{{64}})", tag
    )
    assert match, f"build.json names {tag!r}, not an image under {REGISTRY} with its digest"
    # The registry really has it: the manifest of that tag, with that digest.
    manifest = request_json(
        "HEAD", f"http://{REGISTRY}/v2/{ARTIFACT}/manifests/{match.group(1)}",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                           "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )  # fmt: skip
    assert manifest.status == 200
    assert manifest.headers["Docker-Content-Digest"] == match.group(2)
    assert "Build [users-service] succeeded" in out, out[-2000:]
    state["build_json"] = build_json


def test_skaffold_run_installs_release_users_and_the_api_answers(skaffold, namespace, state):
    out = skaffold.run("run", "-p", "dev", f"--kube-context={CONTEXT}",
                       f"--default-repo={REGISTRY}", "-n", namespace)  # fmt: skip
    assert "Deployments stabilized" in out, out[-3000:]
    (release,) = release_names(namespace)
    assert (release["name"], release["status"]) == (RELEASE, "deployed")
    (pod,) = web_pods(namespace)
    # The chart runs exactly the reference skaffold pushed (repo:tag@digest), not a bare tag.
    assert web_container(pod)["image"] == deployed_tag(out)
    assert "is not used" not in out, "the chart renders another image than the one skaffold built"
    with port_forward(namespace, f"service/{SERVICE}", 80) as port:
        api = f"http://127.0.0.1:{port}"
        ready = request_json("GET", f"{api}/readyz", timeout=5)
        assert ready.status == 200, ready.body[:500]
        email = f"skaffold-{secrets.token_hex(4)}@example.com"
        created = request_json(
            "POST", f"{api}/users", {"name": "Ada Lovelace", "email": email}, timeout=5
        )
        assert created.status == 201, created.body[:500]
        body = created.json
        location = created.headers.get("Location", "")
        assert body["email"] == email and location.endswith(f"/{body['id']}")
        fetched = request_json("GET", f"{api}/users/{body['id']}", timeout=5)
        assert (fetched.status, fetched.json["email"]) == (200, email)
    state["namespace"] = namespace


VERIFY_JOB = "smoke-readyz-and-users"  # skaffold.yaml verify test name; skaffold names its Job so


class FollowedLog:
    """`kubectl logs -f job/NAME`, started as soon as the Job exists, read to its end."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.errors: list[str] = []

    def text(self) -> str:
        return "".join(self.chunks) + "".join(f"\n[kubectl] {e}" for e in self.errors)


@contextlib.contextmanager
def followed_job_logs(namespace: str, job: str, limit: float) -> Iterator[FollowedLog]:
    """The Job's pod log, followed from the cluster while the block runs.

    `skaffold verify` prints a verify pod's log only if its log streamer attaches (after 2 s or
    more of backoff) before the pod has finished and skaffold deletes the Job: with a smoke test
    that passes in under a second the lines may never be printed (CI at 71e900a: exit 0, no
    lines). So the test reads the log itself: `kubectl logs -f` from the moment the Job exists
    (retried every 0.2 s until then), which keeps every line even when the pod ends or is deleted.
    """
    followed, stop = FollowedLog(), threading.Event()

    def follow() -> None:
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline:
            argv = [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT,
                    "-n", namespace, "logs", "-f", f"job/{job}",
                    "--pod-running-timeout=120s"]  # fmt: skip
            try:
                done = subprocess.run(argv, capture_output=True, text=True, check=False,
                                      timeout=max(1.0, deadline - time.monotonic()))  # fmt: skip
            except subprocess.TimeoutExpired:
                followed.errors.append(f"kubectl logs -f job/{job}: still running after {limit} s")
                return
            if done.returncode == 0:
                followed.chunks.append(done.stdout)
                return
            if "not found" not in done.stderr:  # any failure but "no such Job yet" is kept
                followed.errors.append(done.stderr.strip())
            stop.wait(0.2)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    try:
        yield followed
    finally:
        thread.join(timeout=30)  # `kubectl logs -f` ends with the pod, which has ended
        stop.set()
        thread.join(timeout=5)


def test_skaffold_verify_runs_the_smoke_job_then_skaffold_delete_uninstalls(
    skaffold, namespace, state
):
    if "build_json" not in state or "namespace" not in state:
        pytest.fail("needs the build.json of the build test and the release of the run test")
    # `skaffold verify` takes the context from the kubeconfig (it has no --kube-context flag).
    assert kubectl("config", "current-context").strip() == CONTEXT
    with followed_job_logs(namespace, VERIFY_JOB, 400) as smoke:
        # exit 0 (Skaffold.run checks it): the Job's pod succeeded
        skaffold.run("verify", "-p", "dev", "-a", str(state["build_json"]), "-n", namespace,
                     timeout=400)  # fmt: skip
    # the smoke Job's JSON lines (service/admin.py), as its pod wrote them
    log = smoke.text()
    assert '"path": "/readyz", "status": 200, "state": "ready"' in log, log[-3000:]
    assert re.search(r'"path": "/users", "status": 200, "items": [1-9]', log), log[-3000:]
    jobs = json.loads(kubectl("-n", namespace, "get", "jobs", "-o", "json"))["items"]
    assert not [j for j in jobs if "migrate" not in j["metadata"]["name"]], "verify Job left"

    out = skaffold.run("delete", "-p", "dev", f"--kube-context={CONTEXT}", "-n", namespace,
                       timeout=300)  # fmt: skip
    assert f'release "{RELEASE}" uninstalled' in out, out[-2000:]
    assert release_names(namespace) == []
    wait_until("the release's pods to be gone", lambda: not json.loads(
        kubectl("-n", namespace, "get", "pods", "-o", "json"))["items"], 180)  # fmt: skip


# --------------------------------------------------------------------------- 4: skaffold dev


def copy_of_the_repository(target: Path) -> Path:
    """The tracked files as they are in the work tree (no .venv/.local), as a one-commit git
    repository, so skaffold's gitCommit tagger works as in a checkout."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                            check=True, timeout=60).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=skaffold test", "-c", "user.email=skaffold@example.invalid",
           "-c", "commit.gpgsign=false"]  # fmt: skip
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "copy for skaffold dev"]):
        subprocess.run([*git, *args], cwd=target, check=True, capture_output=True, timeout=60)
    return target


class Log:
    """skaffold's combined output, read by a thread, searchable while it runs."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.text = ""
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self.lock:
                self.text += line

    def snapshot(self) -> str:
        with self.lock:
            return self.text


def test_skaffold_dev_syncs_a_python_edit_into_the_same_pod(skaffold, tmp_path):
    deadline = time.monotonic() + DEV_TEST_SECONDS

    def left(at_most: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pytest.fail(f"the skaffold dev test ran over its {DEV_TEST_SECONDS}s bound")
        return min(at_most, remaining)

    work = copy_of_the_repository(tmp_path / "repo")
    health = work / "service/health.py"
    assert health.read_text().count(HEALTHZ_LINE) == 1, f"{HEALTHZ_LINE!r} not in health.py"
    namespace = new_namespace("-dev")
    proc = subprocess.Popen(
        [skaffold.binary, "dev", "-p", "dev", "--port-forward=user", f"--kube-context={CONTEXT}",
         f"--default-repo={REGISTRY}", "-n", namespace],
        cwd=work, env=skaffold.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # SIGINT from us only, never the terminal's
    )  # fmt: skip
    log = Log(proc)

    def serving() -> re.Match | None:
        if proc.poll() is not None:
            pytest.fail(f"skaffold dev exited {proc.returncode}:\n{log.snapshot()[-4000:]}")
        text = log.snapshot()
        forward = re.search(
            rf"Port forwarding service/{SERVICE} in namespace {namespace}, "
            r"remote port 80 -> http://127\.0\.0\.1:(\d+)", text,
        )  # fmt: skip
        return forward if forward and "Watching for changes" in text else None

    try:
        forwarded = wait_until("skaffold dev to deploy, forward and watch", serving, left(420), 2)
        api = f"http://127.0.0.1:{forwarded.group(1)}"
        before = log.snapshot()
        assert f"service/{SERVICE}-mysql" not in before, "--port-forward=user forwarded MySQL"
        (pod,) = web_pods(namespace)
        assert web_container(pod)["image"] == deployed_tag(before)
        assert request_json("GET", f"{api}/healthz", timeout=5).json == {"status": "ok"}
        builds_before = before.count("Building [users-service]")

        marker = secrets.token_hex(4)
        health.write_text(
            health.read_text().replace(
                HEALTHZ_LINE, f'return jsonify(status="ok", synced="{marker}")'
            )
        )
        wait_until(
            "the edited /healthz to be served",
            lambda: (
                request_json("GET", f"{api}/healthz", timeout=3).json
                == {"status": "ok", "synced": marker}
            ),
            left(120),
        )
        after = log.snapshot()[len(before) :]
        assert "Syncing 1 files for" in after, after[-3000:]
        assert "sync failed" not in after, after[-3000:]
        assert log.snapshot().count("Building [users-service]") == builds_before, "it rebuilt"
        (same,) = web_pods(namespace)
        assert same["metadata"]["uid"] == pod["metadata"]["uid"], "a new pod serves the edit"
        assert restarts(same) == restarts(pod), "the web container restarted"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: skaffold dev cleans up and exits
            try:
                proc.wait(timeout=max(5.0, min(120.0, deadline - time.monotonic() + 60)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
                pytest.fail(f"skaffold dev ignored SIGINT for 120 s:\n{log.snapshot()[-3000:]}")
        log.thread.join(timeout=10)
        released = release_names(namespace)
        delete_namespace(namespace)
    assert proc.returncode == 0, f"skaffold dev exited {proc.returncode}:\n{log.snapshot()[-3000:]}"
    assert (
        "Cleaning up..." in log.snapshot() and f'release "{RELEASE}" uninstalled' in log.snapshot()
    )
    assert released == [], f"skaffold dev left {released}"


# --------------------------------------------------------------------------- offline pins


def render(*args: str) -> list[dict]:
    args = ("-f", "chart/values-dev.yaml", *args)
    rendered = chart.render(
        *args, release=RELEASE, namespace=None, kube_version=None, helm=tool("helm")
    )
    return rendered.docs


def deployment(docs: list[dict]) -> dict:
    (found,) = [d for d in docs if d["kind"] == "Deployment"]
    return found


def test_chart_runs_repo_tag_at_digest_when_skaffold_passes_all_three():
    # skaffold's sync finds pods by the exact reference it pushed (`repo:tag@digest`); a bare tag
    # also let a rebuilt `<sha>-dirty` tag keep the node's cached old image.
    def image(*args: str) -> str:
        return web_container({"spec": deployment(render(*args))["spec"]["template"]["spec"]})[
            "image"
        ]

    assert image("--set", "image.repository=r/u", "--set", "image.tag=t1",
                 "--set", f"image.digest={DIGEST}") == f"r/u:t1@{DIGEST}"  # fmt: skip
    assert image("--set", "image.repository=r/u", "--set", f"image.digest={DIGEST}") == (
        f"r/u@{DIGEST}"
    )
    assert image("--set", "image.repository=r/u", "--set", "image.tag=t1") == "r/u:t1"
    # and skaffold passes the digest to every release
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    releases = list(config["deploy"]["helm"]["releases"])
    for profile in config["profiles"]:
        releases += profile.get("deploy", {}).get("helm", {}).get("releases", [])
    for release in releases:
        templates = release["setValueTemplates"]
        assert templates["image.digest"] == "{{.IMAGE_DIGEST_users_service}}", release


def test_skaffold_builds_like_docker_build_with_the_cli_on_the_host_network():
    config = yaml.safe_load((REPO / "skaffold.yaml").read_text())
    assert config["build"]["local"]["useDockerCLI"] is True
    artifacts = list(config["build"]["artifacts"])
    for profile in config["profiles"]:
        artifacts += profile.get("build", {}).get("artifacts", [])
        assert "local" not in profile.get("build", {}), profile["name"]
    assert artifacts and all(a["docker"]["network"] == "host" for a in artifacts)


def test_copy_source_init_container_seeds_a_root_owned_emptydir_as_uid_10001():
    # The emptyDir's root belongs to root (kubelet, with fsGroup 10001 and setgid): copytree() onto
    # it failed with EPERM in copystat() and the dev pod never started.
    require_root("to run the copy-source command as uid 10001")
    require_tool("setpriv", "apt-get install util-linux")
    if not Path("/usr/bin/python3").exists():
        missing("no /usr/bin/python3 to run the copy-source command with")
    spec = deployment(render("--set", "web.reload=true", "--set", "image.tag=x"))["spec"]
    (copy,) = [c for c in spec["template"]["spec"]["initContainers"] if c["name"] == "copy-source"]
    assert copy["securityContext"]["runAsUser"] == 10001
    root = Path(tempfile.mkdtemp(prefix="copy-source-"))
    try:
        root.chmod(0o755)
        source, target = root / "app-service", root / "source"
        shutil.copytree(REPO / "service", source, ignore=shutil.ignore_patterns("__pycache__"))
        target.mkdir()
        os.chown(target, 0, 10001)
        target.chmod(0o2777)
        assert copy["command"] == ["python", "-m", "service", "copy-source", "/source"]
        # The command's work is service/admin.py's copy_entries (stdlib only): run it as uid 10001
        # with the system python, which can read neither the repo's venv nor /root.
        script = (
            "import importlib.util, pathlib, sys\n"
            "spec = importlib.util.spec_from_file_location('admin', sys.argv[1])\n"
            "admin = importlib.util.module_from_spec(spec); spec.loader.exec_module(admin)\n"
            "admin.copy_entries(pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3]))\n"
        )
        out = subprocess.run(
            ["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups",
             "/usr/bin/python3", "-c", script, str(source / "admin.py"), str(source), str(target)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        copied = sorted(p.relative_to(target) for p in target.rglob("*"))
        assert copied == sorted(p.relative_to(source) for p in source.rglob("*"))
        assert all(p.stat().st_uid == 10001 for p in target.rglob("*")), "not writable for sync"
    finally:
        shutil.rmtree(root)


def test_reloading_web_process_serves_an_edited_module(tmp_path):
    # gunicorn --reload restarted the workers, but they were forked from a master that had
    # imported every app module (service/gunicorn_conf.py imports the service package), so they
    # kept serving the old code; `post_fork` makes each worker import the app afresh.
    shutil.copytree(REPO / "service", tmp_path / "service",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_HOST": "127.0.0.1", "DATABASE_USER": "u", "DATABASE_PASSWORD": "p",
        "DATABASE_NAME": "n", "PORT": str(port), "WEB_RELOAD": "true", "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"), "PYTHONDONTWRITEBYTECODE": "1",
    }  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "service", "web"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    healthz = f"http://127.0.0.1:{port}/healthz"
    try:

        def health_says(status: str):
            return lambda: request_json("GET", healthz, timeout=5).json == {"status": status}

        wait_until("the web process", health_says("ok"), 30, 0.5)
        health = tmp_path / "service/health.py"
        assert health.read_text().count(HEALTHZ_LINE) == 1
        health.write_text(health.read_text().replace(HEALTHZ_LINE, 'return jsonify(status="new")'))
        wait_until("the edited code", health_says("new"), 30, 0.5)
    finally:
        stop_process(proc, timeout=20)
