"""service/logs.py: one JSON object per line, request fields from gunicorn's access atoms."""

from __future__ import annotations

import json
import logging

from service.logs import AccessFormatter, JsonFormatter


def record(msg, args=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("service.test", logging.WARNING, __file__, 1, msg, args, None)
    rec.__dict__.update(extra)
    return rec


def test_event_has_utc_timestamp_level_logger_message_and_extras():
    event = json.loads(JsonFormatter().format(record("hello %s", ("world",), user_id=7)))
    assert event["message"] == "hello world"
    assert event["level"] == "WARNING"
    assert event["logger"] == "service.test"
    assert event["user_id"] == 7
    assert event["timestamp"].endswith("Z") and "T" in event["timestamp"]


def test_exception_is_kept_inside_the_one_json_line():
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        rec = record("failed")
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    assert "ValueError: bad" in json.loads(line)["exception"]


def test_request_id_from_the_request_context_is_added(app):
    with app.test_request_context("/"):
        from flask import g

        g.request_id = "rid-1"
        assert json.loads(JsonFormatter().format(record("x")))["request_id"] == "rid-1"


def test_access_atoms_become_named_fields():
    atoms = {
        "m": "GET",
        "U": "/users",
        "q": "",
        "s": "200",
        "D": 1500,
        "B": 12,
        "h": "127.0.0.1",
        "a": "curl",
        "{x-request-id}o": "rid",
    }
    rec = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(m)s", (atoms,), None)
    event = json.loads(AccessFormatter().format(rec))
    assert event["method"] == "GET" and event["path"] == "/users" and event["status"] == 200
    assert event["duration_ms"] == 1.5
    assert event["request_id"] == "rid"
