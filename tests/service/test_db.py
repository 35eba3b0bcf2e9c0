"""service/db.py: one reused connection per worker, replaced when it dies, no ping per request."""

from __future__ import annotations

import socket
import threading
import time

import pymysql
import pytest

from service import create_app
from service.db import Database, DatabaseUnavailable
from service.settings import load_settings
from tests.conftest import localdb, migrate_env, new_database


def make_db(env: dict[str, str], idle_check: float = 60) -> Database:
    return Database(load_settings(env).database, idle_check_seconds=idle_check)


def connection_id(db: Database) -> int:
    return db.query("SELECT CONNECTION_ID()")[0][0]


def kill(admin_conn, conn_id: int) -> None:
    with admin_conn.cursor() as cursor:
        cursor.execute("KILL %s", (conn_id,))


def test_connection_is_reused_across_queries(database):
    db = make_db(database)
    assert connection_id(db) == connection_id(db)


def test_read_after_the_server_killed_the_connection_succeeds_on_a_new_one(database, admin_conn):
    db = make_db(database)
    first = connection_id(db)
    kill(admin_conn, first)
    second = connection_id(db)
    assert second != first


def test_idle_connection_is_pinged_and_replaced_before_a_write(database, admin_conn):
    db = make_db(database, idle_check=0)
    first = connection_id(db)
    kill(admin_conn, first)
    rows, _ = db.execute(
        "insert",
        "INSERT INTO users (name, email, created_at, updated_at) "
        "VALUES ('a', 'a@example.com', UTC_TIMESTAMP(), UTC_TIMESTAMP())",
    )
    assert rows == 1
    assert connection_id(db) != first


def test_write_on_a_connection_lost_mid_query_is_not_retried_blindly(database, admin_conn):
    db = make_db(database)
    first = connection_id(db)
    kill(admin_conn, first)
    with pytest.raises(DatabaseUnavailable):
        db.execute(
            "insert",
            "INSERT INTO users (name, email, created_at, updated_at) "
            "VALUES ('b', 'b@example.com', UTC_TIMESTAMP(), UTC_TIMESTAMP())",
        )
    assert connection_id(db) != first  # and the next request gets a fresh connection


def test_session_runs_in_utc_with_utf8mb4(database):
    db = make_db(database)
    assert db.query("SELECT @@session.time_zone, @@character_set_connection")[0] == (
        "+00:00",
        "utf8mb4",
    )


def test_observer_receives_each_statement_duration(database):
    seen = []
    db = Database(load_settings(database).database, 60, lambda op, s: seen.append((op, s)))
    db.query("SELECT 1")
    assert seen and seen[0][0] == "select" and seen[0][1] >= 0


def test_read_that_times_out_is_not_run_a_second_time(database):
    db = make_db({**database, "DATABASE_READ_TIMEOUT": "1"})
    connection_id(db)  # a warm connection: the case where a dropped one would be retried
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match="timed out"):
        db.query("SELECT SLEEP(5)")
    # One read timeout is 1 s; a retry would have waited a second one.
    assert time.monotonic() - started < 1.8


@pytest.fixture(scope="module")
def short_lock_wait_server(tmp_path_factory):
    """A server of its own whose lock waits give up after 1 s (a global setting, so not the
    shared test server)."""
    if localdb.find_server_binary() is None:
        pytest.skip("needs a mariadbd/mysqld binary")
    server = localdb.start_server(
        tmp_path_factory.mktemp("lockdb"), extra_args=["--innodb-lock-wait-timeout=1"]
    )
    yield server.conn_params()
    server.stop()


def test_statement_that_loses_a_lock_wait_is_a_503_not_a_500(short_lock_wait_server):
    env, _, name = new_database(short_lock_wait_server)
    migrate_env(env)
    app = create_app(load_settings(env), multiprocess_metrics=False)
    client = app.test_client()
    user = client.post("/users", json={"name": "L", "email": "l@example.com"}).get_json()
    holder = pymysql.connect(**short_lock_wait_server, database=name)
    with holder, holder.cursor() as cursor:
        cursor.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user["id"],))
        response = client.patch(f"/users/{user['id']}", json={"name": "blocked"})
        holder.rollback()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert client.get(f"/users/{user['id']}").get_json()["name"] == "L"


@pytest.fixture
def hanging_database():
    """A TCP listener that accepts connections and never answers: a database that hangs
    (blackholed network, frozen server) rather than refusing. Counts the connections made."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def hanging_env(database: dict[str, str], port: int) -> dict[str, str]:
    # PyMySQL waits for the server's greeting with the read timeout, not the connect timeout
    timeouts = {"DATABASE_CONNECT_TIMEOUT": "0.5", "DATABASE_READ_TIMEOUT": "0.5"}
    return {**database, "DATABASE_PORT": str(port), **timeouts}


def test_after_a_failed_connect_the_worker_fails_fast_until_the_backoff_ends(
    database, hanging_database
):
    port, accepted = hanging_database
    db = Database(load_settings(hanging_env(database, port)).database, 60, reconnect_backoff=30)
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")
    for _ in range(5):
        with pytest.raises(DatabaseUnavailable, match=r"next attempt in 30\.0 s"):
            db.query("SELECT 1")
    assert len(accepted) == 1, "within the backoff no new connection may be attempted"


def test_the_backoff_lasts_at_least_as_long_as_the_failed_attempt(database, hanging_database):
    port, accepted = hanging_database
    db = Database(load_settings(hanging_env(database, port)).database, 60, reconnect_backoff=0)
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")  # waits out the 0.5 s timeout
    with pytest.raises(DatabaseUnavailable, match="next attempt in"):
        db.query("SELECT 1")  # at once: no second half-second wait
    assert len(accepted) == 1
    time.sleep(1.5)
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")
    assert len(accepted) == 2, "after the backoff the worker tries again"
