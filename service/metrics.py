"""Prometheus metrics at /metrics, aggregated across gunicorn workers.

In the web process PROMETHEUS_MULTIPROC_DIR is set before gunicorn starts (`web` in cli.py), so
every worker writes its samples to files there and /metrics, served by whichever worker,
sums them. Request metrics are labelled by route template, never by raw path; probe and
metrics requests are not counted. In-process (tests, `flask run`) a private registry is used.
"""

from __future__ import annotations

from flask import Flask, Request
from prometheus_client import CollectorRegistry, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from service.db import Observer

EXCLUDED_PATHS = [r"^/(healthz|readyz|metrics)$"]
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def route(request: Request) -> str:
    """The label for a request: its URL rule (`/users/<int:user_id>`); unmatched paths share
    one label so that scanners cannot create a series per path."""
    return request.url_rule.rule if request.url_rule is not None else "<unmatched>"


def init_app(app: Flask, *, multiprocess: bool) -> Observer:
    """Attach the exporter; return the observer the database layer reports query times to."""
    options = {
        "group_by": route,
        "excluded_paths": EXCLUDED_PATHS,
        "registry": CollectorRegistry(),  # one per app: tests build many apps in one process
    }
    if multiprocess:
        metrics = GunicornInternalPrometheusMetrics(app, **options)
    else:
        metrics = PrometheusMetrics(app, **options)
    # Registered like the exporter's own metrics. In multiprocess mode the samples go to files
    # in PROMETHEUS_MULTIPROC_DIR, and /metrics reads those through a fresh registry.
    query_seconds = Histogram(
        "users_db_query_duration_seconds",
        "Time spent in MySQL statements, by operation.",
        ["operation"],
        buckets=DB_BUCKETS,
        registry=metrics.registry,
    )
    observers = {
        op: query_seconds.labels(op).observe for op in ("select", "insert", "update", "delete")
    }

    def observe(operation: str, seconds: float) -> None:
        observers[operation](seconds)

    return observe
