"""The real web process (`python -m service web`: gunicorn, 2 workers) as a black box."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from functools import partial

import pymysql
import pytest

from tests.support.database import migrate_env
from tests.support.localdb import free_port, localdb, require_server_binary
from tests.support.wait import wait_until
from tests.support.web import WebProcess, block_a_worker, create_user, metric_value

pytestmark = pytest.mark.slow


@pytest.fixture
def web(database, tmp_path) -> Iterator[WebProcess]:
    process = WebProcess(database, tmp_path)
    yield process
    process.stop()


def test_metrics_are_summed_across_workers_and_labelled_by_route(web, admin_conn):
    user_id = create_user(web, "m@example.com")
    patch, result = block_a_worker(web, admin_conn, user_id, "M2")  # one request held open
    # Which worker accepts a connection is the kernel's choice: send GETs until both have
    # served some (each worker writes its samples to files named by its pid).
    gets = 0
    while len(worker_pids(web)) < 2:
        assert gets < 400, "400 requests all went to one worker"
        assert web.request("GET", f"/users/{user_id}")[0] == 200
        gets += 1
    admin_conn.commit()
    patch.join(timeout=20)
    assert result["response"][0] == 200
    for _ in range(6):  # whichever worker answers the scrape, it reports the sum of both
        text = web.request("GET", "/metrics")[2].decode()
        count = partial(metric_value, text, "flask_http_request_duration_seconds_count")
        assert count(route="/users/<int:user_id>", method="GET", status="200") == gets
        assert count(route="/users/<int:user_id>", method="PATCH", status="200") == 1
    assert f"/users/{user_id}" not in text
    assert 'route="/healthz"' not in text
    assert 'route="/metrics"' not in text
    assert (
        metric_value(text, "users_db_query_duration_seconds_count", operation="select") == gets + 1
    )
    assert metric_value(text, "users_db_query_duration_seconds_count", operation="update") == 1


def worker_pids(web: WebProcess) -> set[str]:
    return {p.stem.rsplit("_", 1)[-1] for p in web.metrics_dir.glob("histogram_*.db")}


def test_every_stdout_line_is_a_json_event_and_requests_carry_their_id(web):
    status, headers, _ = web.request("GET", "/users", headers={"X-Request-ID": "req-42"})
    assert status == 200
    assert headers["X-Request-ID"] == "req-42"
    web.request("GET", "/missing")
    assert web.stop() == 0
    events = [json.loads(line) for line in web.lines()]
    for event in events:
        assert {"timestamp", "level", "logger", "message"} <= set(event)
        assert event["timestamp"].endswith("Z")
    access = [e for e in events if e["logger"] == "service.access"]
    assert {"method", "path", "status", "duration_ms", "request_id"} <= set(access[0])
    assert any(e["request_id"] == "req-42" and e["status"] == 200 for e in access)
    assert any(e["path"] == "/missing" and e["status"] == 404 for e in access)


def test_sigterm_lets_the_request_in_flight_finish_and_exits_0(web, admin_conn):
    user_id = create_user(web, "lock@example.com")
    patch, result = block_a_worker(web, admin_conn, user_id, "Finished")
    web.process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert web.process.poll() is None, "gunicorn must wait for the request in flight"
    admin_conn.commit()  # release the lock: the PATCH completes
    patch.join(timeout=20)
    assert web.process.wait(timeout=20) == 0
    status, _, body = result["response"]
    assert status == 200
    assert json.loads(body)["name"] == "Finished"


def test_database_down_at_start_gives_503s_then_recovers_without_restart(mysql_admin, tmp_path):
    require_server_binary("to start a database later")
    port = free_port()
    env = {
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(port),
        "DATABASE_USER": "late_web",
        "DATABASE_PASSWORD": "late-web-pw",
        "DATABASE_NAME": "late",
        "MIGRATE_DATABASE_USER": "late_mig",
        "MIGRATE_DATABASE_PASSWORD": "late-mig-pw",
    }
    web = WebProcess(env, tmp_path)
    server = None
    try:
        assert web.request("GET", "/healthz")[0] == 200
        assert web.request("GET", "/readyz")[0] == 503
        status, headers, _ = web.request("GET", "/users")
        assert status == 503
        assert headers["Content-Type"] == "application/problem+json"

        server = localdb.start_server(tmp_path / "late-db", port=port)
        localdb.create_database(
            server, "late", "late_web", "late-web-pw", "late_mig", "late-mig-pw"
        )
        migrate_env(env)
        # workers retry after DATABASE_RECONNECT_BACKOFF
        wait_until("/readyz, then /users, to recover",
                   lambda: all(web.request("GET", p)[0] == 200 for p in ("/readyz", "/users")),
                   15, 0.2, errors=())  # fmt: skip
        time.sleep(2.5)  # past every worker's backoff window
        for _ in range(6):  # every worker recovers, not just one
            assert web.request("GET", "/users")[0] == 200
        assert web.process.poll() is None
        assert web.stop() == 0
    finally:
        web.stop()
        if server is not None:
            server.stop()


def test_database_restart_under_a_running_process_recovers(database, web, mysql_admin):
    """A killed connection (as after a MySQL restart or wait_timeout) is replaced, not fatal."""
    conn = pymysql.connect(**mysql_admin, autocommit=True)
    with conn, conn.cursor() as cursor:
        web.request("GET", "/users")
        cursor.execute(
            "SELECT id FROM information_schema.processlist WHERE user = %s",
            (database["DATABASE_USER"],),
        )
        for (conn_id,) in cursor.fetchall():
            cursor.execute("KILL %s", (conn_id,))
    assert [web.request("GET", "/users")[0] for _ in range(6)] == [200] * 6
