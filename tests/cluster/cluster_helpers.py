"""Shared by the cluster tier's tests: kubectl/helm against the local node, and polling."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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


def wait_until(what: str, check: Callable[[], object], timeout: float, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:
            result, last = None, exc
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last!r})")


def tool(name: str) -> str:
    """A working tool on PATH first (the user's own), then the one `make tools` installed."""
    for candidate in (shutil.which(name), str(REPO / ".tools/bin" / name)):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"{name} not found: run `make tools`")


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
