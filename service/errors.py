"""Every error leaves as `application/problem+json` (RFC 9457): never an HTML page, never a
stack trace. Unexpected exceptions are logged with their traceback and answered with a 500
that says nothing about the internals."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException, InternalServerError

from service.db import DatabaseUnavailable

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger(__name__)


class ValidationFailed(Exception):
    """Request content is well-formed but wrong; `errors` lists each bad field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class Conflict(Exception):
    """The request conflicts with the current state (e.g. a duplicate email)."""


def problem(status: int, detail: str, title: str | None = None, **extra: Any) -> Response:
    """A problem+json response; `title` defaults to the HTTP status phrase."""
    body = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    return Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)


def _http_error(exc: HTTPException) -> Response:
    response = problem(exc.code or 500, exc.description or HTTPStatus(exc.code or 500).phrase)
    if exc.code == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _validation_failed(exc: ValidationFailed) -> Response:
    return problem(422, "The request body failed validation.", errors=exc.errors)


def _conflict(exc: Conflict) -> Response:
    return problem(409, str(exc))


def _database_unavailable(exc: DatabaseUnavailable) -> Response:
    log.warning("database unavailable", extra={"reason": str(exc)})
    response = problem(503, "The database is unavailable; try again shortly.")
    response.headers["Retry-After"] = "1"
    return response


def _unexpected(exc: Exception) -> Response:
    # HTTPExceptions never get here: Flask picks the most specific handler (_http_error).
    log.exception("unhandled exception")
    return problem(500, InternalServerError.description)


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ValidationFailed, _validation_failed)
    app.register_error_handler(Conflict, _conflict)
    app.register_error_handler(DatabaseUnavailable, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
