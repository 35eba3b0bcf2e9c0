"""Logs as an event stream: one JSON object per line on stdout, for every process type.

The same `logging_config()` dict configures the web process (through gunicorn's
`logconfig_dict`, so gunicorn's own error log is JSON too) and the admin processes (through
`logging.config.dictConfig`). The access log is the app's (service/access.py). Nothing is
written to files.
"""

from __future__ import annotations

import json
import logging
import logging.config
import time
from typing import Any

from flask import has_request_context, request

# Attributes every LogRecord has; anything else on a record was passed as `extra=` and is emitted.
REQUEST_ID_KEY = "service.request_id"  # set by service/access.py for every request

_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


_second: list[Any] = [None, ""]  # the last whole second formatted: one strftime per second


def _timestamp(created: float) -> str:
    seconds = int(created)
    if _second[0] != seconds:
        _second[:] = [seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))]
    return f"{_second[1]}.{int((created - seconds) * 1000):03d}Z"


def event(created: float, level: str, logger: str, message: str, **fields: Any) -> str:
    """One log event as a JSON line: the fixed keys first, then the event's own fields."""
    return json.dumps(
        {
            "timestamp": _timestamp(created),
            "level": level,
            "logger": logger,
            "message": message,
            **fields,
        },
        default=str,
        ensure_ascii=False,
    )


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: timestamp (UTC, ISO 8601), level, logger, message,
    the request id when logged inside a request, any `extra=` fields, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {}
        if has_request_context() and REQUEST_ID_KEY in request.environ:
            fields["request_id"] = request.environ[REQUEST_ID_KEY]
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                fields[key] = value
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return event(record.created, record.levelname, record.name, record.getMessage(), **fields)


def logging_config(level: str) -> dict[str, Any]:
    """A dictConfig dict that sends every logger (gunicorn's included) to stdout as JSON."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": level, "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stdout"], "propagate": False},
        },
    }


def configure_logging(level: str) -> None:
    logging.config.dictConfig(logging_config(level))
