"""service/db.py: a bounded pool of reused connections per worker, replaced when they die, no ping
per request."""

from __future__ import annotations

import socket
import threading
import time

import pymysql
import pytest

from service import create_app
from service.db import Database, DatabaseUnavailable
from service.settings import load_settings
from tests.support.database import migrate_env, new_database
from tests.support.localdb import localdb, require_server_binary


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
    require_server_binary("to start a server with a 1 s lock wait")
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


# ---------------------------------------------------------------- the pool


def make_pool(env: dict[str, str], size: int, timeout: float = 5, **kwargs) -> Database:
    return Database(load_settings(env).database, 60, pool_size=size, pool_timeout=timeout, **kwargs)


def in_threads(count: int, target) -> list:
    """Run `target()` in `count` threads at once; their results (or exceptions), in order."""
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target()
        except Exception as exc:  # handed back to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def one_slot_app(database: dict[str, str]):
    env = {**database, "DATABASE_POOL_SIZE": "1", "DATABASE_POOL_TIMEOUT": "0.2"}
    return create_app(load_settings(env), multiprocess_metrics=False)


def test_concurrent_queries_share_at_most_pool_size_connections(database):
    db = make_pool(database, size=2)
    started = time.monotonic()
    rows = in_threads(6, lambda: db.query("SELECT CONNECTION_ID(), SLEEP(0.2)")[0][0])
    assert all(isinstance(row, int) for row in rows), rows
    assert len(set(rows)) <= 2
    # six 0.2 s statements over two connections: three rounds, not one
    assert time.monotonic() - started >= 0.55


def test_a_query_that_finds_no_free_connection_within_the_pool_timeout_is_a_503(database):
    db = make_pool(database, size=1, timeout=0.3)
    holder = threading.Thread(target=db.query, args=("SELECT SLEEP(1.5)",))
    holder.start()
    time.sleep(0.3)  # the holder has the only slot
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable, match=r"no database connection free within 0\.3 s"):
        db.query("SELECT 1")
    waited = time.monotonic() - started
    holder.join()
    assert 0.25 <= waited < 1.2
    assert db.query("SELECT 1") == ((1,),)  # the slot came back


def test_the_statements_of_one_request_share_one_connection_and_return_it_at_the_end(database):
    app = one_slot_app(database)
    db = app.extensions["database"]
    with app.app_context():
        # With one slot, a second checkout in the same request would wait and fail.
        assert connection_id(db) == connection_id(db)
        first = connection_id(db)
    with app.app_context():
        assert connection_id(db) == first  # returned at teardown, and reused


def test_a_statement_error_returns_the_connection_to_the_pool(database):
    db = make_pool(database, size=1, timeout=0.2)
    first = connection_id(db)
    with pytest.raises(pymysql.err.ProgrammingError):
        db.query("SELECT * FROM no_such_table")
    assert connection_id(db) == first


def test_a_request_that_raises_still_returns_its_connection(database):
    app = one_slot_app(database)
    db = app.extensions["database"]

    @app.get("/boom")
    def boom():
        db.query("SELECT 1")
        raise RuntimeError("after the query")

    assert app.test_client().get("/boom").status_code == 500
    with app.app_context():
        assert db.query("SELECT 1") == ((1,),)  # not waiting for a slot the failed request kept


def test_a_lost_connection_takes_the_idle_ones_with_it(database, admin_conn):
    settings = load_settings({**database, "DATABASE_POOL_SIZE": "2"})
    app = create_app(settings, multiprocess_metrics=False)
    db = app.extensions["database"]
    with app.app_context():
        first = connection_id(db)
        with app.app_context():
            second = connection_id(db)
    assert first != second  # two idle connections now
    kill(admin_conn, first)
    kill(admin_conn, second)
    with app.app_context():
        connection_id(db)  # finds a dead one, retries on a new connection
        with app.app_context():
            # Without the flush this write would get the other dead idle connection: a 503.
            rows, _ = db.execute(
                "insert",
                "INSERT INTO users (name, email, created_at, updated_at) "
                "VALUES ('c', 'c@example.com', UTC_TIMESTAMP(), UTC_TIMESTAMP())",
            )
    assert rows == 1


def test_after_the_backoff_one_connect_probes_while_the_others_still_fail_fast(
    database, hanging_database
):
    port, accepted = hanging_database
    db = make_pool(hanging_env(database, port), size=4, reconnect_backoff=0.5)
    with pytest.raises(DatabaseUnavailable):
        db.query("SELECT 1")
    assert len(accepted) == 1
    time.sleep(0.8)  # past the backoff

    def timed_query() -> float:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            db.query("SELECT 1")
        return time.monotonic() - started

    times = sorted(in_threads(4, timed_query))
    assert all(isinstance(t, float) for t in times), times
    assert len(accepted) == 2, "one probe for the whole pool, not one per waiting request"
    assert times[2] < 0.3, "the requests that did not probe failed at once"
    assert times[3] >= 0.4, "the probe waited out the hung server's timeout"
