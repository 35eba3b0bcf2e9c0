"""Which helm and kubectl the k8s-dev scripts run: yours from PATH when it runs (`helm version`,
`kubectl version --client`), else the pinned ones `make tools` puts in .tools/bin (its helm is a
Linux x86-64 binary), else one line per tool saying what to install.

Each test copies k8s-dev/*.sh into a scratch repository whose .tools/bin holds fake tools, and
runs them with a PATH of fakes plus the few system commands the scripts use."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEM_COMMANDS = ("bash", "dirname", "grep", "cat", "awk")
BASH = shutil.which("bash")


def fake(path: Path, name: str, *, works: bool = True, output: str = "") -> Path:
    """A fake tool that logs each call to $CALLS and prints `output`; a broken one fails like a
    binary built for another platform."""
    path.mkdir(parents=True, exist_ok=True)
    tool = path / name
    if works:
        body = f'echo "{tool} $*" >> "$CALLS"\ncat <<\'OUT\'\n{output}\nOUT\n'
    else:
        body = f'echo "{tool}: cannot execute binary file: Exec format error" >&2\nexit 126\n'
    tool.write_text(f"#!{BASH}\n{body}")
    tool.chmod(0o755)
    return tool


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A repository copy with k8s-dev's scripts and an empty .tools/bin, and system commands."""
    (tmp_path / "repo/k8s-dev").mkdir(parents=True)
    for script in (REPO / "k8s-dev").glob("*.sh"):
        shutil.copy2(script, tmp_path / "repo/k8s-dev" / script.name)
    (tmp_path / "repo/.tools/bin").mkdir(parents=True)
    system = tmp_path / "system"
    system.mkdir()
    for name in SYSTEM_COMMANDS:
        found = shutil.which(name)
        assert found, name
        (system / name).symlink_to(found)
    return tmp_path


def run(scratch: Path, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BASH, "-c", script],
        cwd=scratch / "repo",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={
            "PATH": f"{scratch / 'path'}:{scratch / 'system'}",
            "HOME": str(scratch),
            "CALLS": str(scratch / "calls"),
        },
    )


def calls(scratch: Path) -> list[str]:
    log = scratch / "calls"
    return log.read_text().splitlines() if log.exists() else []


def kind_up(scratch: Path) -> subprocess.CompletedProcess:
    fake(scratch / "path", "kind", output="users-dev")  # the cluster exists: no `kind create`
    fake(scratch / "path", "docker")
    return run(scratch, "k8s-dev/kind-up.sh")


def chosen_helm(scratch: Path) -> subprocess.CompletedProcess:
    return run(scratch, 'source k8s-dev/lib.sh && echo "$HELM"')


def web_deployment_name(scratch: Path) -> subprocess.CompletedProcess:
    return run(scratch, "source k8s-dev/lib.sh && web_deployment_name")


def test_a_working_helm_and_kubectl_on_path_win_over_the_tools_ones(scratch: Path) -> None:
    fake(scratch / "path", "helm")
    fake(scratch / "repo/.tools/bin", "helm")
    out = chosen_helm(scratch)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(scratch / "path/helm")

    fake(scratch / "path", "kubectl")
    fake(scratch / "repo/.tools/bin", "kubectl")
    out = kind_up(scratch)
    assert out.returncode == 0, out.stderr
    kubectl_calls = [c for c in calls(scratch) if "kubectl --context" in c]
    assert kubectl_calls, calls(scratch)
    assert all(c.startswith(str(scratch / "path/kubectl")) for c in kubectl_calls), kubectl_calls


def test_the_tools_ones_are_used_when_the_ones_on_path_do_not_run(scratch: Path) -> None:
    fake(scratch / "path", "helm", works=False)
    fake(scratch / "repo/.tools/bin", "helm")
    out = chosen_helm(scratch)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(scratch / "repo/.tools/bin/helm")

    fake(scratch / "path", "kubectl", works=False)
    fake(scratch / "repo/.tools/bin", "kubectl")
    out = kind_up(scratch)
    assert out.returncode == 0, out.stderr
    kubectl_calls = [c for c in calls(scratch) if "kubectl --context" in c]
    assert kubectl_calls, calls(scratch)
    assert all(c.startswith(str(scratch / "repo/.tools/bin/kubectl")) for c in kubectl_calls)


def test_without_a_helm_or_kubectl_that_runs_each_gets_one_line_saying_what_to_install(
    scratch: Path,
) -> None:
    fake(scratch / "path", "helm", works=False)  # e.g. the bundled Linux x86-64 helm on a Mac
    fake(scratch / "repo/.tools/bin", "helm", works=False)
    fake(scratch / "path", "kubectl", works=False)
    out = run(scratch, "source k8s-dev/lib.sh && require helm kubectl")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2, out.stderr
    helm, kubectl = lines
    assert helm.startswith("k8s-dev: 'helm' not found:")
    assert "https://helm.sh/docs/intro/install" in helm
    assert kubectl.startswith("k8s-dev: 'kubectl' not found:")
    assert "https://kubernetes.io/docs/tasks/tools" in kubectl


def test_the_web_deployment_name_comes_from_the_cluster_by_the_release_labels(
    scratch: Path,
) -> None:
    fake(scratch / "path", "kubectl", output="users-users-service")
    out = web_deployment_name(scratch)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "users-users-service"
    asked = [c for c in calls(scratch) if " get deployment " in c]
    assert asked == [
        f"{scratch / 'path/kubectl'} --context kind-users-dev -n default get deployment"
        " -l app.kubernetes.io/instance=users,app.kubernetes.io/component=web"
        " -o jsonpath={.items[*].metadata.name}"
    ], calls(scratch)


@pytest.mark.parametrize("found", ["", "a-users-service b-users-service"])
def test_no_web_deployment_or_more_than_one_is_one_line_naming_the_selector(
    scratch: Path, found: str
) -> None:
    fake(scratch / "path", "kubectl", output=found)
    out = web_deployment_name(scratch)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr.strip().splitlines() == [
        "k8s-dev: expected one Deployment labelled"
        " app.kubernetes.io/instance=users,app.kubernetes.io/component=web in namespace default,"
        f" found: {found or 'none'}"
    ]
