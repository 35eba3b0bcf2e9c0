"""`make cluster-deploy`: the development install on the local cluster, as docs/kubernetes.md
writes it.

1. a docker daemon: the one DOCKER_HOST names, else a private one (scripts/dockerd.py) that
   `make cluster-down` stops;
2. the app image from the project's Dockerfile on the stand-in base (scripts/standin_base.py),
   tagged users-service:dev-<git sha>[-dirty-<hash>] like k8s-dev/deploy.sh does for kind;
3. the stand-in for mysql:8.4 (images/mysql-standin, Debian's MariaDB; see its README);
4. both imported into the node's containerd (the step `kind load docker-image` does for kind);
5. helm upgrade --install users chart -n users --create-namespace -f chart/values-dev.yaml
   -f k8s-dev/values-local.yaml --set image.tag=<tag> --wait; then waits for
   http://127.0.0.1:30080/readyz.

The image reference is written to .local/cluster/image for the tests. Library: docker_env(),
build_app_image(tag), build_mysql_image(), import_into_node(refs), helm(), dev_tag().
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "scripts"))
import dockerd  # noqa: E402
import node  # noqa: E402

DOCKER_STATE = pathlib.Path(os.environ.get("CLUSTER_DOCKER_STATE", node.DOCKER_STATE))
RELEASE, NAMESPACE = "users", "users"
IMAGE_REPO = "users-service"
MYSQL_IMAGE = "mysql:8.4"
API = f"http://127.0.0.1:{node.NODEPORT}"
IMAGE_FILE = REPO / ".local/cluster/image"


def log(message: str) -> None:
    print(f"cluster-deploy: {message}", flush=True)


def sh(*argv: str, env: dict | None = None, capture: bool = True) -> str:
    out = subprocess.run(argv, env=env, capture_output=capture, text=True, check=False, cwd=REPO)
    if out.returncode != 0:
        detail = (out.stderr or out.stdout or "").strip()[-3000:] if capture else ""
        raise node.ClusterError(f"{' '.join(argv[:4])} ... failed ({out.returncode}) {detail}")
    return out.stdout if capture else ""


def tool(name: str) -> str:
    """A working tool on PATH first, then the one `make tools` put in .tools/bin."""
    for candidate in (shutil.which(name), str(REPO / ".tools/bin" / name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise node.ClusterError(f"'{name}' not found: run 'make tools'", 2)


def docker_env() -> dict[str, str]:
    """Environment with DOCKER_HOST (and DOCKER, the CLI) of a daemon that answers."""
    env = dict(os.environ)
    if env.get("DOCKER_HOST"):
        env.setdefault("DOCKER", shutil.which("docker") or "docker")
        return env
    if (DOCKER_STATE / "docker.sock").exists() and dockerd.ping(DOCKER_STATE / "docker.sock"):
        exported = dockerd.exports(json.loads((DOCKER_STATE / dockerd.STATE_FILE).read_text()))
    else:
        log(f"starting a private dockerd under {DOCKER_STATE}")
        exported = dockerd.start(DOCKER_STATE)
    env.update(exported)
    return env


def dev_tag() -> str:
    """dev-<sha>, plus -dirty-<hash of the changes> for a work tree with edits."""
    sha = sh("git", "rev-parse", "--short=12", "HEAD").strip()
    status = sh("git", "status", "--porcelain", "--untracked-files=normal")
    if not status.strip():
        return f"dev-{sha}"
    digest = hashlib.sha256(sh("git", "diff", "HEAD").encode())
    for path in sh("git", "ls-files", "--others", "--exclude-standard").split():
        digest.update(path.encode() + (REPO / path).read_bytes())
    return f"dev-{sha}-dirty-{digest.hexdigest()[:8]}"


def standin(*args: str, env: dict) -> str:
    """scripts/standin_base.py: its result is the last line it prints."""
    out = sh(sys.executable, str(REPO / "scripts/standin_base.py"), *args, env=env)
    return out.strip().splitlines()[-1] if out.strip() else ""


def base_image(env: dict) -> str:
    """The stand-in for python:3.12-slim, imported into the daemon under that name as well, so
    the Dockerfile's default base (and skaffold's and compose's builds) find it without a pull."""
    return standin("import", "--tag", "python:3.12-slim", env=env)


def build_app_image(tag: str, env: dict) -> str:
    ref = f"{IMAGE_REPO}:{tag}"
    base = base_image(env)
    git_sha = sh("git", "rev-parse", "HEAD").strip()
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args = ["--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"APP_VERSION={tag}",
            "--build-arg", f"GIT_SHA={git_sha}", "--build-arg", f"BUILD_DATE={date}"]  # fmt: skip
    index = standin("pip-index-url", env=env)
    if index:
        args += ["--build-arg", f"PIP_INDEX_URL={index}"]
    log(f"docker build -t {ref} (base {base})")
    sh(env["DOCKER"], "build", "--network", "host", *args, "-t", ref, ".", env=env)
    return ref


def build_mysql_image(env: dict) -> str:
    """The stand-in for mysql:8.4 (Debian's MariaDB), tagged mysql:8.4 in the daemon."""
    standin("mysql", env=env)
    return MYSQL_IMAGE


def import_into_node(refs: list[str], env: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tar = pathlib.Path(tmp) / "images.tar"
        sh(env["DOCKER"], "save", "-o", str(tar), *refs, env=env)
        node.import_images([tar])


def helm(*args: str, timeout: float = 600) -> str:
    kubeconfig = str(node.KUBECONFIG_OUT)
    out = subprocess.run(
        [tool("helm"), "--kubeconfig", kubeconfig, "--kube-context", node.CONTEXT, *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO,
    )  # fmt: skip
    if out.returncode != 0:
        raise node.ClusterError(f"helm {' '.join(args[:2])} failed: {out.stderr.strip()[-3000:]}")
    return out.stdout


def wait_for_api(timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{API}/readyz", timeout=3) as r:  # noqa: S310 - loopback
                if r.status == 200:
                    return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise node.ClusterError(f"{API}/readyz did not answer 200: {exc}") from None
        time.sleep(1)


def main() -> None:
    started = time.monotonic()
    if not node.KUBECONFIG_OUT.exists():
        raise node.ClusterError("no local cluster: run 'make cluster-up' first", 2)
    env = docker_env()
    tag = dev_tag()
    app = build_app_image(tag, env)
    mysql = build_mysql_image(env)
    log(f"importing {app} and {mysql} into the node ({time.monotonic() - started:.0f}s)")
    import_into_node([app, mysql], env)
    log(f"helm upgrade --install {RELEASE} (namespace {NAMESPACE}, context {node.CONTEXT})")
    helm("upgrade", "--install", RELEASE, "chart", "-n", NAMESPACE, "--create-namespace",
         "-f", "chart/values-dev.yaml", "-f", "k8s-dev/values-local.yaml",
         "--set", f"image.repository={IMAGE_REPO}", "--set", f"image.tag={tag}",
         "--wait", "--timeout", "6m")  # fmt: skip
    wait_for_api()
    IMAGE_FILE.parent.mkdir(parents=True, exist_ok=True)
    IMAGE_FILE.write_text(app + "\n")
    log(f"{app} deployed as release '{RELEASE}' in {time.monotonic() - started:.0f}s")
    print(f"  curl -s {API}/readyz")
    print(f"  kubectl --kubeconfig {node.KUBECONFIG_OUT} -n {NAMESPACE} get pods")


if __name__ == "__main__":
    main()
