"""gunicorn config for bench/profile_worker.py: the app's own settings plus cProfile hooks.

BENCH_PROFILE_APP=service loads service.gunicorn_conf unchanged (JSON logs, metrics, ...);
=baseline serves bench.baseline_app the way bench/run.py does (access log off). Each worker
profiles itself from the moment its app is loaded until it exits and writes
$BENCH_PROFILE_DIR/<pid>.prof.
"""

from __future__ import annotations

import cProfile
import os
from typing import Any

if os.environ["BENCH_PROFILE_APP"] == "service":
    from service.gunicorn_conf import *  # noqa: F403 - the service's settings, unchanged
else:
    wsgi_app = "bench.baseline_app:app"
    bind = [f"127.0.0.1:{os.environ['PORT']}"]
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    worker_tmp_dir = "/dev/shm"  # noqa: S108 - as the service
    control_socket_disable = True

_profiler = cProfile.Profile()


def post_worker_init(worker: Any) -> None:
    _profiler.enable()


def worker_exit(server: Any, worker: Any) -> None:
    _profiler.disable()
    _profiler.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DIR"], f"{worker.pid}.prof"))
