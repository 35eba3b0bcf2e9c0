"""Factor VIII, concurrency: scale out by process type: WEB_CONCURRENCY worker processes per
web process, and replicas (kubectl scale, the HPA) on Kubernetes."""

from __future__ import annotations

import time

from tests.support.processes import tree
from tests.support.wait import wait_until
from tests.support.web import WebProcess


def test_web_concurrency_sets_the_number_of_worker_processes(database, tmp_path):
    for workers in (1, 3):
        web = WebProcess(database, tmp_path, overrides={"WEB_CONCURRENCY": str(workers)})
        try:
            # /healthz answers once the first worker runs; the master forks the others meanwhile
            def forked(pid: int = web.process.pid, expected: int = 1 + workers) -> bool:
                return len(tree(pid)) >= expected

            wait_until(f"{workers} worker processes", forked, 15, 0.1, errors=())
            time.sleep(0.5)  # and no more than that many follow
            assert len(tree(web.process.pid)) == 1 + workers
            for _ in range(10):
                assert web.request("GET", "/users")[0] == 200
        finally:
            assert web.stop() == 0
