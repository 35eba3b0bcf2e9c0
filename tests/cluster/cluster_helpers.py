"""Shared by the cluster tier's tests: kubectl/helm against the local node (polling and the tool
policy are tests/support's)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.paths import REPO
from tests.support.tools import require_tool

KUBECONFIG = REPO / ".local/cluster/kubeconfig"
CONTEXT = "users-local"
SKIP_REASON = (
    "changes the local cluster: run by `make test-cluster` (root), which sets "
    "CLUSTER_TESTS_REQUIRED=1"
)


def cluster_required() -> bool:
    return os.environ.get("CLUSTER_TESTS_REQUIRED") == "1"


def _run(
    argv: list[str], what: str, timeout: float, check: bool, **kw
) -> subprocess.CompletedProcess:
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO, **kw
    )
    if check and out.returncode != 0:
        pytest.fail(f"{what} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def kubectl(*args: str, timeout: float = 120, check: bool = True, stdin: str | None = None) -> str:
    argv = [tool("kubectl"), "--kubeconfig", str(KUBECONFIG), "--context", CONTEXT, *args]
    return _run(argv, f"kubectl {' '.join(args)}", timeout, check, input=stdin).stdout


def tool(name: str) -> str:
    """By the policy of tests/support/tools.py; the tier runs only under CLUSTER_TESTS_REQUIRED=1
    (`make test-cluster`), where a missing tool is a failure."""
    return require_tool(name, required=cluster_required())


def helm(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    argv = [tool("helm"), "--kubeconfig", str(KUBECONFIG), "--kube-context", CONTEXT, *args]
    return _run(argv, f"helm {' '.join(args)}", timeout, check)


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds; always reaped."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
