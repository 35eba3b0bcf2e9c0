"""Per-request bookkeeping, done once around the whole app: the request id, the access log and
the request metrics.

An incoming `X-Request-ID` is kept when it is at most 200 visible ASCII characters (else one
is generated) and echoed on the response; every log line written during the request carries it
(service/logs.py reads it from the environ).
The access line and the request metrics are written here, by one WSGI middleware around
Flask, rather than by gunicorn and the exporter's Flask hooks: gunicorn's access logger builds
a dict of every request header, response header and environ entry for each request, and each
Flask hook goes through the request proxies (see bench/README.md for the measurements). Here
it is one JSON line of fixed fields, written straight to stdout, and one call to the metrics
recorder. The "service.access" logger's level still turns the line on and off
(`LOG_LEVEL=WARNING` silences it).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import flask

from service.logs import REQUEST_ID_KEY, event
from service.metrics import UNMATCHED, Recorder

REQUEST_ID_MAX = 200

log = logging.getLogger("service.access")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def request_id(environ: dict[str, Any]) -> str:
    """The client's X-Request-ID when it is short and visible ASCII (safe to log and to echo in a
    header), else a new random id."""
    incoming = environ.get("HTTP_X_REQUEST_ID")
    if incoming and len(incoming) <= REQUEST_ID_MAX and _visible_ascii(incoming):
        return incoming
    return os.urandom(16).hex()


def _visible_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable() and " " not in value


REQUEST_KEY = "service.request"


class Request(flask.Request):
    """Flask's request, also left in the environ for the middleware: it reads the matched URL
    rule after the request context has ended, when Flask has already dropped its own
    `werkzeug.request` reference."""

    def __init__(self, environ: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(environ, *args, **kwargs)
        environ[REQUEST_KEY] = self


def _route(environ: dict[str, Any]) -> str:
    request = environ.pop(REQUEST_KEY, None)  # pop: the environ and the request refer to each other
    rule = getattr(request, "url_rule", None)
    return rule.rule if rule is not None else UNMATCHED


def _path(environ: dict[str, Any]) -> str:
    # WSGI carries the path's bytes as latin-1; the log shows them as UTF-8, as Flask would.
    return environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")


class Access:
    """WSGI middleware: request id, access line and request metrics for every response."""

    def __init__(self, app: WSGIApp, record: Recorder) -> None:
        self.app = app
        self.record = record

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        environ[REQUEST_ID_KEY] = rid = request_id(environ)
        status: list[str] = []

        def start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [status_line]
            headers.append(("X-Request-ID", rid))
            return start_response(status_line, headers, exc_info)

        body = self.app(environ, start)  # Flask buffers its responses: they are complete here
        seconds = time.perf_counter() - started
        code = int(status[0][:3])
        method = environ["REQUEST_METHOD"]
        self.record(method, _route(environ), code, seconds)
        if log.isEnabledFor(logging.INFO):
            line = event(
                time.time(),
                "INFO",
                log.name,
                "request",
                method=method,
                path=_path(environ),
                status=code,
                duration_ms=round(seconds * 1000, 3),
                remote_addr=environ.get("REMOTE_ADDR"),
                request_id=rid,
            )
            # Straight to the stream, not through logging's handler chain: measured in a
            # request, the chain cost as much as building the line. The logger still decides.
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        return body
