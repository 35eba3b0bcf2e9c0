"""`make cluster-up` names a missing prerequisite in one line and exits 2 (no cluster needed)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.support.paths import REPO
from tests.support.tools import require_root, require_tool

NODE = REPO / "k8s-dev/cluster/node.py"


def run_up(tmp_path, *prefix: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CLUSTER_STATE_DIR": str(tmp_path / "state"),
        "CLUSTER_RUN_DIR": str(tmp_path / "run"),
    }
    return subprocess.run(
        [*prefix, sys.executable, str(NODE), "up"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip


def test_not_root_is_named_in_one_line(tmp_path):
    require_root("to drop to uid 65534 with setpriv")
    setpriv = require_tool("setpriv", "apt-get install util-linux")
    tmp_path.chmod(0o777)
    out = run_up(tmp_path, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        "cluster: needs root (it starts containerd, a kubelet and iptables rules)"
    ]


def test_a_taken_port_is_named_in_one_line(tmp_path):
    require_root("node.py's root check comes before its port check")
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", 2379))
        except OSError:
            pytest.skip("2379 is in use already (a running cluster): the check is shown anyway")
        holder.listen()
        out = run_up(tmp_path)
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines() == [
        "cluster: port 2379 (etcd) is taken: stop what holds it"
    ]
