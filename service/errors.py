"""Every error leaves as `application/problem+json` (RFC 9457): never an HTML page, never a
stack trace. Unexpected exceptions are logged with their traceback and answered with a 500
that says nothing about the internals.

An error that leaves the request body partly read (too large, malformed chunked framing, the
client too slow) also closes the connection: where the next request would start on it is
unknown, and reading on to find out is what a client sending an endless body wants."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    RequestEntityTooLarge,
    RequestTimeout,
)

from service.db import DatabaseUnavailable

PROBLEM_JSON = "application/problem+json"
# Set in the WSGI environ when the response must be the connection's last.
CLOSE_CONNECTION = "service.close_connection"

log = logging.getLogger(__name__)


class ValidationFailed(Exception):
    """Request content is well-formed but wrong; `errors` lists each bad field."""

    def __init__(
        self, errors: list[dict[str, str]], detail: str = "The request body failed validation."
    ) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors
        self.detail = detail


class BodyTooLarge(RequestEntityTooLarge):
    """The body is over MAX_BODY_BYTES, by its Content-Length or by what arrived."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"The body is larger than {limit} bytes (MAX_BODY_BYTES).")


class BodyUnreadable(BadRequest):
    """Reading the body failed: malformed chunked framing, or the client went away."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The request body could not be read: {reason}")


class BodyTimedOut(RequestTimeout):
    """The body did not arrive within the server's timeout."""

    def __init__(self) -> None:
        super().__init__("The request body did not arrive in time.")


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
    if isinstance(exc, BodyUnreadable | RequestEntityTooLarge | RequestTimeout):
        close_connection()
    return response


def close_connection() -> None:
    """Make this request's response the connection's last. Only the server can: a WSGI app
    must not send hop-by-hop headers (PEP 3333), and gunicorn drops an app's `Connection`
    header anyway. So this sets a flag in the environ that `_closing` hands to gunicorn."""
    request.environ[CLOSE_CONNECTION] = True


def _closing(wsgi_app: Any) -> Any:
    """Wrap the WSGI app so a request flagged by `close_connection` closes its connection.
    gunicorn passes its Response's bound `start_response`: `force_close()` on it makes gunicorn
    send `Connection: close` and close the socket after the response, under every worker
    class (the sync worker closes every connection anyway). Other servers (the test client)
    pass a plain function and are left alone. tests/service/test_users.py holds this to a
    keep-alive worker over a real socket."""

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if environ.get(CLOSE_CONNECTION):
                force_close = getattr(
                    getattr(start_response, "__self__", None), "force_close", None
                )
                if force_close is not None:
                    force_close()
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app


def _validation_failed(exc: ValidationFailed) -> Response:
    return problem(422, exc.detail, errors=exc.errors)


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
    # werkzeug would answer "/users//1" with a redirect to "/users/1" whose body is an HTML
    # page, and routing redirects never reach an error handler: treat the path as it came.
    app.url_map.merge_slashes = False
    for rule in app.url_map.iter_rules():  # the ones added already (Flask's static route)
        rule.merge_slashes = False
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(ValidationFailed, _validation_failed)
    app.register_error_handler(Conflict, _conflict)
    app.register_error_handler(DatabaseUnavailable, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
    app.wsgi_app = _closing(app.wsgi_app)  # type: ignore[method-assign]
