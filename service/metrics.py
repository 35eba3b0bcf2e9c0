"""Prometheus metrics at /metrics, aggregated across gunicorn workers.

In the web process PROMETHEUS_MULTIPROC_DIR is set before gunicorn starts (`web` in cli.py), so
every worker writes its samples to files there and /metrics, served by whichever worker,
sums them. In-process (tests, `flask run`) a private registry is used.

prometheus-flask-exporter serves /metrics (and, in multiprocess mode, collects the workers'
files). The per-request metrics keep the exporter's names, help texts and labels, but are
recorded here, once per request, by service/access.py rather than by the exporter's Flask hooks:
  - every label value comes from a fixed set: `method` is one of METHODS or "other" (a client
    may send any token as the method: 2,000 made-up methods made 37,000 series when the raw
    method was the label), `route` is the URL rule or "<unmatched>", `status` an HTTP status the
    app answered with;
  - the labelled children are looked up once per (method, route, status) and kept, which that
    bound makes safe; the exporter's hooks cost about 35 µs per request (bench/README.md).
Probe and metrics requests are not counted.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

from service.db import Observer

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED = "<unmatched>"
NOT_COUNTED = frozenset({"/healthz", "/readyz", "/metrics"})
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Recorder = Callable[[str, str, int, float], None]


def method_label(method: str) -> str:
    """The `method` label: a known HTTP method, else "other"."""
    return method if method in METHODS else OTHER_METHOD


def request_recorder(registry: CollectorRegistry) -> Recorder:
    """Register the exporter's request metrics in `registry`; return `record(method, route,
    status, seconds)`, which the access middleware calls once per request."""
    duration = Histogram(
        "flask_http_request_duration_seconds",
        "Flask HTTP request duration in seconds",
        ("method", "route", "status"),
        registry=registry,
    )
    total = Counter(
        "flask_http_request_total",
        "Total number of HTTP requests",
        ("method", "status"),
        registry=registry,
    )
    exceptions = Counter(
        "flask_http_request_exceptions_total",
        "Total number of HTTP requests which resulted in an exception",
        ("method", "status"),
        registry=registry,
    )
    children: dict[tuple[str, str, int], tuple[Callable[..., None], ...]] = {}

    def record(method: str, route: str, status: int, seconds: float) -> None:
        if route in NOT_COUNTED:
            return
        key = (method_label(method), route, status)
        entry = children.get(key)
        if entry is None:
            label, code = key[0], str(status)
            entry = children[key] = (
                duration.labels(label, route, code).observe,
                total.labels(label, code).inc,
                # every 5xx here is an exception the app turned into a problem response
                *((exceptions.labels(label, code).inc,) if status >= 500 else ()),
            )
        entry[0](seconds)
        for count in entry[1:]:
            count()

    return record


def init_app(app: object, *, multiprocess: bool) -> tuple[Recorder, Observer]:
    """Attach the exporter (/metrics); return the request recorder and the observer the database
    layer reports query times to."""
    options = {
        "export_defaults": False,  # the request metrics are recorded by request_recorder
        "registry": CollectorRegistry(),  # one per app: tests build many apps in one process
    }
    if multiprocess:
        metrics = GunicornInternalPrometheusMetrics(app, **options)
    else:
        metrics = PrometheusMetrics(app, **options)
    metrics.info(
        "flask_exporter_info",
        "Information about the Prometheus Flask exporter",
        version=metrics.version,
    )
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

    return request_recorder(metrics.registry), observe
