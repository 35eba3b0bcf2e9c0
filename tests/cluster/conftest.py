"""The cluster tier: tests against the local node of `make cluster-up` (k8s-dev/cluster).

They run in `make test-cluster`, which starts the node and sets CLUSTER_TESTS_REQUIRED=1. They
change the cluster (the release `users` is upgraded, rolled back and uninstalled), so without that
variable they are reported as skipped with the reason, even while a cluster is up: plain `make
test` never touches it. Under CLUSTER_TESTS_REQUIRED=1 a missing cluster is a failure, so the tier
cannot pass without running.
"""

from __future__ import annotations

import pytest

from tests.cluster.cluster_helpers import KUBECONFIG, SKIP_REASON, cluster_required


@pytest.fixture(scope="session")
def kubeconfig():
    if not cluster_required():
        pytest.skip(SKIP_REASON)
    if not KUBECONFIG.exists():
        pytest.fail(f"CLUSTER_TESTS_REQUIRED=1 but {KUBECONFIG} does not exist")
    return KUBECONFIG
