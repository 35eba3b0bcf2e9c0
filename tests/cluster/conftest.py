"""The cluster tier: tests against the local node of `make cluster-up` (k8s-dev/cluster).

They run in `make test-cluster`, which starts the node and sets CLUSTER_TESTS_REQUIRED=1. In
plain `make test` there is no cluster: the tests that need one are reported as skipped with the
reason (a failure under CLUSTER_TESTS_REQUIRED=1, so the tier cannot pass without running).
"""

from __future__ import annotations

import pytest
from cluster_helpers import KUBECONFIG, SKIP_REASON, cluster_required


@pytest.fixture(scope="session")
def kubeconfig():
    if not KUBECONFIG.exists():
        if cluster_required():
            pytest.fail(f"CLUSTER_TESTS_REQUIRED=1 but {KUBECONFIG} does not exist")
        pytest.skip(SKIP_REASON)
    return KUBECONFIG
