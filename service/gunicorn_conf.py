"""gunicorn settings for the web process, all derived from the service's settings object.

Loaded by `python -m service web` as `--config python:service.gunicorn_conf`. The master
reads it once; workers are forked after it and build the app themselves (no preload), so no
database connection or metrics file is ever shared across a fork.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from gunicorn import glogging
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from service.logs import logging_config
from service.settings import load_settings


class Logger(glogging.Logger):
    """gunicorn's logger without its access log: the app writes a leaner one, with the request
    id (service/access.py). With logconfig_dict set, gunicorn would otherwise build a dict of
    every header and environ entry for each request, even with the access logger silenced."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return


_settings = load_settings(os.environ)

wsgi_app = "service:create_app()"
bind = [f"0.0.0.0:{_settings.port}"]
workers = _settings.web_concurrency
# Worker model: gevent (service/worker.py), not sync or gthread. A sync worker, or a gthread
# thread, is held by one connection for as long as its client takes to send a request head:
# two clients that connect and send nothing stopped /healthz and got the workers killed. A
# gevent worker holds each connection in a greenlet (up to WEB_WORKER_CONNECTIONS), bounds the
# request head by WEB_KEEPALIVE seconds, and PyMySQL, pure Python, yields on the database socket
# too. The app must then never block the process outside sockets (no C-extension I/O, no long
# CPU loops). Measurements: bench/README.md.
#
# Monkey-patching happens in the worker after fork (Worker.patch), not here in the master: the
# master only forks, signals and sleeps, and gunicorn has imported ssl before this file runs,
# so patching cannot come first anyway. gevent's warning about that names modules holding a
# direct reference to ssl.SSLContext; it is logged as JSON (captureWarnings) rather than
# silenced, and no TLS context is created before the patch (PyMySQL builds one per connection,
# looked up through the patched module).
worker_class = "service.worker.Worker"
worker_connections = _settings.web_worker_connections
keepalive = _settings.web_keepalive
timeout = _settings.web_timeout
graceful_timeout = _settings.graceful_timeout
worker_tmp_dir = str(_settings.worker_tmp_dir)  # tmpfs: the heartbeat file never blocks on disk
reload = _settings.web_reload
control_socket_disable = True  # no $HOME/.gunicorn socket: read-only root fs, one per test server
logconfig_dict = logging_config(_settings.log_level)
logger_class = Logger
proc_name = "users-service"


def on_starting(server: Any) -> None:
    """Wipe the metrics of earlier runs: stale per-PID files would be summed into /metrics."""
    for entry in _settings.metrics_dir.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """Fold a dead worker's live gauges away (its counters stay summed)."""
    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)


def post_fork(server: Any, worker: Any) -> None:
    """With WEB_RELOAD=true (development: skaffold's file sync) each new worker imports the app
    from disk itself. gunicorn --reload restarts the workers when a file changes, but a forked
    worker inherits the master's modules, and loading this config imported the whole service
    package (service/__init__.py imports every app module): without this the new workers would
    serve the code of the moment the master started."""
    if reload:
        for name in [m for m in sys.modules if m == "service" or m.startswith("service.")]:
            del sys.modules[name]
