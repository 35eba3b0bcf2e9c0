"""Per-request bookkeeping: the request id and the access log.

An incoming `X-Request-ID` is kept (else one is generated) and echoed on the response; every
log line written during the request carries it. The access log is written here, by the app,
rather than by gunicorn: gunicorn's access logger builds a dict of every request header,
response header and WSGI environ entry for each request, whatever the format uses (see
bench/README.md for the measurements). Here it is one JSON line of fixed fields,
built directly and written straight to stdout: the hottest log line there is. The
"service.access" logger's level still turns it on and off (`LOG_LEVEL=WARNING` silences it).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from flask import Flask, Response, g, request

from service.logs import event

REQUEST_ID_MAX = 200

log = logging.getLogger("service.access")


def _start() -> None:
    incoming = request.headers.get("X-Request-ID")
    g.request_id = (
        incoming if incoming and len(incoming) <= REQUEST_ID_MAX else os.urandom(16).hex()
    )
    g.started = time.perf_counter()


def _finish(response: Response) -> Response:
    # .get: an exception in a before_request hook registered earlier skips _start
    response.headers["X-Request-ID"] = request_id = g.get("request_id") or os.urandom(16).hex()
    if log.isEnabledFor(logging.INFO):
        line = event(
            time.time(),
            "INFO",
            log.name,
            "request",
            method=request.method,
            path=request.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - g.get("started", 0)) * 1000, 3),
            remote_addr=request.remote_addr,
            request_id=request_id,
        )
        # Straight to the stream, not through logging's handler chain: measured in a request,
        # the chain cost as much as building the line. The logger still decides (level).
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start)
    app.after_request(_finish)
