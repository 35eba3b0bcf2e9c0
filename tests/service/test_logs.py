"""service/logs.py: one JSON object per line, request fields from gunicorn's access atoms."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from service.logs import REQUEST_ID_KEY, JsonFormatter


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
    with app.test_request_context("/", environ_base={REQUEST_ID_KEY: "rid-1"}):
        assert json.loads(JsonFormatter().format(record("x")))["request_id"] == "rid-1"


@pytest.fixture
def access_at_info() -> Iterator[None]:
    """The access logger at INFO whatever configured logging before (the web process sets the
    root level from LOG_LEVEL; in-process, nothing does)."""
    logger = logging.getLogger("service.access")
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(logging.NOTSET)


def test_each_request_writes_one_access_event_with_its_fields(client, capsys, access_at_info):
    capsys.readouterr()
    client.get("/users/77", headers={"X-Request-ID": "rid-77"})
    (event,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (event["logger"], event["level"], event["message"]) == (
        "service.access",
        "INFO",
        "request",
    )
    assert (event["method"], event["path"], event["status"]) == ("GET", "/users/77", 404)
    assert event["request_id"] == "rid-77"
    assert event["duration_ms"] >= 0
    assert event["timestamp"].endswith("Z")


def test_access_log_follows_its_logger_level(client, capsys):
    logging.getLogger("service.access").setLevel(logging.WARNING)
    try:
        capsys.readouterr()
        client.get("/healthz")
        assert capsys.readouterr().out == ""
    finally:
        logging.getLogger("service.access").setLevel(logging.NOTSET)
