"""Probes and build info: /healthz (liveness), /readyz (readiness), /version."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from service.db import DatabaseUnavailable, short_connection
from service.errors import problem
from service.migrations import status

bp = Blueprint("health", __name__)

_draining = False


def mark_draining() -> None:
    """Called by the worker when SIGTERM arrives: from then on /readyz answers 503, while the
    worker still serves, so traffic moves elsewhere before the listener closes."""
    global _draining  # noqa: PLW0603 - one flag per worker process, set once, never cleared
    _draining = True


@bp.get("/healthz")
def healthz() -> Response:
    """Alive while the process can serve. Never touches the database: a liveness probe that
    failed with MySQL would restart every pod during a database outage, fixing nothing."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the database answers within READINESS_TIMEOUT and the schema has every
    migration this code ships; otherwise 503 with the reason, so traffic goes elsewhere."""
    if _draining:
        return problem(503, "shutting down", title="Not Ready")
    settings = current_app.config["SETTINGS"]
    try:
        with short_connection(settings.database, settings.readiness_timeout) as conn:
            schema = status(conn, current_app.config["MIGRATIONS"])
    except DatabaseUnavailable as exc:
        return problem(503, f"database unavailable: {exc}", title="Not Ready")
    if not schema.ok:
        return problem(503, schema.reason(), title="Not Ready", schema_version=schema.current)
    return jsonify(status="ready", schema_version=schema.current)


@bp.get("/version")
def version() -> Response:
    settings = current_app.config["SETTINGS"]
    return jsonify(
        version=settings.app_version, git_sha=settings.git_sha, build_date=settings.build_date
    )
