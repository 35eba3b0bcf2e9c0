"""Factor VIII, concurrency: scale out by process type: WEB_CONCURRENCY worker processes per
web process, and replicas (kubectl scale, the HPA) on Kubernetes."""

from __future__ import annotations

from tests.support.processes import tree
from tests.support.web import WebProcess


def test_web_concurrency_sets_the_number_of_worker_processes(database, tmp_path):
    for workers in (1, 3):
        web = WebProcess(database, tmp_path, overrides={"WEB_CONCURRENCY": str(workers)})
        try:
            below_master = [p for p in tree(web.process.pid) if p != web.process.pid]
            assert len(below_master) == workers
            for _ in range(10):
                assert web.request("GET", "/users")[0] == 200
        finally:
            assert web.stop() == 0
